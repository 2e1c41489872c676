package session_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// What the inner scope's fn does after inserting its row.
type fnKind int

const (
	returnsNil fnKind = iota
	returnsErr
	panics
)

func (k fnKind) String() string { return [...]string{"nil", "error", "panic"}[k] }

// Rows of the propagation tests: the outer scope inserts 1, the inner 2.
const (
	outerRow = 1
	innerRow = 2
)

// propagationWant is what one cell of the matrix must give.
type propagationWant struct {
	err      error // the inner scope's error (errors.Is); nil: none
	panics   bool  // the inner scope re-panicked with the original value
	ran      bool  // fn ran
	inTx     bool  // InTx inside fn
	outerErr error // the outer Tx's error (errors.Is); nil: none
	rows     []int // the items committed in the end
}

func TestPropagationMatrix(t *testing.T) {
	tests := []struct {
		give session.Mode
		inTx bool // the scope runs inside an outer transaction
		fn   fnKind
		want propagationWant
		// wantSQLite, when set, replaces want on SQLite, where the single
		// writer connection is held by the outer transaction.
		wantSQLite *propagationWant
	}{
		// Outside a transaction.
		{give: session.Required, fn: returnsNil, want: propagationWant{ran: true, inTx: true, rows: []int{innerRow}}},
		{give: session.Required, fn: returnsErr, want: propagationWant{err: errFn, ran: true, inTx: true}},
		{give: session.Required, fn: panics, want: propagationWant{panics: true, ran: true, inTx: true}},
		{give: session.RequiresNew, fn: returnsNil, want: propagationWant{ran: true, inTx: true, rows: []int{innerRow}}},
		{give: session.RequiresNew, fn: returnsErr, want: propagationWant{err: errFn, ran: true, inTx: true}},
		{give: session.RequiresNew, fn: panics, want: propagationWant{panics: true, ran: true, inTx: true}},
		{give: session.Nested, fn: returnsNil, want: propagationWant{ran: true, inTx: true, rows: []int{innerRow}}},
		{give: session.Nested, fn: returnsErr, want: propagationWant{err: errFn, ran: true, inTx: true}},
		{give: session.Nested, fn: panics, want: propagationWant{panics: true, ran: true, inTx: true}},
		{give: session.Mandatory, fn: returnsNil, want: propagationWant{err: session.ErrNoTransaction}},
		{give: session.Mandatory, fn: returnsErr, want: propagationWant{err: session.ErrNoTransaction}},
		{give: session.Mandatory, fn: panics, want: propagationWant{err: session.ErrNoTransaction}},
		{give: session.Supports, fn: returnsNil, want: propagationWant{ran: true, rows: []int{innerRow}}},
		{give: session.Supports, fn: returnsErr, want: propagationWant{err: errFn, ran: true, rows: []int{innerRow}}},
		{give: session.Supports, fn: panics, want: propagationWant{panics: true, ran: true, rows: []int{innerRow}}},
		{give: session.NotSupported, fn: returnsNil, want: propagationWant{ran: true, rows: []int{innerRow}}},
		{give: session.NotSupported, fn: returnsErr, want: propagationWant{err: errFn, ran: true, rows: []int{innerRow}}},
		{give: session.NotSupported, fn: panics, want: propagationWant{panics: true, ran: true, rows: []int{innerRow}}},
		{give: session.Never, fn: returnsNil, want: propagationWant{ran: true, rows: []int{innerRow}}},
		{give: session.Never, fn: returnsErr, want: propagationWant{err: errFn, ran: true, rows: []int{innerRow}}},
		{give: session.Never, fn: panics, want: propagationWant{panics: true, ran: true, rows: []int{innerRow}}},

		// Inside a transaction whose fn swallows the inner scope's error or
		// panic and returns nil.
		{give: session.Required, inTx: true, fn: returnsNil, want: propagationWant{ran: true, inTx: true, rows: []int{outerRow, innerRow}}},
		{give: session.Required, inTx: true, fn: returnsErr, want: propagationWant{err: errFn, ran: true, inTx: true, outerErr: session.ErrUnexpectedRollback}},
		{give: session.Required, inTx: true, fn: panics, want: propagationWant{panics: true, ran: true, inTx: true, outerErr: session.ErrUnexpectedRollback}},
		{
			give: session.RequiresNew, inTx: true, fn: returnsNil,
			want:       propagationWant{ran: true, inTx: true, rows: []int{outerRow, innerRow}},
			wantSQLite: &propagationWant{err: session.ErrAcquireTimeout, rows: []int{outerRow}},
		},
		{
			give: session.RequiresNew, inTx: true, fn: returnsErr,
			want:       propagationWant{err: errFn, ran: true, inTx: true, rows: []int{outerRow}},
			wantSQLite: &propagationWant{err: session.ErrAcquireTimeout, rows: []int{outerRow}},
		},
		{
			give: session.RequiresNew, inTx: true, fn: panics,
			want:       propagationWant{panics: true, ran: true, inTx: true, rows: []int{outerRow}},
			wantSQLite: &propagationWant{err: session.ErrAcquireTimeout, rows: []int{outerRow}},
		},
		{give: session.Nested, inTx: true, fn: returnsNil, want: propagationWant{ran: true, inTx: true, rows: []int{outerRow, innerRow}}},
		{give: session.Nested, inTx: true, fn: returnsErr, want: propagationWant{err: errFn, ran: true, inTx: true, rows: []int{outerRow}}},
		{give: session.Nested, inTx: true, fn: panics, want: propagationWant{panics: true, ran: true, inTx: true, rows: []int{outerRow}}},
		{give: session.Mandatory, inTx: true, fn: returnsNil, want: propagationWant{ran: true, inTx: true, rows: []int{outerRow, innerRow}}},
		{give: session.Mandatory, inTx: true, fn: returnsErr, want: propagationWant{err: errFn, ran: true, inTx: true, outerErr: session.ErrUnexpectedRollback}},
		{give: session.Mandatory, inTx: true, fn: panics, want: propagationWant{panics: true, ran: true, inTx: true, outerErr: session.ErrUnexpectedRollback}},
		{give: session.Supports, inTx: true, fn: returnsNil, want: propagationWant{ran: true, inTx: true, rows: []int{outerRow, innerRow}}},
		{give: session.Supports, inTx: true, fn: returnsErr, want: propagationWant{err: errFn, ran: true, inTx: true, outerErr: session.ErrUnexpectedRollback}},
		{give: session.Supports, inTx: true, fn: panics, want: propagationWant{panics: true, ran: true, inTx: true, outerErr: session.ErrUnexpectedRollback}},
		{
			give: session.NotSupported, inTx: true, fn: returnsNil,
			want:       propagationWant{ran: true, rows: []int{outerRow, innerRow}},
			wantSQLite: &propagationWant{err: session.ErrAcquireTimeout, ran: true, rows: []int{outerRow}},
		},
		{
			give: session.NotSupported, inTx: true, fn: returnsErr,
			want:       propagationWant{err: errFn, ran: true, rows: []int{outerRow, innerRow}},
			wantSQLite: &propagationWant{err: session.ErrAcquireTimeout, ran: true, rows: []int{outerRow}},
		},
		{
			give: session.NotSupported, inTx: true, fn: panics,
			want:       propagationWant{panics: true, ran: true, rows: []int{outerRow, innerRow}},
			wantSQLite: &propagationWant{err: session.ErrAcquireTimeout, ran: true, rows: []int{outerRow}},
		},
		{give: session.Never, inTx: true, fn: returnsNil, want: propagationWant{err: session.ErrTransactionExists, rows: []int{outerRow}}},
		{give: session.Never, inTx: true, fn: returnsErr, want: propagationWant{err: session.ErrTransactionExists, rows: []int{outerRow}}},
		{give: session.Never, inTx: true, fn: panics, want: propagationWant{err: session.ErrTransactionExists, rows: []int{outerRow}}},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		for _, tt := range tests {
			where := "outside"
			if tt.inTx {
				where = "inside"
			}
			t.Run(tt.give.String()+"/"+where+"/"+tt.fn.String(), func(t *testing.T) {
				mustExec(t, e, "DELETE FROM items")
				want := tt.want
				if tt.wantSQLite != nil && e.Driver() == "sqlite3" {
					want = *tt.wantSQLite
				}
				ctx := testContext(t)
				pv := &panicValue{tt.give.String()}

				var ran, inTx bool
				var innerErr error
				var recovered any
				inner := func(ctx context.Context) {
					recovered = catch(func() {
						innerErr = m.Tx(ctx, func(ctx context.Context) error {
							ran, inTx = true, m.InTx(ctx)
							if err := insert(ctx, m, innerRow); err != nil {
								return err
							}
							switch tt.fn {
							case returnsErr:
								return errFn
							case panics:
								panic(pv)
							}
							return nil
						}, session.Propagation(tt.give))
					})
				}
				var outerErr error
				if tt.inTx {
					outerErr = m.Tx(ctx, func(ctx context.Context) error {
						if err := insert(ctx, m, outerRow); err != nil {
							return err
						}
						inner(ctx)
						if !m.InTx(ctx) {
							t.Error("the outer scope's ctx lost its transaction")
						}
						return nil // swallows the inner scope's failure
					})
				} else {
					inner(ctx)
				}

				wantErrIs(t, "inner scope", innerErr, want.err)
				if want.panics {
					if recovered != any(pv) {
						t.Fatalf("recovered %v, want the original panic value %v", recovered, pv)
					}
				} else if recovered != nil {
					t.Fatalf("unexpected panic: %v", recovered)
				}
				if ran != want.ran {
					t.Errorf("fn ran = %v, want %v", ran, want.ran)
				}
				if ran && inTx != want.inTx {
					t.Errorf("InTx inside fn = %v, want %v", inTx, want.inTx)
				}
				wantErrIs(t, "outer scope", outerErr, want.outerErr)
				wantIDs(t, e, want.rows...)
				fxtest.RequireNoLeaks(t, e)
			})
		}
	})
}

