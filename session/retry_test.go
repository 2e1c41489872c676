package session_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// retryOnFlaky retries errFlaky, without backoff.
func retryOnFlaky(attempts int) session.TxOption {
	return session.Retry(session.RetryPolicy{MaxAttempts: attempts, RetryOn: func(err error) bool { return errors.Is(err, errFlaky) }})
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name string
		// give runs the scopes and returns the outer one's error and how
		// many times its fn ran.
		give         func(ctx context.Context, m *session.Manager) (error, int)
		wantErr      error
		wantRetryErr bool // a *session.RetryError with wantAttempts
		wantAttempts int
	}{
		{
			name: "retries until the attempts run out",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				n := 0
				err := m.Tx(ctx, func(ctx context.Context) error { n++; return errFlaky }, retryOnFlaky(3))
				return err, n
			},
			wantErr: errFlaky, wantRetryErr: true, wantAttempts: 3,
		},
		{
			name: "stops at the first success",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				n := 0
				err := m.Tx(ctx, func(ctx context.Context) error {
					n++
					if n < 3 {
						return errFlaky
					}
					return insert(ctx, m, 1)
				}, retryOnFlaky(5))
				return err, n
			},
			wantAttempts: 3,
		},
		{
			name: "not retried without RetryOn: not a built-in class",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				n := 0
				err := m.Tx(ctx, func(ctx context.Context) error { n++; return errFlaky })
				return err, n
			},
			wantErr: errFlaky, wantAttempts: 1,
		},
		{
			name: "NoRetry",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				n := 0
				err := m.Tx(ctx, func(ctx context.Context) error { n++; return errFlaky },
					retryOnFlaky(3), session.NoRetry())
				return err, n
			},
			wantErr: errFlaky, wantAttempts: 1,
		},
		{
			name: "only the owning scope retries",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				outer, inner := 0, 0
				err := m.Tx(ctx, func(ctx context.Context) error {
					outer++
					return m.Tx(ctx, func(ctx context.Context) error {
						inner++
						if outer == 1 {
							return errFlaky
						}
						return insert(ctx, m, 1)
					}, retryOnFlaky(5)) // joins: its policy does not apply
				}, retryOnFlaky(3))
				if inner != outer {
					return fmt.Errorf("the inner fn ran %d times for %d outer runs", inner, outer), outer
				}
				return err, outer
			},
			wantAttempts: 2,
		},
		{
			name: "a retried nested scope is retried with its whole transaction",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				n := 0
				err := m.Tx(ctx, func(ctx context.Context) error {
					n++
					if err := insert(ctx, m, 1); err != nil {
						return err
					}
					return m.Tx(ctx, func(ctx context.Context) error {
						if n == 1 {
							return errFlaky
						}
						return nil
					}, session.Propagation(session.Nested))
				}, retryOnFlaky(3))
				return err, n
			},
			wantAttempts: 2,
		},
		{
			name: "ctx ends during the backoff",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				n := 0
				err := m.Tx(ctx, func(ctx context.Context) error {
					n++
					if n > 1 { // the backoff was short after all
						<-ctx.Done()
						return ctx.Err()
					}
					return errFlaky
				}, session.Retry(session.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Hour, RetryOn: func(err error) bool {
					return errors.Is(err, errFlaky)
				}}))
				return err, 1 // 1 or 2: both fine
			},
			wantErr: context.DeadlineExceeded, wantAttempts: 1,
		},
		{
			name: "Timeout bounds each attempt and is not retried",
			give: func(ctx context.Context, m *session.Manager) (error, int) {
				n := 0
				err := m.Tx(ctx, func(ctx context.Context) error {
					n++
					if err := insert(ctx, m, 1); err != nil {
						return err
					}
					<-ctx.Done()
					return ctx.Err()
				}, session.Timeout(50*time.Millisecond))
				return err, n
			},
			wantErr: context.DeadlineExceeded, wantAttempts: 1,
		},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mustExec(t, e, "DELETE FROM items")
				err, attempts := tt.give(testContext(t), m)
				wantErrIs(t, "Tx", err, tt.wantErr)
				var re *session.RetryError
				if got := errors.As(err, &re); got != tt.wantRetryErr {
					t.Fatalf("Tx = %v: a RetryError: %v, want %v", err, got, tt.wantRetryErr)
				}
				if re != nil && re.Attempts != tt.wantAttempts {
					t.Errorf("RetryError.Attempts = %d, want %d", re.Attempts, tt.wantAttempts)
				}
				if attempts != tt.wantAttempts {
					t.Errorf("fn ran %d times, want %d", attempts, tt.wantAttempts)
				}
				if tt.wantErr == nil {
					wantIDs(t, e, 1)
				} else {
					wantIDs(t, e)
				}
				fxtest.RequireNoLeaks(t, e)
			})
		}
	})
}

// retrySignal is a monitor that reports the first retry of a transaction.
type retrySignal struct {
	monitor.Monitor
	retried chan error
}

func (r *retrySignal) Tx(_ context.Context, e monitor.TxEvent) {
	if e.Kind == monitor.TxRetry {
		select {
		case r.retried <- e.Err:
		default:
		}
	}
}

