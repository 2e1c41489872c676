package main

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/examples/sqlc/mydb"
	"github.com/enginekit/enginekit/examples/sqlc/pgdb"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The Querier of a scope is what the generated code asks for.
var (
	_ pgdb.DBTX = session.Querier(nil)
	_ mydb.DBTX = session.Querier(nil)
)

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// open opens an engine on cfg's private database with the authors table.
func open(t *testing.T, cfg dbfx.Config) (*dbfx.Engine, *Store) {
	t.Helper()
	ctx := testContext(t)
	e, err := dbfx.Open(ctx, cfg, fxtest.WithDrivers())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		fxtest.RequireNoLeaks(t, e)
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := CreateTable(ctx, e); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	return e, NewStore(e)
}

// count counts the committed authors, outside any scope.
func count(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.Count(testContext(t))
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

// Generated queries in a Tx commit together; in a scope that fails they
// are gone; in a ReadOnly scope a generated write is refused.
func TestGeneratedQueriesJoinTheScope(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e, s := open(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)

		var a, b int64
		err := m.Tx(ctx, func(ctx context.Context) error {
			var err error
			if a, err = s.CreateAuthor(ctx, "Ada", "engines"); err != nil {
				return err
			}
			if b, err = s.CreateAuthor(ctx, "Brian", ""); err != nil {
				return err
			}
			// The transaction reads its own writes through generated code.
			if n, err := s.Count(ctx); err != nil || n != 2 {
				t.Errorf("Count in the transaction = %d, %v; want 2", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Tx: %v", err)
		}
		if got, err := s.Author(ctx, a); err != nil || got.Name != "Ada" || got.Bio.String != "engines" {
			t.Fatalf("Author(%d) = %+v, %v", a, got, err)
		}
		if got, err := s.Author(ctx, b); err != nil || got.Name != "Brian" || got.Bio.Valid {
			t.Fatalf("Author(%d) = %+v, %v", b, got, err)
		}

		// Rolled back: the generated insert and delete are both undone.
		errUndo := errors.New("undo")
		err = m.Tx(ctx, func(ctx context.Context) error {
			if _, err := s.CreateAuthor(ctx, "Cleo", ""); err != nil {
				return err
			}
			if ok, err := s.DeleteAuthor(ctx, a); err != nil || !ok {
				t.Errorf("DeleteAuthor(%d) = %v, %v", a, ok, err)
			}
			if n, err := s.Count(ctx); err != nil || n != 2 {
				t.Errorf("Count in the transaction = %d, %v; want 2", n, err)
			}
			return errUndo
		})
		if !errors.Is(err, errUndo) {
			t.Fatalf("Tx = %v, want the fn's error", err)
		}
		as, err := s.Authors(ctx)
		if err != nil || len(as) != 2 || as[0].Name != "Ada" || as[1].Name != "Brian" {
			t.Fatalf("after the rollback: %+v, %v; want Ada and Brian only", as, err)
		}

		// A generated write in a read-only scope is refused by the database.
		err = m.ReadOnly(ctx, func(ctx context.Context) error {
			_, err := s.CreateAuthor(ctx, "Dora", "")
			return err
		})
		if !errors.Is(err, session.ErrReadOnly) {
			t.Errorf("a generated INSERT in ReadOnly = %v, want ErrReadOnly", err)
		}
		if n := count(t, s); n != 2 {
			t.Fatalf("%d authors, want 2", n)
		}
	})
}

// sqlc's Prepare (emit_prepared_queries) prepares every query through the
// DBTX it is given: in a transaction, Prepared(ctx) binds them to it, and
// they end with it.
func TestGeneratedPreparedQueriesInATransaction(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e, s := open(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		errUndo := errors.New("undo")
		err := m.Tx(ctx, func(ctx context.Context) error {
			q := m.Prepared(ctx)
			if s.pg {
				pq, err := pgdb.Prepare(ctx, q)
				if err != nil {
					return err
				}
				defer pq.Close()
				for _, name := range []string{"Ada", "Brian", "Cleo"} {
					if _, err := pq.CreateAuthor(ctx, pgdb.CreateAuthorParams{Name: name}); err != nil {
						return err
					}
				}
				if n, err := pq.CountAuthors(ctx); err != nil || n != 3 {
					t.Errorf("CountAuthors = %d, %v; want 3", n, err)
				}
				return errUndo
			}
			mq, err := mydb.Prepare(ctx, q)
			if err != nil {
				return err
			}
			defer mq.Close()
			for _, name := range []string{"Ada", "Brian", "Cleo"} {
				if _, err := mq.CreateAuthor(ctx, mydb.CreateAuthorParams{Name: name}); err != nil {
					return err
				}
			}
			if n, err := mq.CountAuthors(ctx); err != nil || n != 3 {
				t.Errorf("CountAuthors = %d, %v; want 3", n, err)
			}
			return errUndo
		})
		if !errors.Is(err, errUndo) {
			t.Fatalf("Tx = %v, want the fn's error", err)
		}
		if n := count(t, s); n != 0 {
			t.Fatalf("%d authors after the rollback, want 0", n)
		}
	})
}

// A duplicate name met by generated code is repo.ErrDuplicate, whichever
// database; on PostgreSQL it aborts the transaction, so a fn that
// swallows it commits nothing, and the generated query after it is
// refused.
func TestGeneratedQueryErrorPoisonsTheScope(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e, s := open(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		if _, err := s.CreateAuthor(ctx, "Ada", ""); err != nil {
			t.Fatal(err)
		}
		var dupErr, afterErr error
		err := m.Tx(ctx, func(ctx context.Context) error {
			if _, err := s.CreateAuthor(ctx, "Brian", ""); err != nil {
				return err
			}
			_, dupErr = s.CreateAuthor(ctx, "Ada", "") // swallowed
			_, afterErr = s.Count(ctx)
			return nil
		})
		if !errors.Is(dupErr, repo.ErrDuplicate) {
			t.Fatalf("duplicate name = %v, want repo.ErrDuplicate", dupErr)
		}
		if e.Driver() != "postgres" {
			if err != nil || afterErr != nil {
				t.Fatalf("Tx = %v, statement after = %v; want both nil (the statement alone failed)", err, afterErr)
			}
			if n := count(t, s); n != 2 {
				t.Fatalf("%d authors, want 2", n)
			}
			return
		}
		if !errors.Is(afterErr, session.ErrAborted) || !errors.Is(err, session.ErrUnexpectedRollback) {
			t.Fatalf("statement after = %v, Tx = %v; want ErrAborted and ErrUnexpectedRollback", afterErr, err)
		}
		if n := count(t, s); n != 1 {
			t.Fatalf("%d authors, want 1 (Brian rolled back)", n)
		}
	})
}

// The example program runs on SQLite (and on ENGINEKIT_DSN when set).
func TestRun(t *testing.T) {
	if os.Getenv("ENGINEKIT_DSN") != "" {
		t.Setenv("ENGINEKIT_DSN", "")
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
