//go:build cgo

package dbfx_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// driverError reports whether err holds the driver's own error type, and
// its code.
func driverError(driverName string, err error) (string, bool) {
	switch driverName {
	case "postgres":
		var e *pq.Error
		if errors.As(err, &e) {
			return string(e.Code), true
		}
	case "mysql":
		var e *mysql.MySQLError
		if errors.As(err, &e) {
			return "mysql " + strconv.Itoa(int(e.Number)), true
		}
	case "sqlite3":
		var e sqlite3.Error
		if errors.As(err, &e) {
			return "sqlite " + strconv.Itoa(int(e.ExtendedCode)), true
		}
	}
	return "", false
}

// classSentinels are the public error classes, each with its name.
var classSentinels = []struct {
	name string
	err  error
}{
	{"ErrConstraint", session.ErrConstraint},
	{"ErrDuplicate", session.ErrDuplicate},
	{"ErrForeignKey", session.ErrForeignKey},
	{"ErrNotNull", session.ErrNotNull},
	{"ErrCheck", session.ErrCheck},
	{"ErrConflict", session.ErrConflict},
	{"ErrLocked", session.ErrLocked},
	{"ErrConnLost", session.ErrConnLost},
	{"ErrReadOnly", session.ErrReadOnly},
	{"ErrCanceled", session.ErrCanceled},
}

