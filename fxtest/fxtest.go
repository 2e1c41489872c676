// Package fxtest builds Fx test apps with enginekit on a database private
// to each test, on SQLite, PostgreSQL and MySQL.
//
// Postgres and MySQL read ENGINEKIT_TEST_POSTGRES_DSN and
// ENGINEKIT_TEST_MYSQL_DSN, create a fresh database for the test and drop it
// at cleanup. They skip the test when their variable is unset, unless
// ENGINEKIT_TEST_REQUIRE (e.g. "postgres,mysql") names them: then a missing
// variable or an unreachable server fails it. The databases' names start
// with ENGINEKIT_TEST_DB_PREFIX (default "ek_"; a lower-case letter, then
// at most 23 lower-case letters, digits and underscores), for servers
// whose naming policy asks for another, then say which test made them:
// ENGINEKIT_TEST_DB_PREFIX=ci_ names them ci_testorders_3f2a..., say.
//
// The package's name is that of go.uber.org/fx/fxtest, whose *fxtest.App
// New returns. A test that needs both imports one under another name:
//
//	import (
//		"go.uber.org/fx/fxtest"
//
//		ekfxtest "github.com/enginekit/enginekit/fxtest"
//	)
//
//	var app *fxtest.App = ekfxtest.New(t, fx.Supply(ekfxtest.Postgres(t)))
package fxtest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/internal/testdb"
)

// SQLite returns a Config for a database file in tb.TempDir().
func SQLite(tb testing.TB) dbfx.Config {
	tb.Helper()
	return dbfx.Config{Driver: "sqlite3", DSN: testdb.SQLite(tb)}
}

// Postgres returns a Config for a fresh database on the server named by
// ENGINEKIT_TEST_POSTGRES_DSN, dropped when the test ends.
func Postgres(tb testing.TB) dbfx.Config {
	tb.Helper()
	return dbfx.Config{Driver: "postgres", DSN: testdb.Postgres(tb)}
}

// MySQL returns a Config for a fresh database on the server named by
// ENGINEKIT_TEST_MYSQL_DSN, dropped when the test ends.
func MySQL(tb testing.TB) dbfx.Config {
	tb.Helper()
	return dbfx.Config{Driver: "mysql", DSN: testdb.MySQL(tb)}
}

// Each runs fn in a subtest per engine: sqlite3, postgres and mysql. An
// engine whose server is not configured skips only its own subtest.
func Each(t *testing.T, fn func(t *testing.T, cfg dbfx.Config)) {
	t.Helper()
	for _, e := range []struct {
		name string
		cfg  func(testing.TB) dbfx.Config
	}{{"sqlite3", SQLite}, {"postgres", Postgres}, {"mysql", MySQL}} {
		t.Run(e.name, func(t *testing.T) { fn(t, e.cfg(t)) })
	}
}

// Drivers are enginekit's three drivers: those of fxtest's apps.
func Drivers() []dbfx.Driver {
	return []dbfx.Driver{postgres.Driver(), mysql.Driver(), sqlite3.Driver()}
}

// WithDrivers gives dbfx.Open the three drivers.
func WithDrivers() dbfx.Option {
	return dbfx.WithDrivers(Drivers()...)
}

// New returns an app with dbfx.Module, the three drivers' Modules and
// opts, on a fresh SQLite database unless opts supply a dbfx.Config (its
// Config is dbfx.DefaultConfig's). When opts already provide the engine
// (they include dbfx.Module, say), dbfx.Module is not added again. Start
// and stop it with RequireStart and RequireStop; it is stopped at cleanup
// if still running.
func New(tb testing.TB, opts ...fx.Option) *fxtest.App {
	tb.Helper()
	all := []fx.Option{fx.Options(opts...), postgres.Module, mysql.Module, sqlite3.Module}
	// Whether opts provide the engine: fx has no question for it, so the
	// graph is checked (no constructor runs) with one more invoke that
	// takes the engine. Config and drivers are optional to dbfx.Module, so
	// the check fails only for want of the engine or for an error of opts'
	// own, which the app then reports.
	if fx.ValidateApp(fx.NopLogger, fx.Options(all...), fx.Invoke(func(*dbfx.Engine) {})) != nil {
		all = append(all, dbfx.Module)
	}
	all = append(all, dbfx.DefaultConfig(SQLite(tb)))
	app := fxtest.New(tb, all...)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = app.Stop(ctx) // a no-op when the test stopped it
	})
	return app
}

// RequireNoLeaks fails the test when a connection of e is in use or a
// scope is open. database/sql counts a connection it is still opening for
// a caller that gave up (an acquire timeout) as in use until the dial
// ends, so the check allows the pool up to a second to settle.
func RequireNoLeaks(tb testing.TB, e *dbfx.Engine) {
	tb.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		s := e.Stats()
		if s.InUse == 0 && s.Scopes == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("engine %q leaks: %d connections in use, %d scopes open", e.Name(), s.InUse, s.Scopes)
		}
		time.Sleep(time.Millisecond) // no event tells when a dial ends
	}
}
