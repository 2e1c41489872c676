package repo_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// Counter is one counter row: no version, so that a read-then-write
// without a lock can lose updates.
type Counter struct {
	ID int64 `db:"id,pk"`
	N  int64 `db:"n"`
}

// newCounters creates the counters table with counter 1 at zero.
func newCounters(t *testing.T, v *env) *repo.Repository[Counter, int64] {
	t.Helper()
	exec(t, v.e, "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
	cs, err := repo.New[Counter, int64](v.m)
	wantErrIs(t, "New", err, nil)
	wantErrIs(t, "Insert", cs.Insert(testContext(t), &Counter{ID: 1}), nil)
	return cs
}

// bump runs n concurrent transactions that each read counter 1 (locked
// with ForUpdate when lock) and write it back plus one. It returns the
// counter's final value and the transactions that failed.
func bump(t *testing.T, v *env, cs *repo.Repository[Counter, int64], n int, lock bool) (int64, int) {
	t.Helper()
	ctx := testContext(t)
	wantErrIs(t, "reset", v.m.Tx(ctx, func(ctx context.Context) error {
		_, err := cs.UpdateWhere(ctx, []repo.Assignment{repo.Assign("n", 0)}, repo.Where(repo.Eq("id", 1)))
		return err
	}), nil)
	clauses := []repo.Clause{repo.Where(repo.Eq("id", 1))}
	if lock {
		clauses = append(clauses, repo.ForUpdate())
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := v.m.Tx(ctx, func(ctx context.Context) error {
				c, err := cs.First(ctx, clauses...)
				if err != nil {
					return err
				}
				time.Sleep(time.Millisecond) // widen the window between read and write
				c.N++
				return cs.Update(ctx, &c)
			})
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				if lock {
					t.Errorf("locked read-then-write: %v", err)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	c, err := cs.Get(ctx, 1)
	wantErrIs(t, "Get", err, nil)
	return c.N, failed
}

func TestForUpdateCounter(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		cs := newCounters(t, v)
		const n = 32
		got, _ := bump(t, v, cs, n, true)
		if got != n {
			t.Fatalf("%s: %d transactions with ForUpdate left the counter at %d, want %d", v.driver, n, got, n)
		}
		got, failed := bump(t, v, cs, n, false)
		t.Logf("control on %s: without ForUpdate %d transactions left the counter at %d: %d updates lost (%d transactions failed)",
			v.driver, n, got, int64(n-failed)-got, failed)
	})
}

func TestUpdateWhereIncrConcurrent(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		cs := newCounters(t, v)
		ctx := testContext(t)
		const n = 50
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := cs.UpdateWhere(ctx, []repo.Assignment{repo.Incr("n", 1)}, repo.Where(repo.Eq("id", 1)))
				if err != nil || got != 1 {
					t.Errorf("UpdateWhere(Incr) = %d, %v; want 1 row", got, err)
				}
			}()
		}
		wg.Wait()
		c, err := cs.Get(ctx, 1)
		wantErrIs(t, "Get", err, nil)
		if c.N != n {
			t.Fatalf("%d concurrent UpdateWhere(Incr(n, 1)) left n at %d", n, c.N)
		}
		got, err := cs.UpdateWhere(ctx, []repo.Assignment{repo.Incr("n", -8)}, repo.Where(repo.Eq("id", 1)))
		wantErrIs(t, "UpdateWhere(Incr(n, -8))", err, nil)
		if c, _ = cs.Get(ctx, 1); got != 1 || c.N != n-8 {
			t.Fatalf("Incr(n, -8): %d rows, n = %d; want 1 row, n = %d", got, c.N, n-8)
		}
	})
}

