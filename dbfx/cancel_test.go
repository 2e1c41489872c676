package dbfx_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/fxtest"
)

// TestPostgresCancelsOnTheServer: on PostgreSQL, a statement whose ctx
// ends is stopped on the server by lib/pq's own cancel request (the
// connection wrapper adds nothing): pg_sleep(20) under a 500ms ctx, outside
// any scope and in a transaction, returns within about a second and is
// gone from pg_stat_activity within a second. (MySQL's KILL QUERY is tested in
// dbfx/mysql.)
func TestPostgresCancelsOnTheServer(t *testing.T) {
	cfg := fxtest.Postgres(t)
	e := open(t, cfg)
	m := e.Sessions()
	u, err := url.Parse(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	admin, err := sql.Open("postgres", cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	const sleep = "SELECT pg_sleep(20)"
	running := func() int {
		var n int
		if err := admin.QueryRowContext(testContext(t), "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND query = $2 AND state = 'active'",
			dbName, sleep).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Q", func(ctx context.Context) error {
			_, err := m.Q(ctx).ExecContext(ctx, sleep)
			return err
		}},
		{"Tx", func(ctx context.Context) error {
			return m.Tx(ctx, func(ctx context.Context) error {
				_, err := m.Q(ctx).ExecContext(ctx, sleep)
				return err
			})
		}},
	}
	for _, c := range calls {
		ctx, cancel := context.WithTimeout(testContext(t), 500*time.Millisecond)
		begun := time.Now()
		err := c.call(ctx)
		returned := time.Since(begun)
		cancel()
		// Outside a scope, lib/pq returns the server's answer to its cancel
		// request (57014, query_canceled), which the connection wrapper
		// wraps in the ctx's error; a scope returns the ctx's error.
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s = %v, want the ctx's deadline error", c.name, err)
		}
		if returned > 1500*time.Millisecond {
			t.Errorf("%s returned after %s, want about 1s at most after a 500ms deadline", c.name, returned)
		}
		polled := time.Now()
		for running() > 0 && time.Since(polled) < time.Second {
			time.Sleep(10 * time.Millisecond) // a poll: the server tells no one when a statement ends
		}
		gone := time.Since(polled)
		t.Logf("%s returned after %s; the statement left pg_stat_activity %s after the call returned",
			c.name, returned.Round(time.Millisecond), gone.Round(time.Millisecond))
		if running() > 0 {
			t.Errorf("%s: pg_sleep still running 1s after the call returned", c.name)
		}
	}
}
