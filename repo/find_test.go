package repo_test

import (
	"slices"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// seedUsers inserts users 1..n (keys 1..n, ages 20+i%5, nick set for
// even i) and returns them.
func seedUsers(t *testing.T, v *env, n int) []User {
	t.Helper()
	us := make([]User, n)
	for i := range us {
		us[i] = newUser(i + 1)
		us[i].Age = 20 + (i+1)%5
		if (i+1)%2 == 0 {
			us[i].Nick = ptr("n" + us[i].Name)
		}
	}
	wantErrIs(t, "InsertMany", v.users.InsertMany(testContext(t), us), nil)
	for i, u := range us {
		if u.ID != int64(i+1) {
			t.Fatalf("user %d got key %d: the tests below assume keys 1..%d", i+1, u.ID, n)
		}
	}
	return us
}

func TestFind(t *testing.T) {
	tests := []struct {
		name string
		give []repo.Clause
		want []int64
	}{
		{name: "no clause", want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "Eq", give: []repo.Clause{repo.Where(repo.Eq("age", 21))}, want: []int64{1, 6}},
		{name: "Eq nil is IS NULL", give: []repo.Clause{repo.Where(repo.Eq("nick", nil))}, want: []int64{1, 3, 5, 7, 9}},
		{name: "Ne", give: []repo.Clause{repo.Where(repo.Ne("age", 21)), repo.Limit(3)}, want: []int64{2, 3, 4}},
		{name: "Ne nil is IS NOT NULL", give: []repo.Clause{repo.Where(repo.Ne("nick", nil))}, want: []int64{2, 4, 6, 8, 10}},
		{name: "Gt", give: []repo.Clause{repo.Where(repo.Gt("id", 8))}, want: []int64{9, 10}},
		{name: "Gte", give: []repo.Clause{repo.Where(repo.Gte("id", 8))}, want: []int64{8, 9, 10}},
		{name: "Lt", give: []repo.Clause{repo.Where(repo.Lt("id", 3))}, want: []int64{1, 2}},
		{name: "Lte", give: []repo.Clause{repo.Where(repo.Lte("id", 3))}, want: []int64{1, 2, 3}},
		{name: "Like", give: []repo.Clause{repo.Where(repo.Like("email", "%1%@%"))}, want: []int64{1, 10}},
		{name: "In", give: []repo.Clause{repo.Where(repo.In("id", 3, 5, 99))}, want: []int64{3, 5}},
		{name: "In a slice", give: []repo.Clause{repo.Where(repo.In("id", []int64{3, 5, 99}))}, want: []int64{3, 5}},
		{name: "In an empty slice", give: []repo.Clause{repo.Where(repo.In("id", []int{}))}, want: []int64{}},
		{name: "In nothing", give: []repo.Clause{repo.Where(repo.In("id"))}, want: []int64{}},
		{name: "IsNull", give: []repo.Clause{repo.Where(repo.IsNull("nick")), repo.Where(repo.Gt("id", 6))}, want: []int64{7, 9}},
		{name: "NotNull", give: []repo.Clause{repo.Where(repo.NotNull("nick")), repo.Limit(2)}, want: []int64{2, 4}},
		{name: "And", give: []repo.Clause{repo.Where(repo.And(repo.Gt("id", 2), repo.Lt("id", 5)))}, want: []int64{3, 4}},
		{name: "And of nothing holds", give: []repo.Clause{repo.Where(repo.And()), repo.Limit(1)}, want: []int64{1}},
		{name: "Or", give: []repo.Clause{repo.Where(repo.Or(repo.Eq("id", 2), repo.Eq("id", 9)))}, want: []int64{2, 9}},
		{name: "Or of nothing fails", give: []repo.Clause{repo.Where(repo.Or())}, want: []int64{}},
		{
			name: "nested",
			give: []repo.Clause{repo.Where(repo.Or(
				repo.And(repo.Eq("age", 20), repo.NotNull("nick")),
				repo.In("id", 1, 2)))},
			want: []int64{1, 2, 10},
		},
		{name: "OrderBy desc", give: []repo.Clause{repo.OrderBy("id", true), repo.Limit(3)}, want: []int64{10, 9, 8}},
		{
			name: "OrderBy with the key as tie-breaker",
			give: []repo.Clause{repo.OrderBy("age", true)},
			want: []int64{9, 4, 8, 3, 7, 2, 6, 1, 10, 5},
		},
		{name: "two OrderBy", give: []repo.Clause{repo.OrderBy("age", false), repo.OrderBy("id", true)}, want: []int64{10, 5, 6, 1, 7, 2, 8, 3, 9, 4}},
		{name: "Limit and Offset", give: []repo.Clause{repo.Limit(3), repo.Offset(4)}, want: []int64{5, 6, 7}},
		{name: "Offset alone", give: []repo.Clause{repo.Offset(8)}, want: []int64{9, 10}},
		{name: "Limit 0", give: []repo.Clause{repo.Limit(0)}, want: []int64{}},
		{name: "the last Limit wins", give: []repo.Clause{repo.Limit(1), repo.Limit(2)}, want: []int64{1, 2}},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		seedUsers(t, v, 10)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := testContext(t)
				got, err := v.users.Find(ctx, tt.give...)
				wantErrIs(t, "Find", err, nil)
				if ids := idsOf(got); !slices.Equal(ids, tt.want) {
					t.Fatalf("Find = %v, want %v", ids, tt.want)
				}
				n, err := v.users.Count(ctx, tt.give...)
				wantErrIs(t, "Count", err, nil)
				all, _ := v.users.Find(ctx, wheres(tt.give)...)
				if n != int64(len(all)) {
					t.Fatalf("Count = %d, want %d (ordering, limit and offset do not count)", n, len(all))
				}
				if limitOf(tt.give) >= 0 || offsetOf(tt.give) >= 0 {
					return // First takes one row, whatever Limit says
				}
				first, err := v.users.First(ctx, tt.give...)
				if len(tt.want) == 0 {
					wantErrIs(t, "First", err, repo.ErrNotFound)
				} else {
					wantErrIs(t, "First", err, nil)
					if first.ID != tt.want[0] {
						t.Fatalf("First = %d, want %d", first.ID, tt.want[0])
					}
				}
			})
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// wheres keeps the Where clauses of cs.
func wheres(cs []repo.Clause) []repo.Clause {
	var out []repo.Clause
	for _, c := range cs {
		if repo.IsWhere(c) {
			out = append(out, c)
		}
	}
	return out
}

func limitOf(cs []repo.Clause) int {
	n := -1
	for _, c := range cs {
		if l, ok := repo.LimitOf(c); ok {
			n = l
		}
	}
	return n
}

func offsetOf(cs []repo.Clause) int {
	n := -1
	for _, c := range cs {
		if o, ok := repo.OffsetOf(c); ok {
			n = o
		}
	}
	return n
}

func TestClauseErrors(t *testing.T) {
	tests := []struct {
		name string
		give []repo.Clause
		want error
	}{
		{"unknown column in a condition", []repo.Clause{repo.Where(repo.Eq("id; DROP TABLE users", 1))}, repo.ErrUnknownColumn},
		{"unknown column deep inside", []repo.Clause{repo.Where(repo.And(repo.Eq("id", 1), repo.Or(repo.IsNull(`"id"`))))}, repo.ErrUnknownColumn},
		{"unknown column in OrderBy", []repo.Clause{repo.OrderBy("ID", false)}, repo.ErrUnknownColumn},
		{"a Go field name is no column", []repo.Clause{repo.Where(repo.Eq("Email", "x"))}, repo.ErrUnknownColumn},
		{"the zero Cond", []repo.Clause{repo.Where(repo.Cond{})}, repo.ErrInvalidClause},
		{"the zero Clause", []repo.Clause{{}}, repo.ErrInvalidClause},
		{"a negative Limit", []repo.Clause{repo.Limit(-1)}, repo.ErrInvalidClause},
		{"a negative Offset", []repo.Clause{repo.Offset(-1)}, repo.ErrInvalidClause},
		{"too deep", []repo.Clause{repo.Where(deep(100))}, repo.ErrInvalidClause},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := testContext(t)
				_, err := v.users.Find(ctx, tt.give...)
				wantErrIs(t, "Find", err, tt.want)
				_, err = v.users.First(ctx, tt.give...)
				wantErrIs(t, "First", err, tt.want)
				_, err = v.users.Page(ctx, repo.PageRequest{}, tt.give...)
				if !(tt.want == repo.ErrInvalidClause && (limitOf(tt.give) != -1 || offsetOf(tt.give) != -1)) {
					wantErrIs(t, "Page", err, tt.want)
				}
			})
		}
		if n := countRows(t, v.e, "users"); n != 0 {
			t.Fatalf("the users table is not intact: %d rows", n)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// deep nests n And conditions.
func deep(n int) repo.Cond {
	c := repo.Eq("id", 1)
	for range n {
		c = repo.And(c)
	}
	return c
}
