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
