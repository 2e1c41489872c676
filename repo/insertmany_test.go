package repo_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// storedIDs maps each stored user's email to its key, read on the raw pool.
func storedIDs(t *testing.T, v *env) map[string]int64 {
	t.Helper()
	var rows []struct {
		ID    int64  `db:"id"`
		Email string `db:"email"`
	}
	if err := v.e.DB().SelectContext(testContext(t), &rows, "SELECT id, email FROM users"); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Email] = r.ID
	}
	return out
}

// wantKeysStored fails unless every user of us is stored under the key
// InsertMany filled in.
func wantKeysStored(t *testing.T, v *env, us []User) {
	t.Helper()
	stored := storedIDs(t, v)
	for _, u := range us {
		if id, ok := stored[u.Email]; !ok || id != u.ID {
			t.Fatalf("%s: InsertMany filled key %d, stored under %d (present: %t)", u.Email, u.ID, id, ok)
		}
	}
}

func TestInsertMany100000Rows(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 rows")
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		us := make([]User, 100_000)
		for i := range us {
			us[i] = newUser(i)
		}
		wantErrIs(t, "InsertMany", v.users.InsertMany(ctx, us), nil)
		if n := countRows(t, v.e, "users"); n != len(us) {
			t.Fatalf("%d rows stored, want %d", n, len(us))
		}
		wantKeysStored(t, v, us)
		for _, u := range us {
			if u.Version != 1 || u.Created.IsZero() || !u.Created.Equal(us[0].Created) {
				t.Fatalf("row not stamped: %+v", u)
			}
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// TestInsertManyKeysUnderConcurrency runs InsertMany from several
// goroutines at once: the keys each call fills in must be the keys its
// rows got, although other statements take keys at the same time.
func TestInsertManyKeysUnderConcurrency(t *testing.T) {
	const workers, calls, rows = 4, 5, 300
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		batches := make([][]User, workers*calls)
		for b := range batches {
			batches[b] = make([]User, rows)
			for i := range rows {
				batches[b][i] = newUser(b*rows + i)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(batches))
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range calls {
					// Single inserts interleave with the batches.
					single := newUser(1_000_000 + w*calls + c)
					if err := v.users.Insert(ctx, &single); err != nil {
						errs <- err
						return
					}
					if err := v.users.InsertMany(ctx, batches[w*calls+c]); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, b := range batches {
			wantKeysStored(t, v, b)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// TestInsertManyIsAllOrNothing makes a late statement of a large batch
// fail: outside a scope no row stays; inside one, the transaction rolls
// back.
func TestInsertManyIsAllOrNothing(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		us := make([]User, 2500) // three statements
		for i := range us {
			us[i] = newUser(i)
		}
		us[len(us)-1].Email = us[0].Email
		wantErrIs(t, "InsertMany outside a scope", v.users.InsertMany(ctx, us), repo.ErrDuplicate)
		if n := countRows(t, v.e, "users"); n != 0 {
			t.Fatalf("%d rows stayed after a failed InsertMany", n)
		}

		err := v.m.Tx(ctx, func(ctx context.Context) error {
			u := newUser(99_999)
			if err := v.users.Insert(ctx, &u); err != nil {
				return err
			}
			// The caller swallows the error: the transaction still rolls back.
			_ = v.users.InsertMany(ctx, us)
			return nil
		})
		if err == nil {
			t.Fatal("the transaction committed although InsertMany failed in it")
		}
		if n := countRows(t, v.e, "users"); n != 0 {
			t.Fatalf("%d rows stayed after a failed transaction", n)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestInsertManyEdgeCases(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		wantErrIs(t, "InsertMany of nothing", v.users.InsertMany(ctx, nil), nil)
		one := []User{newUser(1)}
		wantErrIs(t, "InsertMany of one", v.users.InsertMany(ctx, one), nil)
		wantKeysStored(t, v, one)
		settings := make([]Setting, 40)
		for i := range settings {
			settings[i] = Setting{Key: fmt.Sprintf("k%02d", i), Value: "v"}
		}
		wantErrIs(t, "InsertMany with natural keys", v.settings.InsertMany(ctx, settings), nil)
		if n := countRows(t, v.e, "app_settings"); n != len(settings) {
			t.Fatalf("%d settings stored, want %d", n, len(settings))
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}
