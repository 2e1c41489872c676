package fxtest_test

import (
	"context"
	"testing"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// A test that runs once per database: on SQLite always, on PostgreSQL and
// MySQL when ENGINEKIT_TEST_POSTGRES_DSN and ENGINEKIT_TEST_MYSQL_DSN are
// set. Each subtest gets a fresh database, dropped afterwards.
func TestOnEveryDatabase(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var e *dbfx.Engine
		var m *session.Manager
		app := fxtest.New(t, fx.Supply(cfg), fx.Populate(&e, &m))
		app.RequireStart()
		defer app.RequireStop()

		ctx := t.Context()
		if _, err := m.Q(ctx).ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		err := m.Tx(ctx, func(ctx context.Context) error {
			_, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind(`INSERT INTO t (id) VALUES (?)`), 1)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// Without a Config in its options, fxtest.New runs the app on a private
// SQLite database.
func TestDefaultsToSQLite(t *testing.T) {
	var e *dbfx.Engine
	fxtest.New(t, fx.Populate(&e)).RequireStart().RequireStop()
	if e.Driver() != "sqlite3" {
		t.Fatalf("driver %s", e.Driver())
	}
}

// An application's own module may include dbfx.Module: fxtest.New then
// does not add it again.
func TestAppModuleWithDbfxModule(t *testing.T) {
	appModule := fx.Module("app", dbfx.Module, fx.Provide(func(m *session.Manager) fmtStringer { return fmtStringer{m} }))
	var s fmtStringer
	fxtest.New(t, appModule, fx.Populate(&s)).RequireStart().RequireStop()
	if s.m == nil {
		t.Fatal("no Manager")
	}
}

type fmtStringer struct{ m *session.Manager }
