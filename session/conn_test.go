package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// Conn pins one connection: session state (a temporary table) holds across
// its statements, and the scopes inside it run on that connection.
func TestConnPinsOneConnection(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		err := m.Conn(ctx, func(ctx context.Context) error {
			if m.InTx(ctx) {
				t.Error("InTx is true in a Conn scope")
			}
			q := m.Q(ctx)
			if q == m.Q(context.Background()) {
				t.Error("Q in a Conn scope is the pool")
			}
			if _, err := q.ExecContext(ctx, "CREATE TEMPORARY TABLE scratch (id INTEGER PRIMARY KEY)"); err != nil {
				return err
			}
			// A transaction inside sees the temporary table: same connection.
			if err := m.Tx(ctx, func(ctx context.Context) error {
				if !m.InTx(ctx) {
					t.Error("InTx is false in a Tx inside Conn")
				}
				_, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO scratch (id) VALUES (1)")
				return err
			}); err != nil {
				return err
			}
			// So does a read-only one, which refuses writes and leaves the
			// connection writable.
			if err := m.ReadOnly(ctx, func(ctx context.Context) error {
				var n int
				if err := m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM scratch"); err != nil {
					return err
				}
				if n != 1 {
					t.Errorf("ReadOnly in Conn sees %d rows of the temporary table, want 1", n)
				}
				// (PostgreSQL and MySQL let a read-only transaction
				// write temporary tables: write a real one.)
				wantErrIs(t, "write in ReadOnly inside Conn", insert(ctx, m, 1), session.ErrReadOnly)
				return nil
			}); err != nil {
				t.Logf("ReadOnly in Conn: %v", err) // PostgreSQL: the refused write aborted it
			}
			// Conn inside Conn reuses the connection.
			if err := m.Conn(ctx, func(ctx context.Context) error {
				_, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO scratch (id) VALUES (3)")
				return err
			}); err != nil {
				return err
			}
			var n int
			if err := q.GetContext(ctx, &n, "SELECT COUNT(*) FROM scratch"); err != nil {
				return err
			}
			if n != 2 {
				t.Errorf("scratch has %d rows, want 2", n)
			}
			// A failed transaction inside rolls back its own work only.
			err := m.Tx(ctx, func(ctx context.Context) error {
				if _, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO scratch (id) VALUES (4)"); err != nil {
					return err
				}
				return errFn
			})
			wantErrIs(t, "failed Tx in Conn", err, errFn)
			if err := q.GetContext(ctx, &n, "SELECT COUNT(*) FROM scratch"); err != nil {
				return err
			}
			if n != 2 {
				t.Errorf("scratch has %d rows after a rollback, want 2", n)
			}
			_, err = q.ExecContext(ctx, "DROP TABLE scratch")
			return err
		})
		wantErrIs(t, "Conn", err, nil)
		wantIDs(t, e)
		wantErrIs(t, "Conn returning an error", m.Conn(ctx, func(context.Context) error { return errFn }), errFn)
		fxtest.RequireNoLeaks(t, e)
	})
}

// Timeout bounds an inner scope too: one that joins the transaction, or
// nests in it, has a deadline of its own.
func TestTimeoutOfAnInnerScope(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		wait := func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the inner scope's ctx has no deadline")
			}
			<-ctx.Done()
			return ctx.Err()
		}
		// The deadline must pass while fn waits, after its statement: a
		// statement cut by its deadline on MySQL has its connection
		// killed, and the outer transaction with it. 20ms was too short
		// for the nested scope's SAVEPOINT and INSERT on a loaded machine.
		timeout := session.Timeout(500 * time.Millisecond)
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 1); err != nil {
				return err
			}
			err := m.Tx(ctx, func(ctx context.Context) error {
				if err := insert(ctx, m, 2); err != nil {
					return err
				}
				return wait(ctx)
			}, session.Propagation(session.Nested), timeout)
			wantErrIs(t, "nested", err, context.DeadlineExceeded)
			if ctx.Err() != nil {
				t.Error("the inner deadline ended the outer scope")
			}
			return insert(ctx, m, 3)
		})
		wantErrIs(t, "Tx", err, nil)
		wantIDs(t, e, 1, 3)

		err = m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 4); err != nil {
				return err
			}
			err := m.Tx(ctx, wait, timeout)
			wantErrIs(t, "joined", err, context.DeadlineExceeded)
			return nil
		})
		wantErrIs(t, "Tx", err, session.ErrUnexpectedRollback)
		wantIDs(t, e, 1, 3)
		fxtest.RequireNoLeaks(t, e)
	})
}
