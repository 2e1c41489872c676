package repo_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/repo"
)

// loadUsers returns n users with emails from prefix, every other one
// with a nick.
func loadUsers(prefix string, n int) []User {
	us := make([]User, n)
	for i := range us {
		us[i] = User{Email: fmt.Sprintf("%s%d@example.com", prefix, i), Name: "load", Age: i}
		if i%2 == 0 {
			us[i].Nick = ptr(fmt.Sprintf("n%d", i))
		}
	}
	return us
}

// Load adds every row, stamped and at version 1, on every database: by
// COPY on PostgreSQL (keys left unset), by InsertMany elsewhere (keys
// filled); it joins a transaction that then rolls back, and outside one a
// duplicate adds nothing.
func TestLoad(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		us := loadUsers("a", 2500)
		if err := v.users.Load(ctx, us); err != nil {
			t.Fatalf("Load: %v", err)
		}
		if n := countRows(t, v.e, "users"); n != 2500 {
			t.Fatalf("%d rows after Load, want 2500", n)
		}
		for _, u := range us {
			if u.Version != 1 || u.Created.IsZero() || u.Updated.IsZero() {
				t.Fatalf("Load left %+v unstamped", u)
			}
			if keyed := u.ID != 0; keyed == (v.driver == "postgres") {
				t.Fatalf("on %s Load gave %s the key %d", v.driver, u.Email, u.ID)
			}
		}
		got, err := v.users.Find(ctx, repo.Where(repo.In("email", "a0@example.com", "a2499@example.com")), repo.OrderBy("age", false))
		if err != nil || len(got) != 2 {
			t.Fatalf("Find = %v, %v", got, err)
		}
		if a, b := got[0], got[1]; a.Age != 0 || a.Nick == nil || *a.Nick != "n0" || b.Age != 2499 || b.Nick != nil || a.Version != 1 ||
			!a.Created.Round(0).Equal(us[0].Created.Round(0)) {
			t.Fatalf("rows read back as %+v and %+v; loaded %+v", a, b, us[0])
		}

		errUndo := errors.New("undo")
		err = v.m.Tx(ctx, func(ctx context.Context) error {
			if err := v.users.Load(ctx, loadUsers("b", 100)); err != nil {
				return err
			}
			if n, err := v.users.Count(ctx); err != nil || n != 2600 {
				t.Errorf("Count in the transaction = %d, %v; want 2600", n, err)
			}
			return errUndo
		})
		if !errors.Is(err, errUndo) {
			t.Fatalf("Tx = %v", err)
		}
		dup := loadUsers("c", 300)
		dup[299].Email = "a7@example.com"
		if err := v.users.Load(ctx, dup); !errors.Is(err, repo.ErrDuplicate) {
			t.Fatalf("Load of a duplicate = %v, want ErrDuplicate", err)
		}
		if n := countRows(t, v.e, "users"); n != 2500 {
			t.Fatalf("%d rows after a rolled-back and a refused Load, want 2500", n)
		}
	})
}

// copies counts the statements a monitor sees.
type copies struct{ copy, insert atomic.Int64 }

func (c *copies) Query(_ context.Context, e monitor.QueryEvent) {
	switch {
	case len(e.SQL) >= 4 && e.SQL[:4] == "COPY":
		c.copy.Add(1)
	case len(e.SQL) >= 6 && e.SQL[:6] == "INSERT":
		c.insert.Add(1)
	}
}
func (*copies) Tx(context.Context, monitor.TxEvent) {}

// On PostgreSQL a load of 5,000 rows is one statement to the monitor.
func TestLoadIsOneStatement(t *testing.T) {
	cfg := fxtest.Postgres(t)
	var c copies
	var users *repo.Repository[User, int64]
	var e *dbfx.Engine
	app := fxtest.New(t, fx.Supply(cfg), dbfx.Options(dbfx.WithMonitor(&c)),
		dbfx.ProvideRepository[User, int64](), fx.Populate(&e, &users))
	app.RequireStart()
	for _, ddl := range schema[e.Driver()] {
		exec(t, e, ddl)
	}
	v := &env{e: e, users: users}
	if err := v.users.Load(testContext(t), loadUsers("m", 5000)); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.copy.Load() != 1 || c.insert.Load() != 0 {
		t.Fatalf("the monitor saw %d COPY and %d INSERT statements, want 1 and 0", c.copy.Load(), c.insert.Load())
	}
}
