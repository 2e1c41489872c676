package dialect_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/enginekit/enginekit/internal/dialect"
)

// TestSentinelMatching: an Error matches a sentinel by its class bits, a
// narrow sentinel matches a wider one and one of its own class, and
// nothing else matches.
func TestSentinelMatching(t *testing.T) {
	constraint := dialect.NewSentinel("constraint", dialect.Constraint)
	dup := dialect.NewSentinel("duplicate", dialect.Unique)
	dup2 := dialect.NewSentinel("duplicate too", dialect.Unique)
	fk := dialect.NewSentinel("foreign key", dialect.ForeignKey)
	conflict := dialect.NewSentinel("conflict", dialect.Retryable)
	locked := dialect.NewSentinel("locked", dialect.Locked)
	lost := dialect.NewSentinel("lost", dialect.ConnLost)
	canceled := dialect.NewSentinel("canceled", dialect.Canceled)
	driverErr := errors.New("driver says no")
	tests := []struct {
		name   string
		give   error
		target error
		want   bool
	}{
		{"unique is duplicate", &dialect.Error{Err: driverErr, Class: dialect.Unique | dialect.Aborting}, dup, true},
		{"unique is the other duplicate", &dialect.Error{Err: driverErr, Class: dialect.Unique}, dup2, true},
		{"unique is a constraint", &dialect.Error{Err: driverErr, Class: dialect.Unique}, constraint, true},
		{"foreign key is a constraint", &dialect.Error{Err: driverErr, Class: dialect.ForeignKey}, constraint, true},
		{"foreign key is no duplicate", &dialect.Error{Err: driverErr, Class: dialect.ForeignKey}, dup, false},
		{"aborting alone is no constraint", &dialect.Error{Err: driverErr, Class: dialect.Aborting}, constraint, false},
		{"lock wait timeout is a conflict", &dialect.Error{Err: driverErr, Class: dialect.Retryable | dialect.Locked}, conflict, true},
		{"lock wait timeout is locked", &dialect.Error{Err: driverErr, Class: dialect.Retryable | dialect.Locked}, locked, true},
		{"wrapped", fmt.Errorf("repo: insert: %w", &dialect.Error{Err: driverErr, Class: dialect.Unique}), dup, true},
		{"cut is lost", &dialect.Error{Err: fmt.Errorf("x: %w", dialect.ErrCut), Class: dialect.Transport(dialect.ErrCut)}, lost, true},
		{"cut is canceled", &dialect.Error{Err: fmt.Errorf("x: %w", dialect.ErrCut), Class: dialect.Transport(dialect.ErrCut)}, canceled, true},
		{"untagged driver error", driverErr, dup, false},
		{"untagged EOF", io.EOF, lost, false},
		{"sentinel within a wider one", dup, constraint, true},
		{"wrapped sentinel within a wider one", fmt.Errorf("%w in users", dup), constraint, true},
		{"sentinel of one class", dup, dup2, true},
		{"wider sentinel is not a narrow one", constraint, dup, false},
		{"other sentinel", fk, dup, false},
		{"plain error target", &dialect.Error{Err: driverErr, Class: dialect.Unique}, errors.New("duplicate"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.give, tt.target); got != tt.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", tt.give, tt.target, got, tt.want)
			}
		})
	}
	var tagged error = &dialect.Error{Err: fmt.Errorf("wrapped: %w", driverErr), Class: dialect.Unique}
	if !errors.Is(tagged, driverErr) {
		t.Error("the driver's error is not reachable through a tagged one")
	}
}

// TestTagAddsTransport: a driver error wrapping a cut connection is tagged
// lost, aborting and canceled even when the driver's classifier does not
// know it.
func TestTagAddsTransport(t *testing.T) {
	d := dialect.New(dialect.Postgres, nil)
	err := d.Tag(fmt.Errorf("context deadline exceeded: %w (read: EOF)", dialect.ErrCut))
	var ce *dialect.Error
	if !errors.As(err, &ce) || ce.Class != dialect.ConnLost|dialect.Aborting|dialect.Canceled {
		t.Fatalf("Tag(cut) = %#v, want an Error of ConnLost|Aborting|Canceled", err)
	}
	if got := d.Tag(errors.New("syntax error")); !errors.Is(got, got) || errors.As(got, &ce) {
		t.Fatalf("Tag(unknown) = %#v, want it untagged", got)
	}
}