// wantClasses checks that err matches exactly the named classes among the
// public ones, and that the driver's own error is found with errors.As
// and has one of the codes (when codes are given).
func wantClasses(t *testing.T, driverName string, err error, codes []string, classes ...error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	code, ok := driverError(driverName, err)
	t.Logf("%T %v: driver code %q", err, err, code)
	if codes != nil {
		if !ok {
			t.Errorf("errors.As finds no %s error in %v (%T)", driverName, err, err)
		} else if !contains(codes, code) {
			t.Errorf("driver code %q, want one of %q", code, codes)
		}
	}
	for _, s := range classSentinels {
		want := false
		for _, c := range classes {
			want = want || c == s.err
		}
		if got := errors.Is(err, s.err); got != want {
			t.Errorf("errors.Is(err, session.%s) = %v, want %v", s.name, got, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// byDriver picks the value for the engine's driver.
func byDriver[T any](driverName string, pg, my, lite T) T {
	switch driverName {
	case "postgres":
		return pg
	case "mysql":
		return my
	}
	return lite
}

// TestErrorClassesOnEveryDatabase makes each error of the table in the
// package doc of session happen on each database, through an engine, and
// checks that errors.Is matches its class (and no other) and errors.As
// finds the driver's error with the code the table gives.
func TestErrorClassesOnEveryDatabase(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		d := cfg.Driver
		if d == "sqlite3" {
			// A busy writer fails at once instead of waiting 5s.
			cfg.DSN += "?_busy_timeout=1"
		}
		e := open(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		exec := func(ctx context.Context, query string, args ...any) error {
			_, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind(query), args...)
			return err
		}
		for _, q := range []string{
			`CREATE TABLE parent (id INTEGER PRIMARY KEY)`,
			`CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER, n INTEGER NOT NULL CHECK (n >= 0),
				FOREIGN KEY (parent_id) REFERENCES parent (id))`,
			`INSERT INTO parent (id) VALUES (1), (2)`,
			`INSERT INTO child (id, parent_id, n) VALUES (1, 1, 0)`,
		} {
			if err := exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}

		t.Run("duplicate", func(t *testing.T) {
			err := exec(ctx, `INSERT INTO parent (id) VALUES (1)`)
			wantClasses(t, d, err, []string{byDriver(d, "23505", "mysql 1062", "sqlite 1555")},
				session.ErrConstraint, session.ErrDuplicate)
			if !errors.Is(err, repo.ErrDuplicate) {
				t.Error("errors.Is(err, repo.ErrDuplicate) = false")
			}
		})
		t.Run("foreign key", func(t *testing.T) {
			err := exec(ctx, `INSERT INTO child (id, parent_id, n) VALUES (2, 99, 0)`)
			wantClasses(t, d, err, []string{byDriver(d, "23503", "mysql 1452", "sqlite 787")},
				session.ErrConstraint, session.ErrForeignKey)
			err = exec(ctx, `DELETE FROM parent WHERE id = 1`)
			wantClasses(t, d, err, []string{byDriver(d, "23503", "mysql 1451", "sqlite 787")},
				session.ErrConstraint, session.ErrForeignKey)
		})
		t.Run("not null", func(t *testing.T) {
			err := exec(ctx, `INSERT INTO child (id, parent_id, n) VALUES (2, 1, NULL)`)
			wantClasses(t, d, err, []string{byDriver(d, "23502", "mysql 1048", "sqlite 1299")},
				session.ErrConstraint, session.ErrNotNull)
			err = exec(ctx, `INSERT INTO child (id, parent_id) VALUES (2, 1)`)
			wantClasses(t, d, err, []string{byDriver(d, "23502", "mysql 1364", "sqlite 1299")},
				session.ErrConstraint, session.ErrNotNull)
		})
		t.Run("check", func(t *testing.T) {
			err := exec(ctx, `INSERT INTO child (id, parent_id, n) VALUES (2, 1, -1)`)
			wantClasses(t, d, err, byDriver(d, []string{"23514"}, []string{"mysql 4025", "mysql 3819"}, []string{"sqlite 275"}),
				session.ErrConstraint, session.ErrCheck)
		})
		t.Run("read-only", func(t *testing.T) {
			err := m.ReadOnly(ctx, func(ctx context.Context) error {
				return exec(ctx, `INSERT INTO parent (id) VALUES (3)`)
			})
			wantClasses(t, d, err, []string{byDriver(d, "25006", "mysql 1792", "sqlite 8")}, session.ErrReadOnly)
		})
		t.Run("conflict", func(t *testing.T) {
			err := conflict(t, ctx, e, d, cfg)
			wantClasses(t, d, err, []string{byDriver(d, "40P01", "mysql 1213", "sqlite 5")}, session.ErrConflict)
			if !session.IsRetryable(err) {
				t.Error("IsRetryable = false")
			}
		})
		if d == "sqlite3" {
			return // no row locks, no server to lose or to time a statement out
		}
		t.Run("locked", func(t *testing.T) {
			holder, err := e.DB().BeginTxx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = holder.Rollback() }()
			if _, err := holder.ExecContext(ctx, `SELECT id FROM parent WHERE id = 1 FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			err = m.Tx(ctx, func(ctx context.Context) error {
				return exec(ctx, `SELECT id FROM parent WHERE id = 1 FOR UPDATE NOWAIT`)
			}, session.NoRetry())
			// MariaDB answers NOWAIT with 1205, a lock wait timeout, which
			// is also a conflict that a retry may win.
			wantClasses(t, d, err, []string{byDriver(d, "55P03", "mysql 1205", "")},
				byDriver(d, []error{session.ErrLocked}, []error{session.ErrLocked, session.ErrConflict}, nil)...)
			if !errors.Is(err, repo.ErrLocked) {
				t.Error("errors.Is(err, repo.ErrLocked) = false")
			}
		})
		t.Run("statement timeout", func(t *testing.T) {
			err := m.Tx(ctx, func(ctx context.Context) error {
				if d == "postgres" {
					if err := exec(ctx, `SET LOCAL statement_timeout = '100ms'`); err != nil {
						return err
					}
					return exec(ctx, `SELECT pg_sleep(10)`)
				}
				return exec(ctx, `SET STATEMENT max_statement_time = 0.1 FOR SELECT SLEEP(10)`)
			}, session.NoRetry())
			wantClasses(t, d, err, []string{byDriver(d, "57014", "mysql 1969", "")}, session.ErrCanceled)
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Error("a server's statement timeout matches a ctx error")
			}
		})
		t.Run("connection lost", func(t *testing.T) {
			err := m.Conn(ctx, func(ctx context.Context) error {
				var id int64
				if err := m.Q(ctx).GetContext(ctx, &id, byDriver(d, `SELECT pg_backend_pid()`, `SELECT CONNECTION_ID()`, "")); err != nil {
					t.Fatal(err)
				}
				kill := byDriver(d, `SELECT pg_terminate_backend($1, 30000)`, `KILL CONNECTION ?`, "")
				if _, err := e.DB().ExecContext(ctx, kill, id); err != nil {
					t.Fatal(err)
				}
				return exec(ctx, `SELECT 1`)
			})
			// What the driver returns depends on when it reads the
			// server's goodbye: its error, an EOF or driver.ErrBadConn.
			wantClasses(t, d, err, nil, session.ErrConnLost)
		})
	})
}

// conflict makes two transactions conflict and returns the loser's error,
// met through the engine: a deadlock on PostgreSQL and MySQL, SQLite busy
// (another connection holds the file's write lock).
func conflict(t *testing.T, ctx context.Context, e *dbfx.Engine, d string, cfg dbfx.Config) error {
	t.Helper()
	if d == "sqlite3" {
		other, err := sql.Open("sqlite3", cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		holder, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = holder.ExecContext(ctx, `ROLLBACK`) }()
		_, err = e.DB().ExecContext(ctx, `UPDATE parent SET id = id WHERE id = 1`)
		return err
	}
	tx1, err := e.DB().BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx1.Rollback() }()
	tx2, err := e.DB().BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx2.Rollback() }()
	upd := func(tx interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
		Rebind(string) string
	}, id int) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE child SET n = n + 1 WHERE id = ? OR id = ?`), id, -id)
		return err
	}
	if _, err := e.DB().ExecContext(ctx, `INSERT INTO child (id, parent_id, n) VALUES (3, 2, 0)`); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = e.DB().ExecContext(ctx, `DELETE FROM child WHERE id = 3`) }()
	if err := upd(tx1, 1); err != nil {
		t.Fatal(err)
	}
	if err := upd(tx2, 3); err != nil {
		t.Fatal(err)
	}
	// Each now wants the other's row: the database picks one to fail, and
	// that one is rolled back at once, so that the other goes on.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, side := range []struct {
		tx interface {
			ExecContext(context.Context, string, ...any) (sql.Result, error)
			Rebind(string) string
		}
		rb  func() error
		row int
	}{{tx1, tx1.Rollback, 3}, {tx2, tx2.Rollback, 1}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = upd(side.tx, side.row)
			_ = side.rb()
		}()
	}
	wg.Wait()
	switch {
	case errs[0] != nil && errs[1] == nil:
		return errs[0]
	case errs[1] != nil && errs[0] == nil:
		return errs[1]
	}
	t.Fatalf("deadlock: errors %v and %v, want exactly one", errs[0], errs[1])
	return nil
}

