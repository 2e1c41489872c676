package dbfx_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

func migration(up, down string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("-- +goose Up\n" + up + "\n-- +goose Down\n" + down + "\n")}
}

// portable migrations: the same SQL runs on all three databases.
var portable = fstest.MapFS{
	"00001_create_notes.sql": migration("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(100) NOT NULL);", "DROP TABLE notes;"),
	"00002_seed_notes.sql":   migration("INSERT INTO notes (id, body) VALUES (1, 'first');", "DELETE FROM notes;"),
}

func TestMigrationsAppliedOnceAtStart(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		for i := 0; i < 2; i++ { // the second start finds nothing pending
			e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithMigrations(portable))
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

func TestMigrationsPerDialectDirectory(t *testing.T) {
	fsys := fstest.MapFS{
		"postgres/00001_init.sql": migration("CREATE TABLE only_postgres (id INTEGER);", "DROP TABLE only_postgres;"),
		"mysql/00001_init.sql":    migration("CREATE TABLE only_mysql (id INTEGER);", "DROP TABLE only_mysql;"),
		"sqlite3/00001_init.sql":  migration("CREATE TABLE only_sqlite3 (id INTEGER);", "DROP TABLE only_sqlite3;"),
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithMigrations(fsys))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
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
	fsys := fstest.MapFS{
		"00001_create.sql": migration("CREATE TABLE kept (id INTEGER);", "DROP TABLE kept;"),
		"00002_broken.sql": migration("CREATE TABLE broken (id INTEGER PRIMARY KEY,,);", "DROP TABLE broken;"),
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		app := fxtest.New(t, fx.Supply(cfg), dbfx.Options(dbfx.WithMigrations(fsys)))
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
				engines[i], errs[i] = dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithMigrations(portable))
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

func TestSQLiteEnforcesForeignKeys(t *testing.T) {
	e := open(t, fxtest.SQLite(t))
	ctx := testContext(t)
	for _, q := range []string{
		"CREATE TABLE parents (id INTEGER PRIMARY KEY)",
		"CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parents (id))",
	} {
		if _, err := e.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.DB().ExecContext(ctx, "INSERT INTO children (id, parent_id) VALUES (1, 42)"); err == nil {
		t.Fatal("a child without its parent was inserted")
	}
}
