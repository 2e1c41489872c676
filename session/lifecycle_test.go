package session_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// startBlockedTx runs, in a goroutine, a Tx that inserts id and then waits
// until release is closed or its ctx ends. It returns once the insert is
// done; the Tx's result arrives on the channel.
func startBlockedTx(t *testing.T, ctx context.Context, m *session.Manager, id int, release <-chan struct{}, opts ...session.TxOption) <-chan error {
	t.Helper()
	started := make(chan error, 1)
	result := make(chan error, 1)
	go func() {
		result <- m.Tx(ctx, func(ctx context.Context) error {
			err := insert(ctx, m, id)
			started <- err
			if err != nil {
				return err
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, opts...)
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("insert in the blocked Tx: %v", err)
		}
	case err := <-result:
		t.Fatalf("the blocked Tx ended before its insert: %v", err)
	case <-ctx.Done():
		t.Fatal("the blocked Tx did not start")
	}
	return result
}

// waitClosed retries a scope that needs no connection until the Manager
// refuses it: Close has begun. ctx must carry no scope of m.
func waitClosed(ctx context.Context, m *session.Manager) error {
	for {
		err := m.Tx(ctx, func(context.Context) error { return nil }, session.Propagation(session.Never))
		if errors.Is(err, session.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("scope before Close: %w", err)
		}
		if ctx.Err() != nil {
			return errors.New("close did not begin")
		}
	}
}

// wantClosed checks that every kind of new scope is refused.
func wantClosed(t *testing.T, ctx context.Context, m *session.Manager) {
	t.Helper()
	noop := func(context.Context) error { return nil }
	for _, mode := range []session.Mode{session.Required, session.RequiresNew, session.Nested,
		session.Supports, session.NotSupported, session.Never} {
		wantErrIs(t, "Tx "+mode.String()+" after Close", m.Tx(ctx, noop, session.Propagation(mode)), session.ErrClosed)
	}
	wantErrIs(t, "ReadOnly after Close", m.ReadOnly(ctx, noop), session.ErrClosed)
	wantErrIs(t, "Conn after Close", m.Conn(ctx, noop), session.ErrClosed)
}

func TestCloseWaitsForScopesInFlight(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		release := make(chan struct{})
		result := startBlockedTx(t, ctx, m, 1, release)

		closed := make(chan error, 1)
		go func() { closed <- m.Close(ctx) }()
		if err := waitClosed(ctx, m); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, ctx, m)
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while a scope was in flight", err)
		case err := <-result:
			t.Fatalf("the scope in flight ended (%v) before its release", err)
		default:
		}
		close(release)
		wantErrIs(t, "the scope in flight", <-result, nil)
		wantErrIs(t, "Close", <-closed, nil)
		wantIDs(t, e, 1)
		wantErrIs(t, "Close again", m.Close(ctx), nil)
		fxtest.RequireNoLeaks(t, e)
	})
}

// A scope in flight may still open scopes inside itself while Close waits
// for it: they are part of the work Close lets finish.
func TestCloseLetsTheScopeInFlightOpenInnerScopes(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		tctx := testContext(t)
		closing := make(chan struct{})
		var closed chan error
		result := make(chan error, 1)
		go func() {
			result <- m.Tx(tctx, func(ctx context.Context) error {
				if err := insert(ctx, m, 1); err != nil {
					return err
				}
				close(closing)
				if err := waitClosed(tctx, m); err != nil { // tctx: no scope in it
					return err
				}
				if err := m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 2) },
					session.Propagation(session.Nested)); err != nil {
					return fmt.Errorf("nested: %w", err)
				}
				if e.Driver() != "sqlite3" {
					if err := m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 3) },
						session.Propagation(session.RequiresNew)); err != nil {
						return fmt.Errorf("requires new: %w", err)
					}
				}
				return m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 4) })
			})
		}()
		select {
		case <-closing:
		case err := <-result:
			t.Fatalf("Tx: %v", err)
		}
		closed = make(chan error, 1)
		go func() { closed <- m.Close(tctx) }()
		wantErrIs(t, "the scope in flight", <-result, nil)
		wantErrIs(t, "Close", <-closed, nil)
		if e.Driver() == "sqlite3" {
			wantIDs(t, e, 1, 2, 4)
		} else {
			wantIDs(t, e, 1, 2, 3, 4)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestCloseWithAnEndedContextCancelsScopesInFlight(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		result := startBlockedTx(t, ctx, m, 1, nil) // released by its ctx only

		ended, cancel := context.WithCancel(ctx)
		cancel()
		wantErrIs(t, "Close", m.Close(ended), context.Canceled)
		err := <-result
		wantErrIs(t, "the cancelled scope", err, session.ErrClosed)
		wantErrIs(t, "the cancelled scope", err, context.Canceled)
		if ctx.Err() != nil {
			t.Fatal("the test's ctx ended")
		}
		wantIDs(t, e)
		wantClosed(t, ctx, m)
		fxtest.RequireNoLeaks(t, e)
	})
}

