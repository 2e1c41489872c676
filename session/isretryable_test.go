package session_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	mysqldrv "github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// TestIsRetryableWithoutADialect: IsRetryable knows the errors of an
// engine's connections (the connection wrapper tags them), and
// PostgreSQL's from any pool (by SQLSTATE); a MySQL error of a pool opened
// by hand carries nothing it can read, as its documentation says. The
// errors are raised by the servers themselves, with the codes of a
// serialization failure and a deadlock.
func TestIsRetryableWithoutADialect(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		cfg := fxtest.Postgres(t)
		e := openEngine(t, cfg)
		raw, err := sql.Open("postgres", cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		const serialization = `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`
		const unique = `DO $$ BEGIN RAISE EXCEPTION 'taken' USING ERRCODE = '23505'; END $$`
		ctx := testContext(t)
		for _, tt := range []struct {
			name  string
			exec  func(string) error
			query string
			want  bool
		}{
			{"engine, 40001", func(q string) error { _, err := e.DB().ExecContext(ctx, q); return err }, serialization, true},
			{"engine, 23505", func(q string) error { _, err := e.DB().ExecContext(ctx, q); return err }, unique, false},
			{"by hand, 40001", func(q string) error { _, err := raw.ExecContext(ctx, q); return err }, serialization, true},
			{"by hand, 23505", func(q string) error { _, err := raw.ExecContext(ctx, q); return err }, unique, false},
		} {
			err := tt.exec(tt.query)
			var pe *pq.Error
			if !errors.As(err, &pe) {
				t.Fatalf("%s: %v, want a *pq.Error", tt.name, err)
			}
			if got := session.IsRetryable(err); got != tt.want {
				t.Errorf("%s: IsRetryable(%v) = %v, want %v", tt.name, err, got, tt.want)
			}
		}
	})
	t.Run("mysql", func(t *testing.T) {
		cfg := fxtest.MySQL(t)
		e := openEngine(t, cfg)
		raw, err := sql.Open("mysql", cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		ctx := testContext(t)
		const deadlock = `SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'deadlock'`
		for _, tt := range []struct {
			name string
			db   *sql.DB
			want bool
		}{
			{"engine", e.DB().DB, true},
			{"by hand", raw, false},
		} {
			_, err := tt.db.ExecContext(ctx, deadlock)
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1213 {
				t.Fatalf("%s: %v, want MySQL error 1213", tt.name, err)
			}
			if got := session.IsRetryable(err); got != tt.want {
				t.Errorf("%s: IsRetryable(%v) = %v, want %v", tt.name, err, got, tt.want)
			}
		}
	})
}

// TestHandPoolRetries: a Manager over a pool opened by hand, given its
// driver, classifies that pool's errors and retries: a transaction whose
// first attempt meets a serialization failure (PostgreSQL) or a deadlock
// (MySQL), raised by the server, runs again and commits.
func TestHandPoolRetries(t *testing.T) {
	for _, tt := range []struct {
		name     string
		dsn      func(testing.TB) string
		driver   session.Driver
		conflict string
	}{
		{"postgres", func(tb testing.TB) string { return fxtest.Postgres(tb).DSN }, postgres.Driver(),
			`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`},
		{"mysql", func(tb testing.TB) string { return fxtest.MySQL(tb).DSN + "?parseTime=true" }, mysqldrv.Driver(),
			`SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'deadlock'`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := sql.Open(tt.name, tt.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			m, err := session.New(sqlx.NewDb(raw, tt.name), session.WithDriver(tt.driver))
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t)
			if _, err := raw.ExecContext(ctx, "CREATE TABLE hand (id INTEGER PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			attempts := 0
			err = m.Tx(ctx, func(ctx context.Context) error {
				attempts++
				q := m.Q(ctx)
				if _, err := q.ExecContext(ctx, q.Rebind("INSERT INTO hand (id) VALUES (?)"), 1); err != nil {
					return err
				}
				if attempts == 1 {
					_, err := q.ExecContext(ctx, tt.conflict)
					return err
				}
				return nil
			})
			if err != nil || attempts != 2 {
				t.Fatalf("Tx = %v after %d attempts, want nil after 2", err, attempts)
			}
			var n int
			if err := raw.QueryRowContext(ctx, "SELECT COUNT(*) FROM hand").Scan(&n); err != nil || n != 1 {
				t.Fatalf("%d rows (%v), want 1: the first attempt rolled back, the second committed", n, err)
			}
			if err := m.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
