package otelmon_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// TestDeadlockSpans: two transactions lock two rows in opposite orders;
// the server ends one of them (PostgreSQL 40P01, MySQL/MariaDB 1213),
// whose scope retries it. The victim's first attempt has a failed UPDATE
// of error.type conflict, its caller's span a retry event, its second
// attempt commits, and so does the other transaction at its first.
func TestDeadlockSpans(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		if cfg.Driver == "sqlite3" {
			t.Skip("SQLite: the write scope runs one transaction at a time, none deadlocks")
		}
		s := newSDK(t)
		e := openEngine(t, cfg, dbfx.WithMonitor(s.monitor(t)))
		mustExec(t, e, "CREATE TABLE acc (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
		mustExec(t, e, "INSERT INTO acc (id, n) VALUES (1, 0), (2, 0)")
		m := e.Sessions()
		update := func(ctx context.Context, id int) error {
			q := m.Q(ctx)
			_, err := q.ExecContext(ctx, q.Rebind("UPDATE acc SET n = n + 1 WHERE id = ?"), id)
			return err
		}
		s.spans.Reset()

		// Each locks its first row, says so, waits for the other's word,
		// then asks for the other's row: a deadlock, at the first attempt.
		locked := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
		var attempts [2]int
		var errs [2]error
		var wg sync.WaitGroup
		for k := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, caller := s.tracers.Tracer("test").Start(testContext(t), fmt.Sprintf("caller %d", k))
				defer caller.End()
				errs[k] = m.Tx(ctx, func(ctx context.Context) error {
					attempts[k]++
					first, second := 1+k, 2-k
					if err := update(ctx, first); err != nil {
						return err
					}
					if attempts[k] == 1 {
						locked[k] <- struct{}{}
						<-locked[1-k]
					}
					return update(ctx, second)
				}, session.Label(fmt.Sprintf("transfer %d", k)))
			}()
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("transaction %d: %v", k, err)
			}
		}
		if attempts[0]+attempts[1] != 3 {
			t.Fatalf("attempts %v, want one transaction run once and the other twice", attempts)
		}
		victim := 0
		if attempts[1] == 2 {
			victim = 1
		}
		var n int
		if err := e.DB().GetContext(testContext(t), &n, "SELECT SUM(n) FROM acc"); err != nil || n != 4 {
			t.Fatalf("sum = %d, %v; want 4", n, err)
		}

		spans := s.spans.GetSpans()
		for k := range 2 {
			var root *span
			var txs []span
			callerID := func() string {
				for _, sp := range spans {
					if sp.Name == fmt.Sprintf("caller %d", k) {
						return sp.SpanContext.SpanID().String()
					}
				}
				t.Fatalf("no span caller %d", k)
				return ""
			}()
			for _, sp := range spans {
				if sp.SpanContext.SpanID().String() == callerID {
					got := tree(spans, sp.SpanContext.SpanID())
					root = &got[0]
					for _, g := range got[1:] {
						if g.parent == root.name {
							txs = append(txs, g)
						}
					}
					if k == victim {
						// The first attempt: BEGIN, UPDATE, the UPDATE the
						// server ended, ROLLBACK.
						var failed []span
						for _, g := range got {
							if g.name == "UPDATE acc" && g.status == codes.Error {
								failed = append(failed, g)
							}
						}
						if len(failed) != 1 || failed[0].attrs["error.type"] != "conflict" ||
							failed[0].attrs["enginekit.engine"] != e.Name() {
							t.Errorf("victim's failed UPDATE spans %+v, want one of error.type conflict", failed)
						}
					}
				}
			}
			wantTxs := attempts[k]
			if len(txs) != wantTxs {
				t.Fatalf("caller %d has %d transaction spans, want %d: %+v", k, len(txs), wantTxs, txs)
			}
			for i, tx := range txs {
				outcome := "committed"
				if i < len(txs)-1 {
					outcome = "rolled_back"
				}
				if tx.attrs["enginekit.transaction.attempt"] != fmt.Sprint(i+1) || tx.attrs["enginekit.transaction.outcome"] != outcome {
					t.Errorf("caller %d's transaction span %d: %v, want attempt %d %s", k, i, tx.attrs, i+1, outcome)
				}
			}
			wantEvents := 0
			if k == victim {
				wantEvents = 1
			}
			if len(root.events) != wantEvents || wantEvents == 1 && !strings.Contains(root.events[0], "error.type:conflict") {
				t.Errorf("caller %d's events %v, want %d retry of error.type conflict", k, root.events, wantEvents)
			}
		}
	})
}
