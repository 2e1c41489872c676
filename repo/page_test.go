package repo_test

import (
	"encoding/base64"
	"slices"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// pageAll pages through the users the clauses select, calling between
// after each page, and returns the keys in the order the pages gave them.
func pageAll(t *testing.T, v *env, limit int, between func(page int), q ...repo.Clause) []int64 {
	t.Helper()
	ctx := testContext(t)
	var ids []int64
	req := repo.PageRequest{Limit: limit}
	for page := 0; ; page++ {
		p, err := v.users.Page(ctx, req, q...)
		wantErrIs(t, "Page", err, nil)
		if len(p.Items) > limit || (p.Next != "" && len(p.Items) != limit) {
			t.Fatalf("page %d has %d rows (limit %d, next %q)", page, len(p.Items), limit, p.Next)
		}
		ids = append(ids, idsOf(p.Items)...)
		if p.Next == "" {
			return ids
		}
		if page > 1000 {
			t.Fatal("Page never ends")
		}
		if between != nil {
			between(page)
		}
		req.After = p.Next
	}
}

func TestPage(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		give  []repo.Clause
		want  []int64
	}{
		{name: "by key", limit: 3, want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "exact pages", limit: 5, want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "one page", limit: 50, want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "by key descending", limit: 4, give: []repo.Clause{repo.OrderBy("id", true)}, want: []int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{
			name: "by a column with ties", limit: 3,
			give: []repo.Clause{repo.OrderBy("age", true)},
			want: []int64{9, 4, 8, 3, 7, 2, 6, 1, 10, 5},
		},
		{
			name: "mixed directions", limit: 2,
			give: []repo.Clause{repo.OrderBy("age", false), repo.OrderBy("id", true)},
			want: []int64{10, 5, 6, 1, 7, 2, 8, 3, 9, 4},
		},
		{
			name: "by a string, filtered", limit: 2,
			give: []repo.Clause{repo.Where(repo.Gt("id", 3)), repo.OrderBy("email", true)},
			want: []int64{10, 9, 8, 7, 6, 5, 4},
		},
		{name: "by a time", limit: 4, give: []repo.Clause{repo.OrderBy("created_at", false)}, want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "nothing", limit: 4, give: []repo.Clause{repo.Where(repo.In("id"))}, want: nil},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		seedUsers(t, v, 10)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := pageAll(t, v, tt.limit, nil, tt.give...); !slices.Equal(got, tt.want) {
					t.Fatalf("pages gave %v, want %v", got, tt.want)
				}
			})
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// TestPageIsStableUnderConcurrentWrites inserts rows before and after the
// cursor and deletes seen rows between pages: every row that was there
// from the start and is not deleted comes exactly once.
func TestPageIsStableUnderConcurrentWrites(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		seedUsers(t, v, 30)
		extra := 1000
		got := pageAll(t, v, 4, func(page int) {
			// A row that sorts before the cursor (age 0) and one after it.
			for _, age := range []int{0, 99} {
				u := newUser(extra)
				u.Age = age
				extra++
				wantErrIs(t, "Insert", v.users.Insert(ctx, &u), nil)
			}
		}, repo.OrderBy("age", false))
		seen := map[int64]int{}
		for _, id := range got {
			seen[id]++
		}
		for id := int64(1); id <= 30; id++ {
			if seen[id] != 1 {
				t.Fatalf("original row %d came %d times; pages: %v", id, seen[id], got)
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("row %d came %d times", id, n)
			}
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func TestPageRefusesBadCursors(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		seedUsers(t, v, 5)
		first, err := v.users.Page(ctx, repo.PageRequest{Limit: 2}, repo.OrderBy("age", false))
		wantErrIs(t, "Page", err, nil)
		raw, err := base64.RawURLEncoding.DecodeString(first.Next)
		wantErrIs(t, "the cursor is base64", err, nil)
		flip := func(from, to string) string {
			s := []byte(raw)
			i := slices.Index(s, from[0])
			if i < 0 {
				t.Fatalf("cursor %s has no %q", raw, from)
			}
			s[i] = to[0]
			return base64.RawURLEncoding.EncodeToString(s)
		}
		tests := []struct {
			name  string
			after string
			give  []repo.Clause
		}{
			{"not base64", "!!!", []repo.Clause{repo.OrderBy("age", false)}},
			{"not JSON", base64.RawURLEncoding.EncodeToString([]byte("{")), []repo.Clause{repo.OrderBy("age", false)}},
			{"trailing data", base64.RawURLEncoding.EncodeToString(append(raw, '{')), []repo.Clause{repo.OrderBy("age", false)}},
			{"another ordering", first.Next, nil},
			{"another direction", first.Next, []repo.Clause{repo.OrderBy("age", true)}},
			{"a fingerprint changed", flip("o", "x"), []repo.Clause{repo.OrderBy("age", false)}},
			{"a value of the wrong type", base64.RawURLEncoding.EncodeToString([]byte(
				`{"o":` + fingerprintOf(t, raw) + `,"k":["x",1]}`)), []repo.Clause{repo.OrderBy("age", false)}},
			{"a null value", base64.RawURLEncoding.EncodeToString([]byte(
				`{"o":` + fingerprintOf(t, raw) + `,"k":[21,null]}`)), []repo.Clause{repo.OrderBy("age", false)}},
			{"too few values", base64.RawURLEncoding.EncodeToString([]byte(
				`{"o":` + fingerprintOf(t, raw) + `,"k":[21]}`)), []repo.Clause{repo.OrderBy("age", false)}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := v.users.Page(ctx, repo.PageRequest{Limit: 2, After: tt.after}, tt.give...)
				wantErrIs(t, "Page", err, repo.ErrInvalidCursor)
			})
		}
		_, err = v.users.Page(ctx, repo.PageRequest{}, repo.Limit(3))
		wantErrIs(t, "Page with Limit", err, repo.ErrInvalidClause)
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// fingerprintOf reads the ordering fingerprint out of a decoded cursor.
func fingerprintOf(t *testing.T, raw []byte) string {
	t.Helper()
	s := string(raw)
	i := len(`{"o":`)
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == i {
		t.Fatalf("cursor %s does not start with its fingerprint", s)
	}
	return s[i:j]
}
