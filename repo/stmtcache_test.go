package repo_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// A repository's statements are cached prepared statements, except those
// whose text varies with the values; with the cache off, none is.
func TestRepositoryPreparesItsStatements(t *testing.T) {
	for _, size := range []int{0, -1} {
		t.Run(fmt.Sprintf("cache=%d", size), func(t *testing.T) {
			fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
				cfg.StatementCache = size
				v := setup(t, cfg)
				ctx := testContext(t)
				cached := func() int { return v.m.Stats().Statements }
				step := func(what string, grows bool, f func() error) {
					t.Helper()
					before := cached()
					if err := f(); err != nil {
						t.Fatalf("cache %d: %s: %v", size, what, err)
					}
					want := before
					if grows && size >= 0 {
						want++
					}
					if got := cached(); got != want {
						t.Errorf("cache %d: after %s, %d statements cached, want %d", size, what, got, want)
					}
				}
				u := newUser(1)
				step("Insert", true, func() error { return v.users.Insert(ctx, &u) })
				step("Get", true, func() error { _, err := v.users.Get(ctx, u.ID); return err })
				step("Get again", false, func() error { _, err := v.users.Get(ctx, u.ID); return err })
				step("Update", true, func() error { return v.users.Update(ctx, &u) })
				step("Find by age", true, func() error { _, err := v.users.Find(ctx, repo.Where(repo.Eq("age", 30))); return err })
				step("Find by another age", false, func() error { _, err := v.users.Find(ctx, repo.Where(repo.Eq("age", 31))); return err })
				step("Find with In", false, func() error {
					_, err := v.users.Find(ctx, repo.Where(repo.In("age", 1, 2, 3)))
					return err
				})
				step("Find with Offset", false, func() error {
					_, err := v.users.Find(ctx, repo.Where(repo.Gt("age", 0)), repo.Offset(5))
					return err
				})
				step("Insert in a transaction", false, func() error {
					return v.m.Tx(ctx, func(ctx context.Context) error {
						u2 := newUser(2)
						return v.users.Insert(ctx, &u2)
					})
				})
				step("Delete", true, func() error { return v.users.Delete(ctx, u.ID) })
			})
		})
	}
}

// A DDL that changes the type of a column the repository reads makes its
// cached SELECT stale on PostgreSQL; the repository goes on, outside and
// inside transactions.
func TestRepositoryAfterDDL(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.MaxOpenConns = 1 // every statement meets the DDL on the connection it was prepared on
		v := setup(t, cfg)
		ctx := testContext(t)
		u := newUser(1)
		wantErrIs(t, "Insert", v.users.Insert(ctx, &u), nil)
		if _, err := v.users.Get(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		alter := map[string]string{
			"postgres": "ALTER TABLE users ALTER COLUMN name TYPE TEXT",
			"mysql":    "ALTER TABLE users MODIFY name TEXT NOT NULL",
			"sqlite3":  "ALTER TABLE users ADD COLUMN extra INTEGER",
		}[v.driver]
		exec(t, v.e, alter)
		got, err := v.users.Get(ctx, u.ID)
		if err != nil || got.Name != u.Name {
			t.Fatalf("Get after %s = %+v, %v", alter, got, err)
		}
		exec(t, v.e, "UPDATE users SET age = age + 1")
		if v.driver == "postgres" {
			exec(t, v.e, "ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(128)")
		}
		err = v.m.Tx(ctx, func(ctx context.Context) error {
			got, err = v.users.Get(ctx, u.ID)
			return err
		})
		if err != nil || got.Age != u.Age+1 {
			t.Fatalf("Get in a transaction after a DDL = %+v, %v", got, err)
		}
	})
}
