package fxtest_test

import (
	"strings"
	"testing"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// TestDatabasePrefix: with ENGINEKIT_TEST_DB_PREFIX set, the databases
// that Postgres and MySQL create on the servers start with it.
func TestDatabasePrefix(t *testing.T) {
	t.Setenv("ENGINEKIT_TEST_DB_PREFIX", "ci_policy_")
	for _, tt := range []struct {
		name  string
		cfg   func(testing.TB) dbfx.Config
		query string
	}{
		{"postgres", fxtest.Postgres, "SELECT current_database()"},
		{"mysql", fxtest.MySQL, "SELECT DATABASE()"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var e *dbfx.Engine
			app := fxtest.New(t, fx.Supply(tt.cfg(t)), fx.Populate(&e))
			app.RequireStart()
			defer app.RequireStop()
			var db string
			if err := e.DB().GetContext(t.Context(), &db, tt.query); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(db, "ci_policy_testdatabaseprefix_") {
				t.Fatalf("the test's database is %q, want it to start with ci_policy_testdatabaseprefix_", db)
			}
		})
	}
}