// A RequiresNew scope commits on its own: the outer transaction's rollback
// does not undo it. SQLite has one writer connection, so it cannot.
func TestRequiresNewCommitsIndependently(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, outerRow); err != nil {
				return err
			}
			err := m.Tx(ctx, func(ctx context.Context) error {
				// The new transaction does not see the outer's row.
				n, err := count(ctx, m)
				if err == nil && n != 0 {
					t.Errorf("RequiresNew sees %d uncommitted rows of the outer transaction", n)
				}
				return insert(ctx, m, innerRow)
			}, session.Propagation(session.RequiresNew))
			if e.Driver() == "sqlite3" {
				wantErrIs(t, "RequiresNew on SQLite", err, session.ErrAcquireTimeout)
			} else {
				wantErrIs(t, "RequiresNew", err, nil)
			}
			if !m.InTx(ctx) {
				t.Error("the outer transaction is gone from its ctx")
			}
			return errFn
		})
		wantErrIs(t, "outer Tx", err, errFn)
		if e.Driver() == "sqlite3" {
			wantIDs(t, e)
		} else {
			wantIDs(t, e, innerRow)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// RequiresNew on SQLite fails at once, without waiting for the writer the
// outer transaction holds: here the acquire timeout is longer than the
// test's deadline.
func TestRequiresNewFailsFastWhenAncestorsHoldThePool(t *testing.T) {
	cfg := fxtest.SQLite(t)
	cfg.AcquireTimeout = 10 * testTimeout
	e := openEngine(t, cfg)
	m := e.Sessions()
	ctx := testContext(t)
	err := m.Tx(ctx, func(ctx context.Context) error {
		return m.Tx(ctx, func(ctx context.Context) error { return nil }, session.Propagation(session.RequiresNew))
	})
	wantErrIs(t, "RequiresNew", err, session.ErrAcquireTimeout)
	if !strings.Contains(err.Error(), "all 1 ") {
		t.Errorf("%q does not name the pool size", err)
	}
	fxtest.RequireNoLeaks(t, e)
}

// NotSupported suspends the transaction: Q(ctx) is the pool, and what runs
// there is not undone by the outer rollback. On SQLite the pool's only
// writer is held by the suspended transaction: SELECTs run on the reader
// pool, every other statement fails at once.
func TestNotSupportedRunsOnThePool(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.AcquireTimeout = 10 * testTimeout
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		pool := m.Q(context.Background())
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, outerRow); err != nil {
				return err
			}
			if m.Q(ctx) == pool {
				t.Error("Q(ctx) in a transaction is the pool")
			}
			err := m.Tx(ctx, func(ctx context.Context) error {
				if m.Q(ctx) != pool {
					t.Error("Q(ctx) in a NotSupported scope is not the pool")
				}
				if m.InTx(ctx) {
					t.Error("InTx is true in a NotSupported scope")
				}
				if e.Driver() == "sqlite3" {
					// SELECTs run on the reader pool, and see only what
					// was committed: not the suspended transaction's row.
					var n int
					sel := m.Rebind("SELECT COUNT(*) FROM items WHERE id = ?")
					wantErrIs(t, "QueryRowx", m.Q(ctx).QueryRowxContext(ctx, sel, outerRow).Scan(&n), nil)
					wantErrIs(t, "Get", m.Prepared(ctx).GetContext(ctx, &n, sel, outerRow), nil)
					if n != 0 {
						t.Errorf("a SELECT in NotSupported counts %d of the suspended transaction's rows, want 0", n)
					}
					// Every other statement needs the writer, which the
					// suspended transaction holds: it fails at once.
					_, err := m.Q(ctx).QueryxContext(ctx, "INSERT INTO items (id) VALUES (77) RETURNING id")
					wantErrIs(t, "Queryx", err, session.ErrAcquireTimeout)
					_, err = m.Q(ctx).ExecContext(ctx, "SELECT 1")
					wantErrIs(t, "Exec", err, session.ErrAcquireTimeout)
					// So does a scope that needs a connection of its own.
					wantErrIs(t, "Conn", m.Conn(ctx, func(context.Context) error { return nil }), session.ErrAcquireTimeout)
					wantErrIs(t, "Tx", m.Tx(ctx, func(context.Context) error { return nil }), session.ErrAcquireTimeout)
				}
				return insert(ctx, m, innerRow)
			}, session.Propagation(session.NotSupported))
			if e.Driver() == "sqlite3" {
				wantErrIs(t, "insert in NotSupported on SQLite", err, session.ErrAcquireTimeout)
			} else {
				wantErrIs(t, "insert in NotSupported", err, nil)
			}
			if !m.InTx(ctx) || m.Q(ctx) == pool {
				t.Error("the outer transaction did not resume after NotSupported")
			}
			return errFn
		})
		wantErrIs(t, "outer Tx", err, errFn)
		want := []int{innerRow}
		if e.Driver() == "sqlite3" {
			want = nil
		}
		wantIDs(t, e, want...)
		fxtest.RequireNoLeaks(t, e)
	})
}