func TestUpdateWhereDeleteWhere(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		us := seedUsers(t, v, 10) // ages 21, 22, 23, 24, 20, 21, ...

		before := us[0]
		time.Sleep(2 * time.Millisecond)
		got, err := v.users.UpdateWhere(ctx, []repo.Assignment{repo.Assign("name", "twenty-one"), repo.Incr("age", 10)},
			repo.Where(repo.Eq("age", 21)))
		wantErrIs(t, "UpdateWhere", err, nil)
		if got != 2 {
			t.Fatalf("UpdateWhere(age = 21) changed %d rows, want 2", got)
		}
		after, err := v.users.Get(ctx, before.ID)
		wantErrIs(t, "Get", err, nil)
		if after.Name != "twenty-one" || after.Age != 31 || after.Version != before.Version+1 || !after.Updated.After(before.Updated) {
			t.Fatalf("after UpdateWhere: %+v (before: %+v), want name set, age +10, version +1, updated later", after, before)
		}
		if other, _ := v.users.Get(ctx, us[1].ID); !sameUser(other, us[1]) {
			t.Fatalf("UpdateWhere changed a row it did not select: %+v", other)
		}
		wantErrIs(t, "Update of a row UpdateWhere changed", v.users.Update(ctx, &before), repo.ErrStale)

		// Refused before anything is sent.
		for _, c := range []struct {
			name string
			set  []repo.Assignment
			q    []repo.Clause
			want error
		}{
			{"empty set", nil, []repo.Clause{repo.Where(repo.Eq("id", 1))}, repo.ErrInvalidClause},
			{"no condition", []repo.Assignment{repo.Assign("name", "x")}, nil, repo.ErrInvalidClause},
			{"unknown Assign column", []repo.Assignment{repo.Assign("nope", 1)}, []repo.Clause{repo.Where(repo.Eq("id", 1))}, repo.ErrUnknownColumn},
			{"unknown Incr column", []repo.Assignment{repo.Incr("nope", 1)}, []repo.Clause{repo.Where(repo.Eq("id", 1))}, repo.ErrUnknownColumn},
			{"unknown Where column", []repo.Assignment{repo.Assign("name", "x")}, []repo.Clause{repo.Where(repo.Eq("nope", 1))}, repo.ErrUnknownColumn},
			{"version", []repo.Assignment{repo.Assign("version", 9)}, []repo.Clause{repo.Where(repo.Eq("id", 1))}, repo.ErrInvalidClause},
			{"primary key", []repo.Assignment{repo.Assign("id", 99)}, []repo.Clause{repo.Where(repo.Eq("id", 1))}, repo.ErrInvalidClause},
			{"created", []repo.Assignment{repo.Assign("created_at", time.Now())}, []repo.Clause{repo.Where(repo.Eq("id", 1))}, repo.ErrInvalidClause},
			{"twice", []repo.Assignment{repo.Assign("age", 1), repo.Incr("age", 1)}, []repo.Clause{repo.Where(repo.Eq("id", 1))}, repo.ErrInvalidClause},
			{"OrderBy", []repo.Assignment{repo.Assign("name", "x")}, []repo.Clause{repo.Where(repo.Eq("id", 1)), repo.OrderBy("id", false)}, repo.ErrInvalidClause},
			{"ForUpdate", []repo.Assignment{repo.Assign("name", "x")}, []repo.Clause{repo.Where(repo.Eq("id", 1)), repo.ForUpdate()}, repo.ErrInvalidClause},
		} {
			n, err := v.users.UpdateWhere(ctx, c.set, c.q...)
			if n != 0 {
				t.Errorf("UpdateWhere %s: %d rows", c.name, n)
			}
			wantErrIs(t, "UpdateWhere "+c.name, err, c.want)
		}
		if u, _ := v.users.Get(ctx, 1); u.Name != "twenty-one" || u.Version != before.Version+1 {
			t.Fatalf("a refused UpdateWhere changed row 1: %+v", u)
		}

		// DeleteWhere.
		n, err := v.users.DeleteWhere(ctx)
		wantErrIs(t, "DeleteWhere()", err, repo.ErrInvalidClause)
		_, err2 := v.users.DeleteWhere(ctx, repo.Limit(1))
		wantErrIs(t, "DeleteWhere(Limit)", err2, repo.ErrInvalidClause)
		_, err2 = v.users.DeleteWhere(ctx, repo.Where(repo.Eq("nope", 1)))
		wantErrIs(t, "DeleteWhere(unknown column)", err2, repo.ErrUnknownColumn)
		if rows := countRows(t, v.e, "users"); n != 0 || rows != 10 {
			t.Fatalf("refused DeleteWhere: %d rows reported, %d left; want 0 and 10", n, rows)
		}
		n, err = v.users.DeleteWhere(ctx, repo.Where(repo.Gt("id", 7)))
		wantErrIs(t, "DeleteWhere(id > 7)", err, nil)
		if rows := countRows(t, v.e, "users"); n != 3 || rows != 7 {
			t.Fatalf("DeleteWhere(id > 7): %d rows reported, %d left; want 3 and 7", n, rows)
		}
		// A filter list that came out empty is not consent to delete
		// every row; AllRows is.
		var none []repo.Cond
		for _, q := range [][]repo.Clause{
			{repo.Where(repo.And(none...))},
			{repo.Where(repo.And(repo.And(), repo.And())), repo.Where(repo.And())},
		} {
			n, err = v.users.DeleteWhere(ctx, q...)
			wantErrIs(t, "DeleteWhere(Where(And()))", err, repo.ErrInvalidClause)
			_, err2 = v.users.UpdateWhere(ctx, []repo.Assignment{repo.Assign("name", "x")}, q...)
			wantErrIs(t, "UpdateWhere(Where(And()))", err2, repo.ErrInvalidClause)
			if rows := countRows(t, v.e, "users"); n != 0 || rows != 7 {
				t.Fatalf("DeleteWhere(Where(And())): %d rows reported, %d left; want 0 and 7", n, rows)
			}
		}
		// A vacuous And beside a real condition narrows.
		n, err = v.users.DeleteWhere(ctx, repo.Where(repo.And()), repo.Where(repo.Eq("id", 7)))
		wantErrIs(t, "DeleteWhere(And(), id = 7)", err, nil)
		if rows := countRows(t, v.e, "users"); n != 1 || rows != 6 {
			t.Fatalf("DeleteWhere(And(), id = 7): %d rows reported, %d left; want 1 and 6", n, rows)
		}
		n, err = v.users.UpdateWhere(ctx, []repo.Assignment{repo.Incr("age", 1)}, repo.AllRows())
		wantErrIs(t, "UpdateWhere(AllRows)", err, nil)
		if n != 6 {
			t.Fatalf("UpdateWhere(AllRows): %d rows, want 6", n)
		}
		if ok, err := v.users.Exists(ctx, repo.AllRows()); !ok || err != nil {
			t.Fatalf("Exists(AllRows) = %v, %v; want true", ok, err)
		}
		n, err = v.users.DeleteWhere(ctx, repo.AllRows())
		wantErrIs(t, "DeleteWhere(AllRows)", err, nil)
		if rows := countRows(t, v.e, "users"); n != 6 || rows != 0 {
			t.Fatalf("DeleteWhere(AllRows): %d rows reported, %d left; want 6 and 0", n, rows)
		}
	})
}

