package mysql_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/fxtest"
)

// TestTransactionPoolingHasNoServerCancel: with Config.TransactionPooling
// (a pooler that multiplexes connections, where a KILL QUERY by id could
// stop another client's statement) a statement whose ctx ended is not
// stopped on the server: the caller still gets the ctx's error at its
// deadline, the statement runs on, the monitor hears of no cancel, and no
// connection holds the cancel's user-level lock (which would pin it to a
// server connection).
func TestTransactionPoolingHasNoServerCancel(t *testing.T) {
	cfg := fxtest.MySQL(t)
	cfg.TransactionPooling = true
	mon := &poolEvents{}
	e := open(t, cfg, mon, mysql.Driver())
	m := e.Sessions()
	admin := adminDB(t, cfg.DSN)
	ctx, cancel := context.WithTimeout(testContext(t), 500*time.Millisecond)
	defer cancel()
	begun := time.Now()
	var n int
	err := m.Q(ctx).GetContext(ctx, &n, sleepSQL)
	returned := time.Since(begun)
	if !errors.Is(err, context.DeadlineExceeded) || returned > 1500*time.Millisecond {
		t.Errorf("Q = %v after %s, want the ctx's deadline error within about 1s", err, returned)
	}
	if _, gone := pollGone(t, admin, cfg.DSN, time.Second); gone {
		t.Error("the statement left the process list within 1s of its deadline: it was stopped")
	}
	for _, id := range running(t, admin, cfg.DSN) {
		if _, err := admin.ExecContext(testContext(t), "KILL QUERY ?", id); err != nil {
			t.Error(err)
		}
	}
	if c := mon.count(); c != 0 {
		t.Errorf("the monitor heard of %d cancels, want none", c)
	}
	// The user-level locks the engine's connection holds: RELEASE_ALL_LOCKS
	// answers how many it released.
	var locks int
	if err := m.Conn(testContext(t), func(ctx context.Context) error {
		return m.Q(ctx).GetContext(ctx, &locks, "SELECT RELEASE_ALL_LOCKS()")
	}); err != nil || locks != 0 {
		t.Errorf("the engine's connection held %d user-level locks (%v), want none", locks, err)
	}
	if one := 0; m.Q(testContext(t)).GetContext(testContext(t), &one, "SELECT 1") != nil || one != 1 {
		t.Error("the engine does not go on after the deadline")
	}
}
