package session_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

var errFn = errors.New("fn failed")

func TestTxCommitsOnNil(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		var inTx bool
		err := m.Tx(ctx, func(ctx context.Context) error {
			inTx = m.InTx(ctx)
			return insert(ctx, m, 1)
		})
		wantErrIs(t, "Tx", err, nil)
		if !inTx {
			t.Error("InTx was false inside Tx")
		}
		if m.InTx(ctx) {
			t.Error("InTx is true outside Tx")
		}
		wantIDs(t, e, 1)
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestTxRollsBackOnError(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 1); err != nil {
				return err
			}
			return errFn
		})
		wantErrIs(t, "Tx", err, errFn)
		wantIDs(t, e)
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestTxPanicRollsBackAndRepanicsWithTheOriginalValue(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		want := &panicValue{"boom"}
		got := catch(func() {
			_ = m.Tx(ctx, func(ctx context.Context) error {
				if err := insert(ctx, m, 1); err != nil {
					t.Errorf("insert: %v", err)
				}
				panic(want)
			})
		})
		if got != any(want) {
			t.Fatalf("recovered %v (%T), want the original %p", got, got, want)
		}
		wantIDs(t, e)
		// The connection went back to the pool in a usable state.
		wantErrIs(t, "Tx after panic", m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 2) }), nil)
		wantIDs(t, e, 2)
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestTxCancelledContextRollsBackAndReturnsTheContextError(t *testing.T) {
	tests := []struct {
		name string
		give func(ctx context.Context, m *session.Manager, cancel context.CancelFunc) error
	}{
		{
			name: "fn returns nil after cancel",
			give: func(ctx context.Context, m *session.Manager, cancel context.CancelFunc) error {
				if err := insert(ctx, m, 1); err != nil {
					return err
				}
				cancel()
				return nil
			},
		},
		{
			name: "fn returns the next statement's error",
			give: func(ctx context.Context, m *session.Manager, cancel context.CancelFunc) error {
				if err := insert(ctx, m, 1); err != nil {
					return err
				}
				cancel()
				return insert(ctx, m, 2)
			},
		},
		{
			// database/sql rolls a transaction back when its ctx ends; this
			// fn waits until it has, so the scope finds it done.
			name: "fn waits for the rollback",
			give: func(ctx context.Context, m *session.Manager, cancel context.CancelFunc) error {
				if err := insert(ctx, m, 1); err != nil {
					return err
				}
				cancel()
				for {
					_, err := m.Q(ctx).ExecContext(context.WithoutCancel(ctx), "SELECT 1")
					if err != nil {
						return err
					}
				}
			},
		},
		{
			name: "fn waits for the cancel",
			give: func(ctx context.Context, m *session.Manager, cancel context.CancelFunc) error {
				if err := insert(ctx, m, 1); err != nil {
					return err
				}
				cancel()
				<-ctx.Done()
				return ctx.Err()
			},
		},
	}
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(testContext(t))
				defer cancel()
				err := m.Tx(ctx, func(ctx context.Context) error { return tt.give(ctx, m, cancel) })
				wantErrIs(t, "Tx", err, context.Canceled)
				if errors.Is(err, sql.ErrTxDone) {
					t.Fatalf("Tx = %v: sql.ErrTxDone leaked out", err)
				}
				wantIDs(t, e)
				fxtest.RequireNoLeaks(t, e)
				// The engine goes on working.
				wantErrIs(t, "Tx after cancel", m.Tx(testContext(t), func(ctx context.Context) error {
					_, err := count(ctx, m)
					return err
				}), nil)
			})
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestTxGenericReturnsTheValue(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		got, err := session.Tx(ctx, m, func(ctx context.Context) (int, error) {
			if err := insert(ctx, m, 7); err != nil {
				return 0, err
			}
			return count(ctx, m)
		})
		if err != nil || got != 1 {
			t.Fatalf("Tx = %d, %v; want 1, nil", got, err)
		}
		got, err = session.Tx(ctx, m, func(ctx context.Context) (int, error) { return 42, errFn })
		if !errors.Is(err, errFn) || got != 0 {
			t.Fatalf("Tx = %d, %v; want 0, errFn", got, err)
		}
		wantIDs(t, e, 7)
		fxtest.RequireNoLeaks(t, e)
	})
}
