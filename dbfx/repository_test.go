package dbfx_test

import (
	"strings"
	"testing"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

type repoItem struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name"`
}

type repoNoKey struct {
	Name string `db:"name"`
}

func TestProvideRepository(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var e *dbfx.Engine
		var items *repo.Repository[repoItem, int64]
		app := fxtest.New(t, fx.Supply(cfg), dbfx.ProvideRepository[repoItem, int64](repo.Table("items")), fx.Populate(&e, &items))
		app.RequireStart()
		if _, err := e.DB().ExecContext(testContext(t), e.DB().Rebind("CREATE TABLE items (id "+map[string]string{
			"sqlite3": "INTEGER PRIMARY KEY", "postgres": "BIGSERIAL PRIMARY KEY", "mysql": "BIGINT AUTO_INCREMENT PRIMARY KEY",
		}[e.Driver()]+", name VARCHAR(20) NOT NULL)")); err != nil {
			t.Fatal(err)
		}
		it := repoItem{Name: "x"}
		if err := items.Insert(testContext(t), &it); err != nil || it.ID != 1 {
			t.Fatalf("Insert: key %d, %v", it.ID, err)
		}
		if n := count(t, e, "items"); n != 1 {
			t.Fatalf("%d items", n)
		}
		app.RequireStop()
	})
}

func TestProvideRepositoryMappingErrorFailsTheApp(t *testing.T) {
	// The Manager comes from an engine the test owns: an app that fails
	// during construction never runs the OnStop that would close one.
	e := open(t, fxtest.SQLite(t))
	app := fx.New(fx.NopLogger, fx.Supply(e.Sessions()),
		dbfx.ProvideRepository[repoNoKey, int64](), fx.Invoke(func(*repo.Repository[repoNoKey, int64]) {}))
	err := app.Err()
	if err == nil || !strings.Contains(err.Error(), "repoNoKey") || !strings.Contains(err.Error(), "primary key") {
		t.Fatalf("app error %v: want the mapping error naming the type", err)
	}
}
