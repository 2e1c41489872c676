package faults_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/session"
)

const (
	exhaustGoroutines = 500
	exhaustPool       = 10
	acquireTimeout    = 100 * time.Millisecond
	holdFor           = 20 * time.Millisecond
	// timeoutLimit bounds how long a scope that timed out took in all.
	timeoutLimit = acquireTimeout + time.Second
)

func TestPostgresPoolExhaustion(t *testing.T) { poolExhaustion(t, "pg", "postgres") }

func TestMariaDBPoolExhaustion(t *testing.T) { poolExhaustion(t, "mariadb", "mysql") }

// poolExhaustion runs 500 goroutines at once on a pool of 10, each
// holding its connection for 20ms: those that wait longer than
// AcquireTimeout fail quickly with ErrAcquireTimeout, the rest succeed.
func poolExhaustion(t *testing.T, prefix, driverName string) {
	s := begin(t)
	dsn := s.database(t, driverName)
	e := openEngine(t, dbfx.Config{Driver: driverName, DSN: dsn, MaxOpenConns: exhaustPool, MaxIdleConns: exhaustPool,
		AcquireTimeout: acquireTimeout, ConnectTimeout: 10 * time.Second})
	m := e.Sessions()
	hold := sleepSQL(driverName, holdFor)

	type result struct {
		err  error
		took time.Duration
	}
	results := make([]result, exhaustGoroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(exhaustGoroutines)
	for i := range exhaustGoroutines {
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			begun := time.Now()
			err := m.Tx(ctx, func(ctx context.Context) error {
				_, err := m.Q(ctx).ExecContext(ctx, hold)
				return err
			})
			results[i] = result{err, time.Since(begun)}
		}()
	}
	begun := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(begun)

	tb := newTable(prefix + " pool exhaustion")
	var slowest, slowestTimeout time.Duration
	for _, r := range results {
		tb.add(r.err)
		slowest = max(slowest, r.took)
		switch {
		case r.err == nil:
		case errors.Is(r.err, session.ErrAcquireTimeout):
			slowestTimeout = max(slowestTimeout, r.took)
			if r.took > timeoutLimit {
				t.Errorf("a scope timed out after %s, want within %s", r.took, timeoutLimit)
			}
		default:
			t.Errorf("scope failed with %v, want nil or ErrAcquireTimeout", r.err)
		}
	}
	timeouts := tb.failed["ErrAcquireTimeout"]
	if tb.committed == 0 || timeouts == 0 {
		t.Errorf("%d scopes succeeded, %d timed out: want some of each", tb.committed, timeouts)
	}
	if got := e.Stats().AcquireTimeouts; got != int64(timeouts) {
		t.Errorf("Stats().AcquireTimeouts = %d, want %d", got, timeouts)
	}
	// Every scope has returned, but database/sql may still be opening
	// connections it began for waiters that have given up: it counts them
	// in use until they are open and idle. Wait for that, bounded; a
	// connection a scope failed to give back never settles.
	settle := time.Now()
	first := e.Stats()
	st := first
	pollUntil(t, 10*time.Second, "no connection in use once every scope has returned", func() bool {
		st = e.Stats()
		return st.InUse == 0
	})
	settled := time.Since(settle)
	if first.InUse > 0 {
		tb.note("when the last scope returned %d connections were in use (%d open, %d idle), none %s later",
			first.InUse, first.Open, first.Idle, settled.Round(time.Millisecond))
	}
	if st.Open > exhaustPool {
		t.Errorf("%d connections open, the pool allows %d", st.Open, exhaustPool)
	}
	tb.note("pool %d, AcquireTimeout %s, each holding %s; all done in %s, slowest timeout %s, slowest scope %s",
		exhaustPool, acquireTimeout, holdFor, elapsed.Round(time.Millisecond),
		slowestTimeout.Round(time.Millisecond), slowest.Round(time.Millisecond))
	tb.log(t)
}
