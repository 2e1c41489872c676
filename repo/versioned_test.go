package repo_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// Profile has no version column: partial updates of different columns
// both keep their changes.
type Profile struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name"`
	City string `db:"city"`
}

func newProfiles(t *testing.T, v *env) *repo.Repository[Profile, int64] {
	t.Helper()
	exec(t, v.e, "CREATE TABLE profiles (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, city VARCHAR(64) NOT NULL)")
	ps, err := repo.New[Profile, int64](v.m)
	wantErrIs(t, "New", err, nil)
	return ps
}

func TestDeleteVersion(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		us := seedUsers(t, v, 2)

		mine, err := v.users.Get(ctx, us[0].ID)
		wantErrIs(t, "Get", err, nil)
		// Another writer changes the row after it was read.
		wantErrIs(t, "the other writer's Update", v.m.Tx(ctx, func(ctx context.Context) error {
			other, err := v.users.Get(ctx, us[0].ID)
			if err != nil {
				return err
			}
			other.Name = "changed by the other writer"
			return v.users.Update(ctx, &other)
		}), nil)
		wantErrIs(t, "DeleteVersion of the copy read before", v.users.DeleteVersion(ctx, &mine), repo.ErrStale)
		if got, err := v.users.Get(ctx, us[0].ID); err != nil || got.Name != "changed by the other writer" {
			t.Fatalf("after a stale DeleteVersion: %+v, %v; want the row kept", got, err)
		}
		if countRows(t, v.e, "users") != 2 {
			t.Fatal("a stale DeleteVersion deleted a row")
		}

		mine, err = v.users.Get(ctx, us[0].ID)
		wantErrIs(t, "Get again", err, nil)
		wantErrIs(t, "DeleteVersion of the current version", v.users.DeleteVersion(ctx, &mine), nil)
		_, err = v.users.Get(ctx, us[0].ID)
		wantErrIs(t, "Get deleted", err, repo.ErrNotFound)
		wantErrIs(t, "DeleteVersion again", v.users.DeleteVersion(ctx, &mine), repo.ErrNotFound)
		if n := countRows(t, v.e, "users"); n != 1 {
			t.Fatalf("%d users left, want 1", n)
		}

		// Concurrent deletes of one version: one deletes, the others find no row.
		last, _ := v.users.Get(ctx, us[1].ID)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := last
				errs[i] = v.users.DeleteVersion(ctx, &c)
			}()
		}
		wg.Wait()
		ok, missing := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, repo.ErrNotFound):
				missing++
			default:
				t.Errorf("concurrent DeleteVersion: %v", err)
			}
		}
		if ok != 1 || missing != n-1 {
			t.Fatalf("%d concurrent DeleteVersion: %d deleted, %d ErrNotFound; want 1 and %d", n, ok, missing, n-1)
		}

		// Without a version column it is a delete by key.
		ps := newProfiles(t, v)
		p := Profile{ID: 1, Name: "a", City: "b"}
		wantErrIs(t, "Insert profile", ps.Insert(ctx, &p), nil)
		wantErrIs(t, "DeleteVersion unversioned", ps.DeleteVersion(ctx, &p), nil)
		wantErrIs(t, "DeleteVersion unversioned again", ps.DeleteVersion(ctx, &p), repo.ErrNotFound)
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestUpdateColumns(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)

		// Unversioned: two requests read the row and change different
		// columns; both changes survive.
		ps := newProfiles(t, v)
		wantErrIs(t, "Insert profile", ps.Insert(ctx, &Profile{ID: 1, Name: "ann", City: "oslo"}), nil)
		a, _ := ps.Get(ctx, 1)
		b, _ := ps.Get(ctx, 1)
		a.Name = "anna"
		b.City = "bergen"
		wantErrIs(t, "UpdateColumns(name)", ps.UpdateColumns(ctx, &a, "name"), nil)
		wantErrIs(t, "UpdateColumns(city)", ps.UpdateColumns(ctx, &b, "city"), nil)
		if got, _ := ps.Get(ctx, 1); got.Name != "anna" || got.City != "bergen" {
			t.Fatalf("after two partial updates: %+v, want name anna and city bergen", got)
		}
		// The control: Update of b, read before a's change, writes back the old name.
		wantErrIs(t, "Update(b)", ps.Update(ctx, &b), nil)
		if got, _ := ps.Get(ctx, 1); got.Name != "ann" {
			t.Fatalf("control: Update of a copy read before left name %q, want ann", got.Name)
		}
		wantErrIs(t, "UpdateColumns unversioned missing row",
			ps.UpdateColumns(ctx, &Profile{ID: 9, Name: "x"}, "name"), repo.ErrNotFound)

		// Versioned: the second request read the version the first
		// changed, gets ErrStale and writes nothing.
		us := seedUsers(t, v, 1)
		first, _ := v.users.Get(ctx, us[0].ID)
		second := first
		time.Sleep(2 * time.Millisecond)
		first.Name = "first"
		wantErrIs(t, "UpdateColumns(name)", v.users.UpdateColumns(ctx, &first, "name"), nil)
		if first.Version != us[0].Version+1 || !first.Updated.After(us[0].Updated) {
			t.Fatalf("UpdateColumns left %+v: want version +1 and a later updated (before: %+v)", first, us[0])
		}
		got, _ := v.users.Get(ctx, us[0].ID)
		want := us[0]
		want.Name, want.Version, want.Updated = "first", first.Version, first.Updated
		if !sameUser(got, want) {
			t.Fatalf("after UpdateColumns(name): %+v, want %+v", got, want)
		}
		second.Age = 99
		wantErrIs(t, "UpdateColumns of a stale copy", v.users.UpdateColumns(ctx, &second, "age"), repo.ErrStale)
		if second.Version != us[0].Version {
			t.Fatalf("a stale UpdateColumns changed the version to %d", second.Version)
		}
		if got, _ := v.users.Get(ctx, us[0].ID); !sameUser(got, want) {
			t.Fatalf("the stale UpdateColumns wrote: %+v, want %+v", got, want)
		}

		// Concurrent partial updates of one version: one wins, the others are stale.
		base, _ := v.users.Get(ctx, us[0].ID)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := base
				col := "age"
				if c.Age = 50 + i; i%2 == 1 {
					c.Name, col = "writer", "name"
				}
				errs[i] = v.users.UpdateColumns(ctx, &c, col)
			}()
		}
		wg.Wait()
		ok, stale := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, repo.ErrStale):
				stale++
			default:
				t.Errorf("concurrent UpdateColumns: %v", err)
			}
		}
		if got, _ := v.users.Get(ctx, us[0].ID); ok != 1 || stale != n-1 || got.Version != base.Version+1 {
			t.Fatalf("%d concurrent UpdateColumns: %d passed, %d ErrStale, version %d; want 1, %d, %d", n, ok, stale, got.Version, n-1, base.Version+1)
		}

		// Refused before anything is sent.
		cur, _ := v.users.Get(ctx, us[0].ID)
		for _, c := range []struct {
			name string
			cols []string
			want error
		}{
			{"no column", nil, repo.ErrInvalidClause},
			{"unknown column", []string{"nope"}, repo.ErrUnknownColumn},
			{"primary key", []string{"id"}, repo.ErrInvalidClause},
			{"created", []string{"created_at"}, repo.ErrInvalidClause},
			{"version", []string{"version"}, repo.ErrInvalidClause},
			{"twice", []string{"age", "age"}, repo.ErrInvalidClause},
		} {
			c2 := cur
			c2.Age = 7
			wantErrIs(t, "UpdateColumns "+c.name, v.users.UpdateColumns(ctx, &c2, c.cols...), c.want)
			if c2.Version != cur.Version {
				t.Errorf("UpdateColumns %s changed v's version", c.name)
			}
		}
		wantErrIs(t, "UpdateColumns readonly", v.settings.UpdateColumns(ctx, &Setting{Key: "k"}, "rev"), repo.ErrInvalidClause)
		if got, _ := v.users.Get(ctx, us[0].ID); !sameUser(got, cur) {
			t.Fatalf("a refused UpdateColumns wrote: %+v, want %+v", got, cur)
		}
		// Naming the updated column is allowed: it is stamped.
		wantErrIs(t, "UpdateColumns(updated_at)", v.users.UpdateColumns(ctx, &cur, "updated_at", "nick"), nil)
		wantErrIs(t, "DeleteVersion", v.users.DeleteVersion(ctx, &cur), nil)
		wantErrIs(t, "UpdateColumns deleted", v.users.UpdateColumns(ctx, &cur, "name"), repo.ErrNotFound)
		fxtest.RequireNoLeaks(t, v.e)
	})
}