// TestCutCallIsLostAndCanceled: a statement whose server stops answering
// ends at its ctx's deadline; on PostgreSQL, whose driver waits for the
// server, with the connection cut: its error is the ctx's, ErrCanceled
// and ErrConnLost. A COMMIT cut so is ErrAmbiguousCommit and ErrConnLost
// on both.
func TestCutCallIsLostAndCanceled(t *testing.T) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(t)
		t.Run(cfg.Driver, func(t *testing.T) {
			cfg, p := behindProxy(t, cfg)
			e := open(t, cfg)
			m := e.Sessions()
			createTable(t, e, "cut")
			insert := func(ctx context.Context, id int) error {
				_, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind("INSERT INTO cut (id) VALUES (?)"), id)
				return err
			}

			p.Freeze()
			ctx, cancel := context.WithTimeout(testContext(t), time.Second)
			err := insert(ctx, 1)
			cancel()
			p.Thaw()
			t.Logf("statement: %v", err)
			targets := []error{context.DeadlineExceeded, session.ErrCanceled, session.ErrConnLost}
			if cfg.Driver == "mysql" {
				// The mysql driver gives up on its own at the deadline (it
				// closes its socket) and returns the ctx's error alone,
				// before the wrapper would cut the connection.
				targets = targets[:1]
			}
			for _, target := range targets {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}

			ctx, cancel = context.WithTimeout(testContext(t), time.Second)
			defer cancel()
			err = m.Tx(ctx, func(ctx context.Context) error {
				if err := insert(ctx, 2); err != nil {
					return err
				}
				p.Freeze() // the COMMIT gets no answer
				return nil
			})
			p.Thaw()
			t.Logf("commit: %v", err)
			for _, target := range []error{session.ErrAmbiguousCommit, session.ErrConnLost, context.DeadlineExceeded} {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
		})
	}
}
