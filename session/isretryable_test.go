package session_test

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

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