// A scope still waiting for a connection when Close gives up is cut short
// like the scopes that hold one, though the engine closes its pools at
// once: it fails with ErrClosed and context.Canceled, not with the closed
// pool's error.
func TestCloseCutsAScopeWaitingForAConnection(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		const waiters = 8
		cfg.MaxOpenConns = 1
		ctx := testContext(t)
		e, err := dbfx.Open(ctx, cfg, fxtest.WithDrivers())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		mustExec(t, e, "CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(64) NOT NULL DEFAULT '')")
		m := e.Sessions()
		result := startBlockedTx(t, ctx, m, 1, nil) // holds the one connection until cancelled
		waiting := make(chan error, waiters)
		for i := range waiters {
			go func() {
				waiting <- m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 2+i) })
			}()
		}
		for m.Stats().Waiting < waiters { // no event says they wait
			if ctx.Err() != nil {
				t.Fatal("the other scopes never waited for a connection")
			}
			time.Sleep(time.Millisecond)
		}
		ended, cancel := context.WithCancel(ctx)
		cancel()
		wantErrIs(t, "Close", e.Close(ended), context.Canceled)
		err = <-result
		wantErrIs(t, "the scope in flight", err, session.ErrClosed)
		wantErrIs(t, "the scope in flight", err, context.Canceled)
		for range waiters {
			err := <-waiting
			wantErrIs(t, "a waiting scope", err, session.ErrClosed)
			wantErrIs(t, "a waiting scope", err, context.Canceled)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// A plain scope (no transaction) in flight is waited for and cancelled by
// Close like any other.
func TestCloseCancelsAPlainScopeInFlight(t *testing.T) {
	e := openEngine(t, fxtest.SQLite(t))
	m := e.Sessions()
	ctx := testContext(t)
	started := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- m.Tx(ctx, func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}, session.Propagation(session.Supports))
	}()
	<-started
	if s := m.Stats(); s.Active != 1 {
		t.Errorf("Stats().Active = %d, want 1", s.Active)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	wantErrIs(t, "Close", m.Close(ended), context.Canceled)
	err := <-result
	wantErrIs(t, "the cancelled scope", err, session.ErrClosed)
	wantErrIs(t, "the cancelled scope", err, context.Canceled)
	fxtest.RequireNoLeaks(t, e)
}

// Close with an ended ctx and nothing in flight has nothing to cancel.
func TestCloseWithNothingInFlight(t *testing.T) {
	e := openEngine(t, fxtest.SQLite(t))
	m := e.Sessions()
	for range 20 {
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		wantErrIs(t, "Close", m.Close(ended), nil)
	}
	fxtest.RequireNoLeaks(t, e)
}

