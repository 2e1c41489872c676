package dbfx_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"go.uber.org/fx"
	fxfxtest "go.uber.org/fx/fxtest"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// TestDSNOfADriverNotGiven: a DSN whose driver was not given is ErrConfig
// naming the package to import, before anything is opened (no SQLite
// file created, no password shown).
func TestDSNOfADriverNotGiven(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		cfg     dbfx.Config
		drivers []dbfx.Driver
		want    string
	}{
		{"sqlite path, postgres given", dbfx.Config{DSN: filepath.Join(dir, "app.db")},
			[]dbfx.Driver{postgres.Driver()}, "DSN: is a sqlite3 DSN, but no sqlite3 driver was given: import github.com/enginekit/enginekit/dbfx/sqlite3"},
		{"postgres url, none given", dbfx.Config{DSN: "postgres://app:s3cret@db.example/app"},
			nil, "import github.com/enginekit/enginekit/dbfx/postgres"},
		{"mysql dsn, sqlite given", dbfx.Config{DSN: "app:s3cret@tcp(db:3306)/app"},
			[]dbfx.Driver{sqlite3.Driver()}, "import github.com/enginekit/enginekit/dbfx/mysql"},
		{"driver named, not given", dbfx.Config{Driver: "mysql", DSN: filepath.Join(dir, "x.db")},
			[]dbfx.Driver{sqlite3.Driver()}, `Driver: "mysql" was not given: import github.com/enginekit/enginekit/dbfx/mysql`},
		{"unknown driver", dbfx.Config{Driver: "oracle", DSN: "x"},
			fxtest.Drivers(), `Driver: "oracle" is not a driver enginekit has`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dbfx.Open(testContext(t), tt.cfg, dbfx.WithDrivers(tt.drivers...))
			if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want ErrConfig containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files created: %v", entries)
	}
}

// TestValidateWithoutDrivers checks what can be checked without the
// engine's drivers, and the DSN with them.
func TestValidateWithoutDrivers(t *testing.T) {
	cfg := dbfx.Config{DSN: "postgres://u@h:notaport/db"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil: the DSN cannot be parsed without its driver", err)
	}
	if err := cfg.Validate(postgres.Driver()); !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "DSN:") {
		t.Errorf("Validate(postgres) = %v, want ErrConfig naming the DSN", err)
	}
	if err := (dbfx.Config{DSN: "postgres://u@h/db", MaxOpenConns: -1}).Validate(); !errors.Is(err, dbfx.ErrConfig) {
		t.Errorf("Validate() of a negative MaxOpenConns = %v, want ErrConfig", err)
	}
	if err := (dbfx.Config{Driver: "oracle", DSN: "x"}).Validate(); !errors.Is(err, dbfx.ErrConfig) {
		t.Errorf("Validate() of an unknown driver = %v, want ErrConfig", err)
	}
	if err := (dbfx.Config{DSN: "app.db"}).Validate(postgres.Driver()); !errors.Is(err, dbfx.ErrConfig) {
		t.Errorf("Validate(postgres) of a SQLite DSN = %v, want ErrConfig", err)
	}
}

// TestDriverGivenTwiceCountsOnce: fxtest's drivers and the app's own, in
// Fx and in Open.
func TestDriverGivenTwiceCountsOnce(t *testing.T) {
	var e *dbfx.Engine
	fxtest.New(t, sqlite3.Module, sqlite3.Module, fx.Populate(&e)).RequireStart().RequireStop()
	if e.Driver() != "sqlite3" {
		t.Fatalf("driver %s", e.Driver())
	}
	e2, err := dbfx.Open(testContext(t), fxtest.SQLite(t), dbfx.WithDriver(sqlite3.Driver()), fxtest.WithDrivers(),
		dbfx.WithDriver(sqlite3.Driver()))
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

// TestAppsWithOtherDrivers: two apps in one process, each with drivers of
// its own: there is no registry between them.
func TestAppsWithOtherDrivers(t *testing.T) {
	cfg := fxtest.SQLite(t)
	cfg.Driver = ""
	var e *dbfx.Engine
	lite := fxfxtest.New(t, fx.NopLogger, fx.Supply(cfg), dbfx.Module, sqlite3.Module, fx.Populate(&e))
	lite.RequireStart()
	defer lite.RequireStop()
	err := fx.New(fx.NopLogger, fx.Supply(cfg), dbfx.Module, postgres.Module, mysql.Module).Err()
	if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "dbfx/sqlite3") {
		t.Fatalf("an app without the sqlite3 driver: %v, want ErrConfig naming dbfx/sqlite3", err)
	}
	if e.Driver() != "sqlite3" {
		t.Fatalf("driver %s", e.Driver())
	}
}

// TestModuleConfig: the graph's Config wins over DefaultConfig's; without
// either, the app fails naming what to supply.
func TestModuleConfig(t *testing.T) {
	mine, fallback := fxtest.SQLite(t), fxtest.SQLite(t)
	mine.Name, fallback.Name = "mine", "fallback"
	for _, tt := range []struct {
		name string
		opts []fx.Option
		want string
	}{
		{"both", []fx.Option{fx.Supply(mine), dbfx.DefaultConfig(fallback)}, "mine"},
		{"default only", []fx.Option{dbfx.DefaultConfig(fallback)}, "fallback"},
		{"own only", []fx.Option{fx.Supply(mine)}, "mine"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var e *dbfx.Engine
			app := fxfxtest.New(t, fx.NopLogger, dbfx.Module, sqlite3.Module, fx.Options(tt.opts...), fx.Populate(&e))
			app.RequireStart().RequireStop()
			if e.Name() != tt.want {
				t.Errorf("engine %q, want %q", e.Name(), tt.want)
			}
		})
	}
	err := fx.New(fx.NopLogger, dbfx.Module, sqlite3.Module).Err()
	if err == nil || !strings.Contains(err.Error(), "dbfx: Module needs a Config") {
		t.Errorf("no Config: %v", err)
	}
}

// TestSessionNewNeedsItsDriver: a pool opened by hand needs the driver's
// dialect, and one that matches its driver name.
func TestSessionNewNeedsItsDriver(t *testing.T) {
	e := open(t, fxtest.SQLite(t))
	db := sqlx.NewDb(e.DB().DB, "sqlite3")
	if _, err := session.New(db); err == nil || !strings.Contains(err.Error(), "WithDriver") {
		t.Errorf("New without a driver = %v, want an error naming WithDriver", err)
	}
	if _, err := session.New(db, session.WithDriver(postgres.Driver())); err == nil {
		t.Error("New of a sqlite3 pool with the postgres driver: no error")
	}
	m, err := session.New(db, session.WithDriver(sqlite3.Driver()))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Tx(context.Background(), func(ctx context.Context) error {
		_, err := m.Q(ctx).ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
