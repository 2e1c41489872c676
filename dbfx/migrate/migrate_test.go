package migrate_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/fx"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/migrate"
	"github.com/enginekit/enginekit/fxtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// open opens an engine on cfg with opts and closes it at cleanup.
func open(t *testing.T, cfg dbfx.Config, opts ...dbfx.Option) *dbfx.Engine {
	t.Helper()
	e, err := dbfx.Open(testContext(t), cfg, append([]dbfx.Option{fxtest.WithDrivers()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fxtest.RequireNoLeaks(t, e)
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

func count(t *testing.T, e *dbfx.Engine, table string) int {
	t.Helper()
	var n int
	if err := e.DB().GetContext(testContext(t), &n, "SELECT COUNT(*) FROM "+table); err != nil {
		t.Fatal(err)
	}
	return n
}

func migration(up, down string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("-- +goose Up\n" + up + "\n-- +goose Down\n" + down + "\n")}
}

// portable migrations: the same SQL runs on all three databases.
var portable = fstest.MapFS{
	"00001_create_notes.sql": migration("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(100) NOT NULL);", "DROP TABLE notes;"),
	"00002_seed_notes.sql":   migration("INSERT INTO notes (id, body) VALUES (1, 'first');", "DELETE FROM notes;"),
}

// broken fails at its second migration.
var broken = fstest.MapFS{
	"00001_create.sql": migration("CREATE TABLE kept (id INTEGER);", "DROP TABLE kept;"),
	"00002_broken.sql": migration("CREATE TABLE broken (id INTEGER PRIMARY KEY,,);", "DROP TABLE broken;"),
}

func TestMigrationsAppliedOnceAtStart(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		for i := 0; i < 2; i++ { // the second start finds nothing pending
			e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), migrate.OnStart(portable))
			if err != nil {
				t.Fatal(err)
			}
			if n := count(t, e, "notes"); n != 1 {
				t.Fatalf("start %d: %d notes, want 1", i+1, n)
			}
			fxtest.RequireNoLeaks(t, e)
			if err := e.Close(testContext(t)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestMigrationsInMemory(t *testing.T) {
	e := open(t, dbfx.Config{Driver: "sqlite3", DSN: ":memory:"}, migrate.OnStart(portable))
	if n := count(t, e, "notes"); n != 1 {
		t.Fatalf("%d notes, want 1", n)
	}
}

func TestMigrationsPerDialectDirectory(t *testing.T) {
	fsys := fstest.MapFS{
		"postgres/00001_init.sql": migration("CREATE TABLE only_postgres (id INTEGER);", "DROP TABLE only_postgres;"),
		"mysql/00001_init.sql":    migration("CREATE TABLE only_mysql (id INTEGER);", "DROP TABLE only_mysql;"),
		"sqlite3/00001_init.sql":  migration("CREATE TABLE only_sqlite3 (id INTEGER);", "DROP TABLE only_sqlite3;"),
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := open(t, cfg, migrate.OnStart(fsys))
		if n := count(t, e, "only_"+cfg.Driver); n != 0 {
			t.Fatalf("%d rows", n)
		}
		for _, other := range []string{"postgres", "mysql", "sqlite3"} {
			if other == cfg.Driver {
				continue
			}
			if _, err := e.DB().ExecContext(testContext(t), "SELECT 1 FROM only_"+other); err == nil {
				t.Fatalf("the %s migration ran on %s", other, cfg.Driver)
			}
		}
	})
}

func TestFailedMigrationFailsStartNamingTheFile(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		app := fxtest.New(t, fx.Supply(cfg), migrate.Module(broken))
		err := app.Start(testContext(t))
		if !errors.Is(err, dbfx.ErrMigration) {
			t.Fatalf("start = %v, want ErrMigration", err)
		}
		if !strings.Contains(err.Error(), "00002_broken.sql") {
			t.Fatalf("%q does not name the file", err)
		}
		// The migration before it was applied and stays.
		e := open(t, cfg)
		if n := count(t, e, "kept"); n != 0 {
			t.Fatalf("%d rows", n)
		}
	})
}

func TestFailedStepClosesThePools(t *testing.T) {
	var e *dbfx.Engine
	app := fxtest.New(t, migrate.Module(broken), fx.Populate(&e))
	if err := app.Start(testContext(t)); !errors.Is(err, dbfx.ErrMigration) {
		t.Fatalf("start = %v, want ErrMigration", err)
	}
	if err := e.DB().PingContext(testContext(t)); err == nil {
		t.Fatal("the engine's pool is open after its start failed")
	}
}

func TestConcurrentStartsMigrateOnce(t *testing.T) {
	// Not idempotent: a second run of 00001 would fail, of 00002 would add a row.
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		const instances = 4
		engines := make([]*dbfx.Engine, instances)
		errs := make([]error, instances)
		var wg sync.WaitGroup
		for i := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				engines[i], errs[i] = dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), migrate.OnStart(portable))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("instance %d: %v", i, err)
			}
			defer engines[i].Close(context.Background())
		}
		if n := count(t, engines[0], "notes"); n != 1 {
			t.Fatalf("%d notes, want 1: the migrations ran more than once", n)
		}
	})
}