func TestScopeContextUsedAfterTheScopeEnded(t *testing.T) {
	tests := []struct {
		name string
		give func(m *session.Manager, ctx context.Context, keep func(context.Context)) error
	}{
		{"Tx", func(m *session.Manager, ctx context.Context, keep func(context.Context)) error {
			return m.Tx(ctx, func(ctx context.Context) error { keep(ctx); return nil })
		}},
		{"failed Tx", func(m *session.Manager, ctx context.Context, keep func(context.Context)) error {
			err := m.Tx(ctx, func(ctx context.Context) error { keep(ctx); return errFn })
			if errors.Is(err, errFn) {
				return nil
			}
			return err
		}},
		{"ReadOnly", func(m *session.Manager, ctx context.Context, keep func(context.Context)) error {
			return m.ReadOnly(ctx, func(ctx context.Context) error { keep(ctx); return nil })
		}},
		{"Conn", func(m *session.Manager, ctx context.Context, keep func(context.Context)) error {
			return m.Conn(ctx, func(ctx context.Context) error { keep(ctx); return nil })
		}},
		{"Nested", func(m *session.Manager, ctx context.Context, keep func(context.Context)) error {
			return m.Tx(ctx, func(ctx context.Context) error {
				if err := m.Tx(ctx, func(ctx context.Context) error { keep(ctx); return nil },
					session.Propagation(session.Nested)); err != nil {
					return err
				}
				// The outer scope's own ctx still works.
				return insert(ctx, m, 1)
			})
		}},
		{"NotSupported", func(m *session.Manager, ctx context.Context, keep func(context.Context)) error {
			return m.Tx(ctx, func(ctx context.Context) error {
				return m.Tx(ctx, func(ctx context.Context) error { keep(ctx); return nil },
					session.Propagation(session.NotSupported))
			})
		}},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mustExec(t, e, "DELETE FROM items")
				var leaked context.Context
				wantErrIs(t, tt.name, tt.give(m, testContext(t), func(ctx context.Context) { leaked = ctx }), nil)
				if m.InTx(leaked) {
					t.Error("InTx is true on an ended scope's ctx")
				}
				// A ctx of its own for the statement: the scope's may be
				// cancelled, and must not be why it fails.
				stmt := testContext(t)
				q := m.Q(leaked)
				_, err := q.ExecContext(stmt, q.Rebind("INSERT INTO items (id) VALUES (?)"), 99)
				wantErrIs(t, "Exec", err, session.ErrScopeEnded)
				var n int
				wantErrIs(t, "Get", q.GetContext(stmt, &n, "SELECT COUNT(*) FROM items"), session.ErrScopeEnded)
				var ns []int
				wantErrIs(t, "Select", q.SelectContext(stmt, &ns, "SELECT id FROM items"), session.ErrScopeEnded)
				wantErrIs(t, "QueryRowx", q.QueryRowxContext(stmt, "SELECT COUNT(*) FROM items").Scan(&n), session.ErrScopeEnded)
				rows, err := q.QueryxContext(stmt, "SELECT id FROM items")
				if err == nil {
					rows.Close()
				}
				wantErrIs(t, "Queryx", err, session.ErrScopeEnded)
				_, err = q.NamedExecContext(stmt, "INSERT INTO items (id) VALUES (:id)", map[string]any{"id": 98})
				wantErrIs(t, "NamedExec", err, session.ErrScopeEnded)
				// New scopes on it are refused too, rather than run
				// outside the scope it named.
				wantErrIs(t, "Tx on the ended ctx", m.Tx(leaked, func(ctx context.Context) error { return insert(ctx, m, 97) }), session.ErrScopeEnded)
				wantErrIs(t, "Conn on the ended ctx", m.Conn(leaked, func(ctx context.Context) error { return insert(ctx, m, 96) }), session.ErrScopeEnded)
				for _, id := range ids(t, e) {
					if id > 1 {
						t.Errorf("item %d was written through an ended scope", id)
					}
				}
				fxtest.RequireNoLeaks(t, e)
			})
		}
	})
}

func TestAcquireTimeout(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.MaxOpenConns = 2
		cfg.AcquireTimeout = 200 * time.Millisecond
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		size := 2
		if e.Driver() == "sqlite3" {
			size = 1 // the writer
		}
		release := make(chan struct{})
		var held []<-chan error
		for i := range size {
			held = append(held, startBlockedTx(t, ctx, m, i+1, release))
		}

		ran := false
		err := m.Tx(ctx, func(ctx context.Context) error { ran = true; return nil })
		wantErrIs(t, "a Tx beyond the pool", err, session.ErrAcquireTimeout)
		if want := fmt.Sprintf("%d of %d in use", size, size); !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
		if ran {
			t.Error("fn ran without a connection")
		}
		if session.IsRetryable(err) {
			t.Error("an acquire timeout is retryable")
		}
		// So does a statement outside any scope.
		wantErrIs(t, "a statement beyond the pool", insert(ctx, m, 10), session.ErrAcquireTimeout)
		if s := e.Stats(); s.AcquireTimeouts < 2 {
			t.Errorf("Stats().AcquireTimeouts = %d, want 2", s.AcquireTimeouts)
		}
		if e.Driver() == "sqlite3" {
			// Readers have a pool of their own.
			wantErrIs(t, "ReadOnly while the writer is held", m.ReadOnly(ctx, func(ctx context.Context) error {
				_, err := count(ctx, m)
				return err
			}), nil)
		}

		close(release)
		for _, r := range held {
			wantErrIs(t, "a held Tx", <-r, nil)
		}
		want := []int{1, 2}
		wantIDs(t, e, want[:size]...)
		fxtest.RequireNoLeaks(t, e)
	})
}