// Nested: an inner failure rolls back to the savepoint only; savepoints
// nest and their names do not collide.
func TestNestedRollsBackOnlyItsSavepoint(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		nested := session.Propagation(session.Nested)
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 1); err != nil {
				return err
			}
			// 2 is kept; inside it, 3 fails and 4 is kept.
			err := m.Tx(ctx, func(ctx context.Context) error {
				if err := insert(ctx, m, 2); err != nil {
					return err
				}
				err := m.Tx(ctx, func(ctx context.Context) error {
					if err := insert(ctx, m, 3); err != nil {
						return err
					}
					return errFn
				}, nested)
				wantErrIs(t, "innermost", err, errFn)
				return m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 4) }, nested)
			}, nested)
			wantErrIs(t, "nested", err, nil)
			// 5 fails after a kept nested scope of its own.
			err = m.Tx(ctx, func(ctx context.Context) error {
				if err := m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 5) }, nested); err != nil {
					return err
				}
				return errFn
			}, nested)
			wantErrIs(t, "second nested", err, errFn)
			n, err := count(ctx, m)
			if err != nil || n != 3 {
				t.Errorf("the outer transaction sees %d rows (%v), want 3", n, err)
			}
			return insert(ctx, m, 6)
		})
		wantErrIs(t, "Tx", err, nil)
		wantIDs(t, e, 1, 2, 4, 6)
		fxtest.RequireNoLeaks(t, e)
	})
}

