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

// dbtx is the interface sqlc generates for database/sql (sql_package:
// database/sql): a Querier must satisfy it for generated code to join a
// scope.
type dbtx interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	PrepareContext(context.Context, string) (*sql.Stmt, error)
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

var _ dbtx = session.Querier(nil)

// database/sql's QueryRowContext and PrepareContext run in the scope of
// ctx, for Q and Prepared: what they write is seen by the transaction,
// and gone when it rolls back; a statement prepared in a transaction ends
// with it; outside any scope they run on the pool.
func TestDatabaseSQLMethodsJoinTheScope(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		mustExec(t, e, "INSERT INTO items (id) VALUES (1)")
		for _, side := range []struct {
			name string
			q    func(context.Context) session.Querier
		}{{"Q", m.Q}, {"Prepared", m.Prepared}} {
			var stmt *sql.Stmt
			errRollBack := errors.New("roll back")
			err := m.Tx(ctx, func(ctx context.Context) error {
				q := side.q(ctx)
				var err error
				stmt, err = q.PrepareContext(ctx, q.Rebind("INSERT INTO items (id) VALUES (?)"))
				if err != nil {
					return err
				}
				for _, id := range []int{2, 3} {
					if _, err := stmt.ExecContext(ctx, id); err != nil {
						return err
					}
				}
				var n int
				if err := q.QueryRowContext(ctx, q.Rebind("SELECT COUNT(*) FROM items WHERE id >= ?"), 1).Scan(&n); err != nil {
					return err
				}
				if n != 3 {
					t.Errorf("%s: the transaction counts %d items, want 3 (its own writes)", side.name, n)
				}
				err = q.QueryRowContext(ctx, q.Rebind("SELECT id FROM items WHERE id = ?"), 99).Scan(&n)
				wantErrIs(t, side.name+": QueryRowContext of no row", err, sql.ErrNoRows)
				return errRollBack
			})
			wantErrIs(t, side.name+": Tx", err, errRollBack)
			wantIDs(t, e, 1)
			if _, err := stmt.ExecContext(ctx, 4); err == nil {
				t.Errorf("%s: a statement prepared in a transaction ran after it ended", side.name)
			}
			wantIDs(t, e, 1)

			// Outside any scope: the pool.
			q := side.q(ctx)
			st, err := q.PrepareContext(ctx, q.Rebind("SELECT COUNT(*) FROM items WHERE id >= ?"))
			if err != nil {
				t.Fatalf("%s: PrepareContext on the pool: %v", side.name, err)
			}
			var n int
			if err := st.QueryRowContext(ctx, 0).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: pool statement counts %d, %v; want 1", side.name, n, err)
			}
			st.Close()
			if err := q.QueryRowContext(ctx, q.Rebind("SELECT COUNT(*) FROM items WHERE id >= ?"), 0).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: QueryRowContext on the pool counts %d, %v; want 1", side.name, n, err)
			}
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// An error met through a *sql.Stmt from PrepareContext, which the scope
// does not see, still aborts a PostgreSQL transaction at the connection:
// the statements after it are refused, the *sql.Row's included, and
// nothing is committed. On MySQL and SQLite a duplicate key fails the
// statement only, and the transaction commits the rest.
func TestErrorThroughAPreparedStatementPoisonsTheScope(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		mustExec(t, e, "INSERT INTO items (id) VALUES (1)")
		var dupErr, rowErr error
		err := m.Tx(ctx, func(ctx context.Context) error {
			q := m.Q(ctx)
			st, err := q.PrepareContext(ctx, q.Rebind("INSERT INTO items (id) VALUES (?)"))
			if err != nil {
				return err
			}
			defer st.Close()
			if _, err := st.ExecContext(ctx, 2); err != nil {
				return err
			}
			_, dupErr = st.ExecContext(ctx, 1) // duplicate primary key, swallowed
			var n int
			rowErr = q.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n)
			return nil
		})
		if dupErr == nil {
			t.Fatal("inserting a duplicate primary key succeeded")
		}
		if e.Driver() != "postgres" {
			wantErrIs(t, "QueryRowContext after the error", rowErr, nil)
			wantErrIs(t, "Tx", err, nil)
			wantIDs(t, e, 1, 2)
			return
		}
		if rowErr == nil {
			t.Error("QueryRowContext after the error in an aborted transaction succeeded")
		}
		wantErrIs(t, "QueryRowContext after the error", rowErr, session.ErrAborted)
		wantErrIs(t, "Tx", err, session.ErrUnexpectedRollback)
		wantIDs(t, e, 1)
		fxtest.RequireNoLeaks(t, e)
	})
}