// SQLite: writes queue for the single writer connection and reads run on
// the reader pool; no busy error escapes and nothing is lost.
func TestSQLiteConcurrentWritersAndReaders(t *testing.T) {
	const writers, readers, txs = 8, 8, 50
	e := openEngine(t, fxtest.SQLite(t))
	m := e.Sessions()
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range txs {
				id := w*txs + i + 1
				err := m.Tx(ctx, func(ctx context.Context) error {
					// Read, then write: the pattern that fails with
					// SQLITE_BUSY_SNAPSHOT in a deferred transaction.
					if _, err := count(ctx, m); err != nil {
						return err
					}
					return insert(ctx, m, id)
				}, session.NoRetry())
				if err != nil {
					errs <- fmt.Errorf("writer %d, tx %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for i := range txs {
				var n int
				err := m.ReadOnly(ctx, func(ctx context.Context) error {
					var err error
					n, err = count(ctx, m)
					return err
				}, session.NoRetry())
				if err != nil {
					errs <- fmt.Errorf("reader %d, read %d: %w", r, i, err)
					return
				}
				if n < last {
					errs <- fmt.Errorf("reader %d saw %d rows after %d", r, n, last)
					return
				}
				last = n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := ids(t, e)
	if len(got) != writers*txs {
		t.Fatalf("%d rows committed, want %d", len(got), writers*txs)
	}
	for i, id := range got {
		if id != i+1 {
			t.Fatalf("row %d has id %d", i, id)
		}
	}
	fxtest.RequireNoLeaks(t, e)
}

// Two engines, one ctx: each Manager sees only its own scopes.
func TestTwoManagersInOneContext(t *testing.T) {
	other := map[string]func(testing.TB) dbfx.Config{
		"sqlite3": fxtest.SQLite, "postgres": fxtest.Postgres, "mysql": fxtest.MySQL,
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e1 := openEngine(t, cfg)
		cfg2 := other[cfg.Driver](t)
		cfg2.Name = "second"
		e2 := openEngine(t, cfg2)
		m1, m2 := e1.Sessions(), e2.Sessions()
		ctx := testContext(t)
		pool2 := m2.Q(context.Background())
		cb := &counter{t: t, m: m2, outerTx: false}
		err := m1.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m1, 1); err != nil {
				return err
			}
			if m2.InTx(ctx) {
				t.Error("the second Manager sees the first's transaction")
			}
			if m2.Q(ctx) != pool2 {
				t.Error("the second Manager's Q is not its pool in the first's scope")
			}
			if err := insert(ctx, m2, 1); err != nil { // on e2's pool: committed at once
				return err
			}
			// On SQLite too: the first engine's writer is not the second's.
			err := m2.Tx(ctx, func(ctx2 context.Context) error {
				if !m1.InTx(ctx2) || !m2.InTx(ctx2) {
					t.Error("a scope of the second Manager hides the first's, or has none")
				}
				session.AfterCommit(ctx2, cb.fn) // the innermost: the second's
				if err := insert(ctx2, m2, 2); err != nil {
					return err
				}
				return insert(ctx2, m1, 2) // still in the first's transaction
			})
			if err != nil {
				return err
			}
			cb.want("after the second Manager's commit", 1)
			return errFn
		})
		wantErrIs(t, "first Tx", err, errFn)
		wantIDs(t, e1)
		wantIDs(t, e2, 1, 2)
		cb.want("in the end", 1)
		fxtest.RequireNoLeaks(t, e1)
		fxtest.RequireNoLeaks(t, e2)
	})
}
