package session_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// counter is an AfterCommit callback that counts its runs and checks that
// it runs with the ctx its scope was opened with: outside any transaction,
// unless outerTx (a RequiresNew scope inside another transaction).
type counter struct {
	t       *testing.T
	m       *session.Manager
	outerTx bool
	n       atomic.Int32
}

func (c *counter) fn(ctx context.Context) {
	if c.m.InTx(ctx) != c.outerTx {
		c.t.Errorf("an AfterCommit callback runs with InTx(ctx) = %v", !c.outerTx)
	}
	c.n.Add(1)
}

func (c *counter) want(what string, n int32) {
	c.t.Helper()
	if got := c.n.Load(); got != n {
		c.t.Errorf("%s: the callback ran %d times, want %d", what, got, n)
	}
}

var errFlaky = errors.New("flaky")

func TestAfterCommit(t *testing.T) {
	nested := session.Propagation(session.Nested)
	tests := []struct {
		name string
		// give runs scopes on m and registers cb (cbs[1] when it needs a
		// second) with AfterCommit, checking meanwhile that cbs have not
		// run too early.
		give func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter)
		want [2]int32
	}{
		{
			name: "runs once after the commit",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				err := m.Tx(ctx, func(ctx context.Context) error {
					session.AfterCommit(ctx, cbs[0].fn)
					// A joined scope's callback waits for the owner's commit.
					if err := m.Tx(ctx, func(ctx context.Context) error {
						session.AfterCommit(ctx, cbs[1].fn)
						return nil
					}); err != nil {
						return err
					}
					cbs[0].want("before the commit", 0)
					cbs[1].want("before the commit", 0)
					return insert(ctx, m, 1)
				})
				wantErrIs(t, "Tx", err, nil)
			},
			want: [2]int32{1, 1},
		},
		{
			name: "never after a rollback",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				err := m.Tx(ctx, func(ctx context.Context) error {
					session.AfterCommit(ctx, cbs[0].fn)
					return errFn
				})
				wantErrIs(t, "Tx", err, errFn)
			},
		},
		{
			name: "never after an unexpected rollback",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				err := m.Tx(ctx, func(ctx context.Context) error {
					session.AfterCommit(ctx, cbs[0].fn)
					_ = m.Tx(ctx, func(ctx context.Context) error { return errFn }) // swallowed
					return nil
				})
				wantErrIs(t, "Tx", err, session.ErrUnexpectedRollback)
			},
		},
		{
			name: "not for an attempt that was retried",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				attempt := 0
				err := m.Tx(ctx, func(ctx context.Context) error {
					attempt++
					if attempt == 1 {
						session.AfterCommit(ctx, cbs[0].fn)
						return errFlaky
					}
					session.AfterCommit(ctx, cbs[1].fn)
					return nil
				}, session.Retry(session.RetryPolicy{MaxAttempts: 3, RetryOn: func(err error) bool { return errors.Is(err, errFlaky) }}))
				wantErrIs(t, "Tx", err, nil)
				if attempt != 2 {
					t.Errorf("fn ran %d times, want 2", attempt)
				}
			},
			want: [2]int32{0, 1},
		},
		{
			name: "at once outside a transaction",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				session.AfterCommit(ctx, cbs[0].fn)
				cbs[0].want("outside a transaction", 1)
				// Nor is there one in a NotSupported scope, or in a
				// Conn scope.
				err := m.Tx(ctx, func(ctx context.Context) error {
					return m.Tx(ctx, func(ctx context.Context) error {
						session.AfterCommit(ctx, cbs[1].fn)
						cbs[1].want("in NotSupported", 1)
						return nil
					}, session.Propagation(session.NotSupported))
				})
				wantErrIs(t, "Tx", err, nil)
				err = m.Conn(ctx, func(ctx context.Context) error {
					session.AfterCommit(ctx, cbs[1].fn)
					cbs[1].want("in Conn", 2)
					return nil
				})
				wantErrIs(t, "Conn", err, nil)
			},
			want: [2]int32{1, 2},
		},
		{
			name: "dropped with a savepoint rolled back to",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				err := m.Tx(ctx, func(ctx context.Context) error {
					err := m.Tx(ctx, func(ctx context.Context) error {
						session.AfterCommit(ctx, cbs[0].fn)
						return errFn
					}, nested)
					wantErrIs(t, "failed nested", err, errFn)
					err = m.Tx(ctx, func(ctx context.Context) error {
						session.AfterCommit(ctx, cbs[1].fn)
						return nil
					}, nested)
					wantErrIs(t, "nested", err, nil)
					cbs[1].want("after RELEASE SAVEPOINT, before the commit", 0)
					return nil
				})
				wantErrIs(t, "Tx", err, nil)
			},
			want: [2]int32{0, 1},
		},
		{
			name: "dropped when a nested scope's savepoint was kept but the transaction rolled back",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				err := m.Tx(ctx, func(ctx context.Context) error {
					err := m.Tx(ctx, func(ctx context.Context) error {
						session.AfterCommit(ctx, cbs[0].fn)
						return nil
					}, nested)
					wantErrIs(t, "nested", err, nil)
					return errFn
				})
				wantErrIs(t, "Tx", err, errFn)
			},
		},
		{
			name: "dropped with a savepoint whose parent savepoint is rolled back",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				err := m.Tx(ctx, func(ctx context.Context) error {
					err := m.Tx(ctx, func(ctx context.Context) error {
						if err := m.Tx(ctx, func(ctx context.Context) error {
							session.AfterCommit(ctx, cbs[0].fn)
							return nil
						}, nested); err != nil {
							return err
						}
						return errFn
					}, nested)
					wantErrIs(t, "nested", err, errFn)
					session.AfterCommit(ctx, cbs[1].fn)
					return nil
				})
				wantErrIs(t, "Tx", err, nil)
			},
			want: [2]int32{0, 1},
		},
		{
			name: "after a panic, never",
			give: func(t *testing.T, ctx context.Context, m *session.Manager, cbs [2]*counter) {
				pv := &panicValue{"after commit"}
				got := catch(func() {
					_ = m.Tx(ctx, func(ctx context.Context) error {
						session.AfterCommit(ctx, cbs[0].fn)
						panic(pv)
					})
				})
				if got != any(pv) {
					t.Errorf("recovered %v, want %v", got, pv)
				}
			},
		},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cbs := [2]*counter{{t: t, m: m}, {t: t, m: m}}
				tt.give(t, testContext(t), m, cbs)
				cbs[0].want("in the end", tt.want[0])
				cbs[1].want("in the end (second callback)", tt.want[1])
				fxtest.RequireNoLeaks(t, e)
			})
		}
	})
}

// A RequiresNew scope's callbacks run when it commits, even if the outer
// transaction then rolls back (not on SQLite: no second writer).
func TestAfterCommitOfRequiresNewRunsAtItsCommit(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		if cfg.Driver == "sqlite3" {
			t.Skip("SQLite has one writer connection: RequiresNew cannot run inside a transaction")
		}
		e := openEngine(t, cfg)
		m := e.Sessions()
		cb := &counter{t: t, m: m, outerTx: true}
		err := m.Tx(testContext(t), func(ctx context.Context) error {
			err := m.Tx(ctx, func(ctx context.Context) error {
				session.AfterCommit(ctx, cb.fn)
				return nil
			}, session.Propagation(session.RequiresNew))
			wantErrIs(t, "RequiresNew", err, nil)
			cb.want("after the RequiresNew scope", 1)
			return errFn
		})
		wantErrIs(t, "Tx", err, errFn)
		cb.want("in the end", 1)
		fxtest.RequireNoLeaks(t, e)
	})
}