// A required scope nested in a Nested one fails: the savepoint is rolled
// back, not the whole transaction.
func TestRequiredFailureInsideNestedRollsBackTheSavepoint(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 1); err != nil {
				return err
			}
			err := m.Tx(ctx, func(ctx context.Context) error {
				if err := insert(ctx, m, 2); err != nil {
					return err
				}
				_ = m.Tx(ctx, func(ctx context.Context) error { return errFn }) // swallowed
				return nil
			}, session.Propagation(session.Nested))
			wantErrIs(t, "nested", err, session.ErrUnexpectedRollback)
			return nil
		})
		wantErrIs(t, "Tx", err, nil)
		wantIDs(t, e, 1)
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestModeString(t *testing.T) {
	modes := []session.Mode{session.Required, session.RequiresNew, session.Nested, session.Mandatory,
		session.Supports, session.NotSupported, session.Never, session.Mode(99)}
	var got []string
	for _, m := range modes {
		got = append(got, m.String())
	}
	want := []string{"Required", "RequiresNew", "Nested", "Mandatory", "Supports", "NotSupported", "Never", "Mode(?)"}
	if !slices.Equal(got, want) {
		t.Fatalf("String = %v, want %v", got, want)
	}
}

func TestUnknownModeIsAnError(t *testing.T) {
	e := openEngine(t, fxtest.SQLite(t))
	ran := false
	err := e.Sessions().Tx(testContext(t), func(context.Context) error { ran = true; return nil }, session.Propagation(session.Mode(99)))
	if err == nil || ran {
		t.Fatalf("Tx with an unknown mode = %v (fn ran: %v), want an error before fn", err, ran)
	}
	fxtest.RequireNoLeaks(t, e)
}
