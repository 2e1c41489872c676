package repo_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

func TestInsertGetUpdateDelete(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		before := time.Now().Add(-time.Second)

		u := newUser(1)
		u.Nick = ptr("ace")
		wantErrIs(t, "Insert", v.users.Insert(ctx, &u), nil)
		if u.ID == 0 || u.Version != 1 || u.Created.Before(before) || !u.Updated.Equal(u.Created) {
			t.Fatalf("Insert left %+v: want a key, version 1 and both timestamps", u)
		}
		if u.Created.Location() != time.UTC || u.Created.Nanosecond()%1000 != 0 {
			t.Fatalf("created %v: want UTC truncated to microseconds", u.Created)
		}
		got, err := v.users.Get(ctx, u.ID)
		wantErrIs(t, "Get", err, nil)
		if !sameUser(got, u) {
			t.Fatalf("Get = %+v, want %+v", got, u)
		}

		u2 := newUser(2)
		wantErrIs(t, "Insert second", v.users.Insert(ctx, &u2), nil)
		if u2.ID == u.ID {
			t.Fatalf("two inserts got the same key %d", u.ID)
		}

		stale := got // a copy read before the update
		u.Name, u.Nick = "renamed", nil
		wantErrIs(t, "Update", v.users.Update(ctx, &u), nil)
		if u.Version != 2 || !u.Updated.After(u.Created) && !u.Updated.Equal(u.Created) {
			t.Fatalf("Update left %+v: want version 2 and a later updated", u)
		}
		got, err = v.users.Get(ctx, u.ID)
		wantErrIs(t, "Get after Update", err, nil)
		if !sameUser(got, u) {
			t.Fatalf("Get after Update = %+v, want %+v", got, u)
		}

		stale.Name = "lost update"
		wantErrIs(t, "Update of a stale copy", v.users.Update(ctx, &stale), repo.ErrStale)
		if stale.Version != 1 {
			t.Fatalf("a failed Update changed the version to %d", stale.Version)
		}
		got, _ = v.users.Get(ctx, u.ID)
		if got.Name != "renamed" {
			t.Fatalf("the stale Update wrote: name %q", got.Name)
		}

		// An update that changes nothing still succeeds (clientFoundRows on MySQL).
		wantErrIs(t, "Update unchanged", v.users.Update(ctx, &u), nil)

		wantErrIs(t, "Delete", v.users.Delete(ctx, u.ID), nil)
		_, err = v.users.Get(ctx, u.ID)
		wantErrIs(t, "Get deleted", err, repo.ErrNotFound)
		wantErrIs(t, "Get deleted (sql.ErrNoRows)", err, sql.ErrNoRows)
		wantErrIs(t, "Delete again", v.users.Delete(ctx, u.ID), repo.ErrNotFound)
		wantErrIs(t, "Update deleted", v.users.Update(ctx, &u), repo.ErrNotFound)
		if n := countRows(t, v.e, "users"); n != 1 {
			t.Fatalf("%d users left, want 1", n)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestNaturalKeyAndReadonlyColumn(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		s := Setting{Key: "theme", Value: "dark", Rev: 99}
		wantErrIs(t, "Insert", v.settings.Insert(ctx, &s), nil)
		got, err := v.settings.Get(ctx, "theme")
		wantErrIs(t, "Get", err, nil)
		if got.Value != "dark" || got.Rev != 7 {
			t.Fatalf("Get = %+v: want the value and rev 7 (the database default; readonly is never written)", got)
		}
		dup := Setting{Key: "theme", Value: "light"}
		wantErrIs(t, "Insert of a taken primary key", v.settings.Insert(ctx, &dup), repo.ErrDuplicate)
		got.Value, got.Rev = "light", 1
		wantErrIs(t, "Update", v.settings.Update(ctx, &got), nil)
		got, _ = v.settings.Get(ctx, "theme")
		if got.Value != "light" || got.Rev != 7 {
			t.Fatalf("after Update: %+v", got)
		}
		missing := Setting{Key: "nope", Value: "x"}
		wantErrIs(t, "Update of a missing row", v.settings.Update(ctx, &missing), repo.ErrNotFound)
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestDuplicateIsErrDuplicate(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		a, b := newUser(1), newUser(2)
		wantErrIs(t, "Insert", v.users.Insert(ctx, &a), nil)
		wantErrIs(t, "Insert", v.users.Insert(ctx, &b), nil)
		c := newUser(1)
		err := v.users.Insert(ctx, &c)
		wantErrIs(t, "Insert of a taken email", err, repo.ErrDuplicate)
		b.Email = a.Email
		wantErrIs(t, "Update to a taken email", v.users.Update(ctx, &b), repo.ErrDuplicate)
		many := []User{newUser(3), newUser(1)}
		wantErrIs(t, "InsertMany with a taken email", v.users.InsertMany(ctx, many), repo.ErrDuplicate)
		if n := countRows(t, v.e, "users"); n != 2 {
			t.Fatalf("%d users, want 2: a failed statement left rows", n)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// seedID is the key of the row TestScopes starts from.
const seedID = 900000

// TestScopes runs the writes inside transactions: they join them, commit
// with them, and leave nothing behind when they roll back.
func TestScopes(t *testing.T) {
	tests := []struct {
		name string
		give func(ctx context.Context, v *env) error
	}{
		{"Insert", func(ctx context.Context, v *env) error {
			u := newUser(10)
			return v.users.Insert(ctx, &u)
		}},
		{"InsertMany in one statement", func(ctx context.Context, v *env) error {
			return v.users.InsertMany(ctx, []User{newUser(10), newUser(11)})
		}},
		{"InsertMany in many statements", func(ctx context.Context, v *env) error {
			us := make([]User, 2500)
			for i := range us {
				us[i] = newUser(10 + i)
			}
			return v.users.InsertMany(ctx, us)
		}},
		{"Upsert", func(ctx context.Context, v *env) error {
			u := newUser(10)
			return v.users.Upsert(ctx, &u)
		}},
		{"Update", func(ctx context.Context, v *env) error {
			u, err := v.users.Get(ctx, seedID)
			if err != nil {
				return err
			}
			u.Name = "changed"
			return v.users.Update(ctx, &u)
		}},
		{"Delete", func(ctx context.Context, v *env) error { return v.users.Delete(ctx, seedID) }},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := testContext(t)
				exec(t, v.e, "DELETE FROM users")
				seed := newUser(0)
				seed.ID = seedID // far above the generated keys (PostgreSQL's identity does not see it)
				wantErrIs(t, "seed", v.users.Upsert(ctx, &seed), nil)
				snapshot := func() []User {
					us, err := v.users.Find(ctx)
					wantErrIs(t, "Find", err, nil)
					return us
				}
				before := snapshot()

				// Rolled back: nothing changes.
				var inside int64
				err := v.m.Tx(ctx, func(ctx context.Context) error {
					if err := tt.give(ctx, v); err != nil {
						return err
					}
					// The repository sees the transaction's own writes.
					var err error
					inside, err = v.users.Count(ctx)
					if err != nil {
						return err
					}
					return errRollback
				})
				wantErrIs(t, "Tx", err, errRollback)
				after := snapshot()
				if len(after) != len(before) || (len(after) > 0 && !sameUser(after[0], before[0])) {
					t.Fatalf("after rollback: %+v, want %+v", after, before)
				}

				// Committed: the change is there, as it was inside.
				err = v.m.Tx(ctx, func(ctx context.Context) error { return tt.give(ctx, v) })
				wantErrIs(t, "Tx", err, nil)
				n, err := v.users.Count(ctx)
				wantErrIs(t, "Count", err, nil)
				if n != inside {
					t.Fatalf("%d rows after commit, %d inside the rolled back transaction", n, inside)
				}
				fxtest.RequireNoLeaks(t, v.e)
			})
		}
	})
}

func TestReadOnlyScopeRefusesWrites(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		u := newUser(1)
		wantErrIs(t, "Insert", v.users.Insert(ctx, &u), nil)
		err := v.m.ReadOnly(ctx, func(ctx context.Context) error {
			if _, err := v.users.Get(ctx, u.ID); err != nil {
				return err
			}
			w := newUser(2)
			return v.users.Insert(ctx, &w)
		})
		wantErrIs(t, "Insert in a read-only scope", err, session.ErrReadOnly)
		if n := countRows(t, v.e, "users"); n != 1 {
			t.Fatalf("%d users, want 1", n)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestUpsert(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)

		// Without a key: an insert that fills the key.
		u := newUser(1)
		wantErrIs(t, "Upsert new", v.users.Upsert(ctx, &u), nil)
		if u.ID == 0 || u.Version != 1 {
			t.Fatalf("Upsert new left %+v", u)
		}
		created := u.Created

		// With the key of a stored row: an update; the version moves on and
		// created stays, whatever v says.
		w := u
		w.Name, w.Version, w.Created = "overwritten", 0, time.Time{}
		wantErrIs(t, "Upsert existing", v.users.Upsert(ctx, &w), nil)
		if w.ID != u.ID || w.Version != 2 || !w.Created.Equal(created) {
			t.Fatalf("Upsert existing left %+v: want key %d, version 2, created %v", w, u.ID, created)
		}
		got, _ := v.users.Get(ctx, u.ID)
		if !sameUser(got, w) {
			t.Fatalf("stored %+v, Upsert reported %+v", got, w)
		}

		// With a key no row has: an insert with that key.
		x := newUser(2)
		x.ID = 1000
		wantErrIs(t, "Upsert with a new key", v.users.Upsert(ctx, &x), nil)
		if x.ID != 1000 || x.Version != 1 {
			t.Fatalf("Upsert with a new key left %+v", x)
		}

		// A natural key, without a version, with a readonly column.
		s := Setting{Key: "k", Value: "1"}
		wantErrIs(t, "Upsert setting", v.settings.Upsert(ctx, &s), nil)
		s.Value = "2"
		wantErrIs(t, "Upsert setting again", v.settings.Upsert(ctx, &s), nil)
		gs, _ := v.settings.Get(ctx, "k")
		if gs.Value != "2" || s.Rev != 7 {
			t.Fatalf("stored %+v, Upsert left %+v (want rev 7 read back)", gs, s)
		}
		if n := countRows(t, v.e, "app_settings"); n != 1 {
			t.Fatalf("%d settings, want 1", n)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestUpsertConflictOn(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		byEmail, err := repo.New[User, int64](v.m, repo.ConflictOn("email"))
		wantErrIs(t, "New", err, nil)
		u := newUser(1)
		wantErrIs(t, "Insert", v.users.Insert(ctx, &u), nil)

		// A new row with the email of u updates u, keeping its key.
		w := newUser(1)
		w.Name = "by email"
		wantErrIs(t, "Upsert on email", byEmail.Upsert(ctx, &w), nil)
		if w.ID != u.ID || w.Version != 2 || !w.Created.Equal(u.Created) {
			t.Fatalf("Upsert on email left %+v, want key %d, version 2", w, u.ID)
		}
		got, _ := v.users.Get(ctx, u.ID)
		if got.Name != "by email" {
			t.Fatalf("stored %+v", got)
		}
		if n := countRows(t, v.e, "users"); n != 1 {
			t.Fatalf("%d users, want 1", n)
		}

		// Another email inserts.
		x := newUser(2)
		wantErrIs(t, "Upsert another email", byEmail.Upsert(ctx, &x), nil)
		if x.ID == u.ID || x.ID == 0 {
			t.Fatalf("Upsert of a new email left %+v", x)
		}

		// On the primary key, a taken email is a duplicate on PostgreSQL and
		// SQLite; MySQL's ON DUPLICATE KEY UPDATE fires on any unique key.
		y := newUser(2)
		err = v.users.Upsert(ctx, &y)
		if v.driver == "mysql" {
			wantErrIs(t, "Upsert on the pk of a taken email (MySQL)", err, nil)
			if y.ID != x.ID {
				t.Fatalf("MySQL updated key %d, want %d", y.ID, x.ID)
			}
		} else {
			wantErrIs(t, "Upsert on the pk of a taken email", err, repo.ErrDuplicate)
		}
		_, err = repo.New[User, int64](v.m, repo.ConflictOn("mail"))
		wantErrIs(t, "ConflictOn an unknown column", err, repo.ErrUnknownColumn)
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestErrorsWrapTheDriversError(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		exec(t, v.e, "DROP TABLE users")
		_, err := v.users.Get(ctx, 1)
		if err == nil || errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Get on a dropped table = %v, want the database's error", err)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// Tag has a generated key and a unique name, and nothing else: upserting
// the same tag again changes no column.
type Tag struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name"`
}

func TestUpsertOfAnUnchangedRowReturnsItsKey(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		key := map[string]string{
			"sqlite3":  "INTEGER PRIMARY KEY",
			"postgres": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
			"mysql":    "BIGINT AUTO_INCREMENT PRIMARY KEY",
		}[v.driver]
		exec(t, v.e, "CREATE TABLE tags (id "+key+", name VARCHAR(50) NOT NULL UNIQUE)")
		tags, err := repo.New[Tag, int64](v.m, repo.ConflictOn("name"))
		wantErrIs(t, "New", err, nil)
		for _, name := range []string{"go", "sql"} {
			first := Tag{Name: name}
			wantErrIs(t, "Upsert", tags.Upsert(ctx, &first), nil)
			again := Tag{Name: name}
			wantErrIs(t, "Upsert again", tags.Upsert(ctx, &again), nil)
			if first.ID == 0 || again.ID != first.ID {
				t.Fatalf("%s: keys %d then %d, want the same", name, first.ID, again.ID)
			}
		}
		if n := countRows(t, v.e, "tags"); n != 2 {
			t.Fatalf("%d tags, want 2", n)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}