func TestUpAndStatus(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		ctx := testContext(t)
		r, err := migrate.Status(ctx, cfg, portable, fxtest.WithDrivers())
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != 0 || len(r.Migrations) != 2 || len(r.Pending()) != 2 {
			t.Fatalf("fresh database: %+v, want version 0 and 2 pending", r)
		}
		if m := r.Migrations[0]; m.Version != 1 || m.File != "00001_create_notes.sql" || m.Applied || !m.AppliedAt.IsZero() {
			t.Fatalf("first migration: %+v", m)
		}
		for i := 0; i < 2; i++ { // the second run finds nothing pending
			if err := migrate.Up(ctx, cfg, portable, fxtest.WithDrivers()); err != nil {
				t.Fatalf("Up %d: %v", i+1, err)
			}
		}
		r, err = migrate.Status(ctx, cfg, portable, fxtest.WithDrivers())
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != 2 || len(r.Migrations) != 2 || len(r.Pending()) != 0 {
			t.Fatalf("migrated database: %+v, want version 2 and none pending", r)
		}
		for _, m := range r.Migrations {
			if !m.Applied || m.AppliedAt.IsZero() {
				t.Fatalf("migration %+v not applied", m)
			}
		}
		if n := count(t, open(t, cfg), "notes"); n != 1 {
			t.Fatalf("%d notes, want 1", n)
		}
	})
}

func TestUpFailsNamingTheFile(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		ctx := testContext(t)
		err := migrate.Up(ctx, cfg, broken, fxtest.WithDrivers())
		if !errors.Is(err, dbfx.ErrMigration) || !strings.Contains(err.Error(), "00002_broken.sql") {
			t.Fatalf("Up = %v, want ErrMigration naming 00002_broken.sql", err)
		}
		r, err := migrate.Status(ctx, cfg, broken, fxtest.WithDrivers())
		if err != nil {
			t.Fatal(err)
		}
		if p := r.Pending(); r.Version != 1 || len(p) != 1 || p[0].File != "00002_broken.sql" {
			t.Fatalf("after a failed Up: %+v, want version 1 and 00002_broken.sql pending", r)
		}
	})
}

func TestUpWithoutTheDriver(t *testing.T) {
	err := migrate.Up(testContext(t), fxtest.SQLite(t), portable)
	if !errors.Is(err, dbfx.ErrConfig) {
		t.Fatalf("Up = %v, want ErrConfig", err)
	}
}

