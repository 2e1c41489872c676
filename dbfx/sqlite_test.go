package dbfx_test

import (
	"testing"

	"github.com/enginekit/enginekit/fxtest"
)

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

// A statement text run again on a connection after its table changed
// sees the change, with go-sqlite3's statement cache on (the driver's
// default): a cached statement is prepared again when the schema moved.
func TestSQLiteCachedStatementsSeeSchemaChanges(t *testing.T) {
	for _, dsn := range []string{"", "?_stmt_cache_size=0"} {
		cfg := fxtest.SQLite(t)
		cfg.DSN += dsn
		cfg.MaxOpenConns = 1
		e := open(t, cfg)
		ctx := testContext(t)
		db := e.DB()
		if _, err := db.ExecContext(ctx, "CREATE TABLE t (a INTEGER)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO t (a) VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		columns := func() []string {
			t.Helper()
			rows, err := db.QueryContext(ctx, "SELECT * FROM t")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			cols, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			return cols
		}
		for range 3 {
			if got := columns(); len(got) != 1 {
				t.Fatalf("%q: columns %v, want [a]", dsn, got)
			}
		}
		if _, err := db.ExecContext(ctx, "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 7"); err != nil {
			t.Fatal(err)
		}
		if got := columns(); len(got) != 2 || got[1] != "b" {
			t.Fatalf("%q: after ALTER TABLE, columns %v, want [a b]", dsn, got)
		}
		var b int
		if err := db.GetContext(ctx, &b, "SELECT b FROM t"); err != nil || b != 7 {
			t.Fatalf("%q: b = %d, %v; want 7", dsn, b, err)
		}
	}
}