func TestForUpdateScope(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		seedUsers(t, v, 3)
		lock := repo.ForUpdate()
		_, err := v.users.First(ctx, repo.Where(repo.Eq("id", 1)), lock)
		wantErrIs(t, "First(ForUpdate) outside a transaction", err, repo.ErrInvalidClause)
		_, err = v.users.Find(ctx, lock)
		wantErrIs(t, "Find(ForUpdate) outside a transaction", err, repo.ErrInvalidClause)
		_, err = v.users.Page(ctx, repo.PageRequest{Limit: 2}, lock)
		wantErrIs(t, "Page(ForUpdate) outside a transaction", err, repo.ErrInvalidClause)
		err = v.m.Conn(ctx, func(ctx context.Context) error {
			_, err := v.users.First(ctx, lock)
			return err
		})
		wantErrIs(t, "First(ForUpdate) in a connection scope", err, repo.ErrInvalidClause)

		// A read-only transaction takes no row locks (PostgreSQL refuses
		// them with 25006): refused before anything is sent, every lock.
		for _, l := range []repo.Clause{repo.ForUpdate(), repo.ForUpdateSkipLocked(), repo.ForUpdateNoWait(), repo.ForShare()} {
			err = v.m.ReadOnly(ctx, func(ctx context.Context) error {
				_, err := v.users.First(ctx, repo.Where(repo.Eq("id", 1)), l)
				if !errors.Is(err, repo.ErrInvalidClause) || !strings.Contains(err.Error(), "read-only") {
					t.Errorf("First(lock) in ReadOnly = %v, want ErrInvalidClause naming the read-only transaction", err)
				}
				return nil // the transaction is still usable: nothing was sent
			})
			wantErrIs(t, "ReadOnly scope after a refused lock", err, nil)
		}
		// A ReadOnly scope inside a write transaction joins it: it locks.
		wantErrIs(t, "ForUpdate in a ReadOnly scope joined to a Tx", v.m.Tx(ctx, func(ctx context.Context) error {
			return v.m.ReadOnly(ctx, func(ctx context.Context) error {
				_, err := v.users.First(ctx, repo.Where(repo.Eq("id", 1)), lock)
				return err
			})
		}), nil)

		wantErrIs(t, "reads with ForUpdate in a transaction", v.m.Tx(ctx, func(ctx context.Context) error {
			u, err := v.users.First(ctx, repo.Where(repo.Eq("id", 2)), lock)
			if err != nil || u.ID != 2 {
				t.Errorf("First(ForUpdate) = %d, %v", u.ID, err)
			}
			us, err := v.users.Find(ctx, repo.Where(repo.Gt("id", 1)), repo.OrderBy("id", true), repo.Limit(5), lock)
			if err != nil || len(us) != 2 || us[0].ID != 3 {
				t.Errorf("Find(ForUpdate) = %v, %v", idsOf(us), err)
			}
			p, err := v.users.Page(ctx, repo.PageRequest{Limit: 2}, lock)
			if err != nil || len(p.Items) != 2 || p.Next == "" {
				t.Errorf("Page(ForUpdate) = %v, %q, %v", idsOf(p.Items), p.Next, err)
			}
			if _, err := v.users.Count(ctx, lock); !errors.Is(err, repo.ErrInvalidClause) {
				t.Errorf("Count(ForUpdate) = %v, want ErrInvalidClause", err)
			}
			return nil
		}), nil)
	})
}
