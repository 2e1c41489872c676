package faults_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

const shutdownWorkers = 64

func TestPostgresShutdownUnderLoad(t *testing.T) {
	shutdownUnderLoad(t, "pg stop under load", "postgres", 3*time.Millisecond, 5*time.Second)
}

func TestMariaDBShutdownUnderLoad(t *testing.T) {
	shutdownUnderLoad(t, "mariadb stop under load", "mysql", 3*time.Millisecond, 5*time.Second)
}

// The stop's ctx ends while transactions are in flight: Close cancels
// them. Each still either commits or fails, and says which.
func TestPostgresShutdownCutShort(t *testing.T) {
	shutdownUnderLoad(t, "pg stop cut short", "postgres", 50*time.Millisecond, 20*time.Millisecond)
}

func TestMariaDBShutdownCutShort(t *testing.T) {
	shutdownUnderLoad(t, "mariadb stop cut short", "mysql", 50*time.Millisecond, 20*time.Millisecond)
}

// shutdownUnderLoad stops an Fx app, with stopTimeout, while 64
// goroutines run transactions on it that each last about pause: each
// either commits or fails with ErrClosed or a ctx error, nothing is cut
// mid-commit, the pools close and no goroutine is left. When the stop has
// time enough, it cuts no scope short.
func shutdownUnderLoad(t *testing.T, fault, driverName string, pause, stopTimeout time.Duration) {
	s := begin(t)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)

	var e *dbfx.Engine
	var m *session.Manager
	app := fxtest.New(t, fx.NopLogger,
		fx.Supply(dbfx.Config{Driver: driverName, DSN: dsn, AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second}),
		fx.Populate(&e, &m))
	app.RequireStart()

	// The transactions last a while, so that many are in flight (and more
	// wait for a connection) when the app stops.
	w := startWriters(m, shutdownWorkers, sleepSQL(driverName, pause), func(err error) bool {
		return errors.Is(err, session.ErrClosed)
	})
	t.Cleanup(func() { w.finish() })
	if err := w.wait(30*time.Second, func() bool { return w.committedEach(3) }); err != nil {
		t.Fatalf("before the stop, every worker should commit 3 transactions: %v", err)
	}
	inFlight := e.Stats()

	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	begun := time.Now()
	stopErr := app.Stop(ctx)
	stopped := time.Since(begun)
	cutShort := pause >= stopTimeout
	switch {
	case !cutShort && stopErr != nil:
		t.Errorf("stop: %v (after %s)", stopErr, stopped)
	case cutShort && !errors.Is(stopErr, context.DeadlineExceeded):
		t.Errorf("stop: %v (after %s), want the ctx error: scopes were still in flight", stopErr, stopped)
	}
	// Every worker ends on its own: its next scope fails with ErrClosed.
	if err := w.wait(10*time.Second, func() bool { return w.allStopped() }); err != nil {
		t.Errorf("workers still running after the stop: %v", err)
	}
	attempts := w.finish()

	tb := newTable(fault)
	reconcile(t, db, tb, attempts)
	for c, n := range tb.failed {
		if c != "ErrClosed" && c != "ctx.Canceled" && c != "ctx.DeadlineExceeded" {
			t.Errorf("%d transactions failed with %s, want only ErrClosed or a ctx error; e.g. %s", n, c, tb.examples[c])
		}
	}
	if tb.ambiguous > 0 {
		t.Errorf("%d commits were cut by the stop (ErrAmbiguousCommit)", tb.ambiguous)
	}
	if errors.Is(stopErr, context.DeadlineExceeded) {
		// The stop cancelled the scopes in flight, then closed the pools:
		// their connections come back to closed pools, which close them.
		pollUntil(t, 5*time.Second, "the cancelled scopes give back their connections", func() bool {
			s := e.Stats()
			return s.InUse == 0 && s.Scopes == 0
		})
	}
	// The pools are closed.
	if err := e.DB().PingContext(context.Background()); err == nil || err.Error() != "sql: database is closed" {
		t.Errorf("ping after the stop: %v, want sql: database is closed", err)
	}
	if h := e.Health(context.Background()); h.Status != dbfx.StatusDown {
		t.Errorf("health after the stop: %+v", h)
	}
	fxtest.RequireNoLeaks(t, e)
	longest := checkTimes(t, attempts, opTimeout)
	tb.note("stop took %s (limit %s, returned %v) with %d scopes open, %d connections in use, transactions of about %s",
		stopped.Round(time.Millisecond), stopTimeout, stopErr, inFlight.Scopes, inFlight.InUse, pause)
	tb.note("longest transaction %s", longest.Round(time.Millisecond))
	tb.log(t)
}