// SQLite: another process holds the write lock past the busy timeout. The
// BEGIN fails with SQLITE_BUSY, which is retried until the lock is free.
func TestSQLiteBusyIsRetried(t *testing.T) {
	tests := []struct {
		name      string
		give      session.TxOption
		wantRetry bool
	}{
		{"retried", session.Retry(session.RetryPolicy{MaxAttempts: 1000, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}), true},
		{"no retry", session.NoRetry(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fxtest.SQLite(t)
			a := openEngine(t, cfg) // the other process
			ctx := testContext(t)
			sig := &retrySignal{Monitor: monitor.Nop(), retried: make(chan error, 1)}
			bcfg := cfg
			bcfg.Name, bcfg.DSN = "other", cfg.DSN+"?_busy_timeout=20"
			b, err := dbfx.Open(ctx, bcfg, fxtest.WithDrivers(), dbfx.WithMonitor(sig))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close(context.Background()) })

			release := make(chan struct{})
			held := startBlockedTx(t, ctx, a.Sessions(), 1, release)
			result := make(chan error, 1)
			go func() {
				result <- b.Sessions().Tx(ctx, func(ctx context.Context) error { return insert(ctx, b.Sessions(), 2) }, tt.give)
			}()
			if !tt.wantRetry {
				err := <-result
				var se sqlite3.Error
				if !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || !session.IsRetryable(err) {
					t.Fatalf("Tx = %v, want a retryable SQLITE_BUSY", err)
				}
				close(release)
				wantErrIs(t, "the holder", <-held, nil)
				wantIDs(t, a, 1)
				fxtest.RequireNoLeaks(t, a)
				fxtest.RequireNoLeaks(t, b)
				return
			}
			select {
			case err := <-sig.retried:
				var se sqlite3.Error
				if !errors.As(err, &se) || se.Code != sqlite3.ErrBusy {
					t.Errorf("retried after %v, want SQLITE_BUSY", err)
				}
			case err := <-result:
				t.Fatalf("Tx = %v while another process held the write lock", err)
			}
			close(release)
			wantErrIs(t, "the holder", <-held, nil)
			wantErrIs(t, "the retried Tx", <-result, nil)
			wantIDs(t, a, 1, 2)
			fxtest.RequireNoLeaks(t, a)
			fxtest.RequireNoLeaks(t, b)
		})
	}
}

// killConn returns a function that kills, from the server side, the
// connection of the scope whose Querier it is given, and returns once it is
// gone; nil for an embedded database.
func killConn(driverName string) func(ctx context.Context, e *dbfx.Engine, q session.Querier) error {
	switch driverName {
	case "postgres":
		return func(ctx context.Context, e *dbfx.Engine, q session.Querier) error {
			var pid int
			if err := q.GetContext(ctx, &pid, "SELECT pg_backend_pid()"); err != nil {
				return err
			}
			var ok bool // waits until the backend has gone
			return e.DB().GetContext(ctx, &ok, "SELECT pg_terminate_backend($1, 10000)", pid)
		}
	case "mysql":
		return func(ctx context.Context, e *dbfx.Engine, q session.Querier) error {
			var id int64
			if err := q.GetContext(ctx, &id, "SELECT CONNECTION_ID()"); err != nil {
				return err
			}
			if _, err := e.DB().ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
				return err
			}
			for { // until the server has dropped it
				var n int
				if err := e.DB().GetContext(ctx, &n, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id); err != nil || n == 0 {
					return err
				}
			}
		}
	}
	return nil
}

// The connection is lost before COMMIT: the outcome is unknown to the
// client, which gets ErrAmbiguousCommit, and the transaction is not run
// again (it may have committed).
func TestConnectionLostAtCommitIsAmbiguous(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		kill := killConn(cfg.Driver)
		if kill == nil {
			t.Skip("an embedded database has no connection to lose")
		}
		e := openEngine(t, cfg)
		m := e.Sessions()
		attempts := 0
		err := m.Tx(testContext(t), func(ctx context.Context) error {
			attempts++
			if err := insert(ctx, m, 1); err != nil {
				return err
			}
			return kill(ctx, e, m.Q(ctx))
		})
		wantErrIs(t, "Tx", err, session.ErrAmbiguousCommit)
		if session.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = true", err)
		}
		if attempts != 1 {
			t.Errorf("fn ran %d times, want 1", attempts)
		}
		wantIDs(t, e) // the server did roll it back
		fxtest.RequireNoLeaks(t, e)
	})
}

// A read-only transaction changed nothing: losing its connection during
// COMMIT leaves no outcome in doubt. It is retried, like a read-only
// transaction that lost its connection on a statement.
func TestReadOnlyConnectionLostAtCommitIsRetried(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		kill := killConn(cfg.Driver)
		if kill == nil {
			t.Skip("an embedded database has no connection to lose")
		}
		e := openEngine(t, cfg)
		m := e.Sessions()
		attempts := 0
		err := m.ReadOnly(testContext(t), func(ctx context.Context) error {
			attempts++
			var n int
			if err := m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM items"); err != nil {
				return err
			}
			if attempts == 1 {
				return kill(ctx, e, m.Q(ctx))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ReadOnly: %v, want a successful retry", err)
		}
		if attempts != 2 {
			t.Errorf("fn ran %d times, want 2", attempts)
		}
		err = m.ReadOnly(testContext(t), func(ctx context.Context) error {
			return kill(ctx, e, m.Q(ctx))
		}, session.NoRetry())
		if err == nil || errors.Is(err, session.ErrAmbiguousCommit) {
			t.Errorf("ReadOnly without retry: %v, want the lost connection's error", err)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}