func TestMigrationErrorHasNoPassword(t *testing.T) {
	const secret = "s3cretword"
	cfg := fxtest.SQLite(t)
	cfg.DSN += "?_auth_pass=" + secret // go-sqlite3 without user authentication ignores it
	fsys := fstest.MapFS{"00001_leak.sql": migration("SELECT * FROM "+secret+";", "")}
	err := migrate.Up(testContext(t), cfg, fsys, fxtest.WithDrivers())
	if !errors.Is(err, dbfx.ErrMigration) {
		t.Fatalf("Up = %v, want ErrMigration", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("%q shows the password", err)
	}
}

func TestSQLiteFileURILocksBesideTheFile(t *testing.T) {
	cfg := fxtest.SQLite(t)
	path := cfg.DSN
	cfg.DSN = "file:" + path
	if err := migrate.Up(testContext(t), cfg, portable, fxtest.WithDrivers()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".migrate-lock"); err != nil {
		t.Fatalf("no lock beside the database: %v", err)
	}
}

// halfFailing fails at its fourth statement, after two DDL statements and
// an INSERT.
const halfFailing = `CREATE TABLE half_a (id INTEGER PRIMARY KEY);
-- the second table
CREATE TABLE half_b (id INTEGER PRIMARY KEY);
INSERT INTO half_a (id) VALUES (1);
CREATE TABLE half_c (id INTEGER PRIMARY KEY,,);`

func exists(t *testing.T, cfg dbfx.Config, table string) bool {
	t.Helper()
	_, err := open(t, cfg).DB().ExecContext(testContext(t), "SELECT 1 FROM "+table)
	return err == nil
}

// TestHalfAppliedMigration: a migration that fails at its fourth
// statement. On MySQL/MariaDB its DDL statements before it stay applied
// (each commits at once): the error says which, and that the file runs
// again whole, which a fixed file that is not rerunnable fails ("table
// already exists") and a rerunnable one passes. On PostgreSQL and SQLite
// its transaction undoes it, and the error says so.
func TestHalfAppliedMigration(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		ctx := testContext(t)
		err := migrate.Up(ctx, cfg, fstest.MapFS{"00001_half.sql": migration(halfFailing, "")}, fxtest.WithDrivers())
		if !errors.Is(err, dbfx.ErrMigration) {
			t.Fatalf("Up = %v, want ErrMigration", err)
		}
		t.Logf("%s: %v", cfg.Driver, err)
		if !strings.Contains(err.Error(), `migration 00001_half.sql failed at its statement 4 ("CREATE TABLE half_c (id INTEGER PRIMARY KEY,,);")`) {
			t.Fatalf("%q does not name the failed statement", err)
		}
		if cfg.Driver != "mysql" {
			if !strings.Contains(err.Error(), "its transaction was rolled back: none of it was applied") {
				t.Fatalf("%q does not say the migration was undone", err)
			}
			if exists(t, cfg, "half_a") || exists(t, cfg, "half_b") {
				t.Fatal("a table of the failed migration is there")
			}
			return
		}
		for _, want := range []string{
			"on MySQL and MariaDB each DDL statement commits at once",
			`the statements before it may have been applied and stay: 1 "CREATE TABLE half_a (id INTEGER PRIMARY KEY);", 2 "CREATE TABLE half_b (id INTEGER PRIMARY KEY);", 3 "INSERT INTO half_a (id) VALUES (1);"`,
			"the next start runs the file again from its first statement",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%q does not say %q", err, want)
			}
		}
		if !exists(t, cfg, "half_a") || !exists(t, cfg, "half_b") {
			t.Fatal("the tables created before the failed statement are gone: the test no longer shows a half-applied migration")
		}

		// The file fixed, as it was written: its first statement fails.
		fixed := strings.Replace(halfFailing, ",,", "", 1)
		err = migrate.Up(ctx, cfg, fstest.MapFS{"00001_half.sql": migration(fixed, "")}, fxtest.WithDrivers())
		t.Logf("rerun: %v", err)
		if !errors.Is(err, dbfx.ErrMigration) || !strings.Contains(err.Error(), "statement 1 (") ||
			!strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "none of it was applied") {
			t.Fatalf("rerun of the fixed file = %v, want its first statement to fail, table already exists", err)
		}

		// Rerunnable, as the README says: it passes over what was applied.
		rerunnable := strings.NewReplacer("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", "INSERT INTO", "INSERT IGNORE INTO").Replace(fixed)
		if err := migrate.Up(ctx, cfg, fstest.MapFS{"00001_half.sql": migration(rerunnable, "")}, fxtest.WithDrivers()); err != nil {
			t.Fatalf("rerunnable file: %v", err)
		}
		if n := count(t, open(t, cfg), "half_a"); n != 1 {
			t.Fatalf("%d rows in half_a, want 1", n)
		}
	})
}

// TestHalfAppliedMigrationNoTransaction: a file run outside a transaction
// leaves its statements before the failed one applied on every database;
// the error says so.
func TestHalfAppliedMigrationNoTransaction(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		fsys := fstest.MapFS{"00001_half.sql": &fstest.MapFile{Data: []byte("-- +goose NO TRANSACTION\n" + string(migration(halfFailing, "").Data))}}
		err := migrate.Up(testContext(t), cfg, fsys, fxtest.WithDrivers())
		if !errors.Is(err, dbfx.ErrMigration) || !strings.Contains(err.Error(), `may have been applied and stay: 1 "CREATE TABLE half_a`) {
			t.Fatalf("Up = %v, want ErrMigration naming what stays applied", err)
		}
		if cfg.Driver != "mysql" && !strings.Contains(err.Error(), "the file runs outside a transaction") {
			t.Fatalf("%q does not say why", err)
		}
		if !exists(t, cfg, "half_b") {
			t.Fatal("half_b is not there")
		}
	})
}
