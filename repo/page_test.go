package repo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

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
		byAge := []repo.Clause{repo.OrderBy("age", false)}
		first, err := v.users.Page(ctx, repo.PageRequest{Limit: 2}, byAge...)
		wantErrIs(t, "Page", err, nil)
		if first.Next == "" {
			t.Fatal("no next page")
		}
		if _, err := v.users.Page(ctx, repo.PageRequest{Limit: 2, After: first.Next}, byAge...); err != nil {
			t.Fatalf("the cursor itself: %v", err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(first.Next)
		wantErrIs(t, "the cursor is base64url", err, nil)
		enc := base64.RawURLEncoding.EncodeToString
		forge := func(payload string) string {
			t.Helper()
			c, err := v.users.ForgeCursor(nil, payload, byAge...)
			wantErrIs(t, "ForgeCursor", err, nil)
			return c
		}
		tests := []struct {
			name  string
			after string
			give  []repo.Clause
		}{
			{"not base64", "!!!", byAge},
			{"standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(first.Next) + "+/", byAge},
			{"padded", first.Next + "=", byAge},
			{"a newline inside", first.Next[:5] + "\n" + first.Next[5:], byAge},
			{"truncated", first.Next[:len(first.Next)-1], byAge},
			{"one character more", first.Next + "A", byAge},
			{"too short", enc([]byte{1, 2, 3}), byAge},
			{"another version", enc(append([]byte{2}, raw[1:]...)), byAge},
			{"the format before tags", enc([]byte(`{"o":123,"k":[21,1]}`)), byAge},
			{"too long", strings.Repeat("A", repo.MaxCursorLen+1), byAge},
			{"another ordering", first.Next, nil},
			{"another direction", first.Next, []repo.Clause{repo.OrderBy("age", true)}},
			{"a key value edited", enc(bytes.Replace(raw, []byte("[2"), []byte("[9"), 1)), byAge},
			// Tagged as this package would tag them, so that the payload
			// is read: its checks hold too.
			{"not JSON", forge("{"), byAge},
			{"trailing data", forge(`[21,1]]`), byAge},
			{"an object", forge(`{"k":[21,1]}`), byAge},
			{"a value of the wrong type", forge(`["x",1]`), byAge},
			{"a null value", forge(`[21,null]`), byAge},
			{"a null value with spaces", forge(`[ null ,1]`), byAge},
			{"too few values", forge(`[21]`), byAge},
			{"too many values", forge(`[21,1,1]`), byAge},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := v.users.Page(ctx, repo.PageRequest{Limit: 2, After: tt.after}, tt.give...)
				wantErrIs(t, "Page", err, repo.ErrInvalidCursor)
			})
		}
		t.Run("every byte changed", func(t *testing.T) {
			for i := range raw {
				for _, x := range []byte{1, 0x80} {
					edited := slices.Clone(raw)
					edited[i] ^= x
					_, err := v.users.Page(ctx, repo.PageRequest{Limit: 2, After: enc(edited)}, byAge...)
					wantErrIs(t, fmt.Sprintf("Page after byte %d ^ %#x", i, x), err, repo.ErrInvalidCursor)
				}
			}
		})
		_, err = v.users.Page(ctx, repo.PageRequest{}, repo.Limit(3))
		wantErrIs(t, "Page with Limit", err, repo.ErrInvalidClause)
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// TestPageLimits pages with any int as the limit: none panics, a limit
// above the maximum is lowered to it, and zero or less is the default.
func TestPageLimits(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		const rows = repo.DefaultMaxPageLimit + 5
		us := make([]User, rows)
		for i := range us {
			us[i] = newUser(i + 1)
		}
		wantErrIs(t, "InsertMany", v.users.InsertMany(ctx, us), nil)
		max7, err := repo.New[User, int64](v.m, repo.MaxPageLimit(7))
		wantErrIs(t, "New with MaxPageLimit(7)", err, nil)
		max3, err := repo.New[User, int64](v.m, repo.MaxPageLimit(3))
		wantErrIs(t, "New with MaxPageLimit(3)", err, nil)
		maxInt, err := repo.New[User, int64](v.m, repo.MaxPageLimit(math.MaxInt))
		wantErrIs(t, "New with MaxPageLimit(MaxInt)", err, nil)
		for _, n := range []int{0, -1, math.MinInt} {
			if _, err := repo.New[User, int64](v.m, repo.MaxPageLimit(n)); err == nil {
				t.Fatalf("New with MaxPageLimit(%d) succeeded", n)
			}
		}
		type pager func(context.Context, repo.PageRequest, ...repo.Clause) (repo.Page[User], error)
		tests := []struct {
			name  string
			page  pager
			limit int
			want  int
		}{
			{"MaxInt", v.users.Page, math.MaxInt, repo.DefaultMaxPageLimit},
			{"MaxInt-1", v.users.Page, math.MaxInt - 1, repo.DefaultMaxPageLimit},
			{"MaxInt32", v.users.Page, math.MaxInt32, repo.DefaultMaxPageLimit},
			{"max+1", v.users.Page, repo.DefaultMaxPageLimit + 1, repo.DefaultMaxPageLimit},
			{"max", v.users.Page, repo.DefaultMaxPageLimit, repo.DefaultMaxPageLimit},
			{"1", v.users.Page, 1, 1},
			{"0", v.users.Page, 0, repo.DefaultPageLimit},
			{"-1", v.users.Page, -1, repo.DefaultPageLimit},
			{"MinInt", v.users.Page, math.MinInt, repo.DefaultPageLimit},
			{"MaxInt, max 7", max7.Page, math.MaxInt, 7},
			{"8, max 7", max7.Page, 8, 7},
			{"6, max 7", max7.Page, 6, 6},
			{"0, max 7", max7.Page, 0, 7},
			{"0, max 3", max3.Page, 0, 3},
			{"MinInt, max 3", max3.Page, math.MinInt, 3},
			{"MaxInt, max MaxInt", maxInt.Page, math.MaxInt, rows},
			{"0, max MaxInt", maxInt.Page, 0, repo.DefaultPageLimit},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := tt.page(ctx, repo.PageRequest{Limit: tt.limit})
				wantErrIs(t, "Page", err, nil)
				if len(p.Items) != tt.want {
					t.Fatalf("Limit %d gave %d rows, want %d", tt.limit, len(p.Items), tt.want)
				}
				if (p.Next != "") != (tt.want < rows) {
					t.Fatalf("Limit %d: next %q with %d of %d rows", tt.limit, p.Next, tt.want, rows)
				}
				if p.Next == "" {
					return
				}
				rest, err := tt.page(ctx, repo.PageRequest{Limit: tt.limit, After: p.Next})
				wantErrIs(t, "the next page", err, nil)
				if len(rest.Items) == 0 || rest.Items[0].ID != p.Items[len(p.Items)-1].ID+1 {
					t.Fatalf("the next page starts at %v after %d", idsOf(rest.Items[:min(1, len(rest.Items))]), p.Items[len(p.Items)-1].ID)
				}
			})
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// TestCursorIsBoundToItsQuery takes the cursor of each query to every
// other one: only the query that made it (the same conditions, values and
// ordering, however its values are typed) takes it.
func TestCursorIsBoundToItsQuery(t *testing.T) {
	queries := []struct {
		name string
		q    []repo.Clause
		same string // the name of an equal query
	}{
		{name: "everything"},
		{name: "age > 20", q: []repo.Clause{repo.Where(repo.Gt("age", 20))}},
		{name: "age > 20 as int64", q: []repo.Clause{repo.Where(repo.Gt("age", int64(20)))}, same: "age > 20"},
		{name: "age > 20 as *int", q: []repo.Clause{repo.Where(repo.Gt("age", ptr(20)))}, same: "age > 20"},
		{name: "age > 21", q: []repo.Clause{repo.Where(repo.Gt("age", 21))}},
		{name: "age >= 20", q: []repo.Clause{repo.Where(repo.Gte("age", 20))}},
		{name: "age > 20 twice", q: []repo.Clause{repo.Where(repo.Gt("age", 20)), repo.Where(repo.Gt("age", 20))}},
		{name: "age > 20 and id < 100", q: []repo.Clause{repo.Where(repo.Gt("age", 20)), repo.Where(repo.Lt("id", 100))}},
		{name: "age > 20, by age", q: []repo.Clause{repo.Where(repo.Gt("age", 20)), repo.OrderBy("age", false)}},
		{name: "age > 20, by age desc", q: []repo.Clause{repo.Where(repo.Gt("age", 20)), repo.OrderBy("age", true)}},
		{name: "by age", q: []repo.Clause{repo.OrderBy("age", false)}},
		{name: "by age, id", q: []repo.Clause{repo.OrderBy("age", false), repo.OrderBy("id", false)}, same: "by age"},
		{name: "by email", q: []repo.Clause{repo.OrderBy("email", false)}},
		{name: "id in 1..9", q: []repo.Clause{repo.Where(repo.In("id", 1, 2, 3, 4, 5, 6, 7, 8, 9))}},
		{name: "id in 1..8", q: []repo.Clause{repo.Where(repo.In("id", 1, 2, 3, 4, 5, 6, 7, 8))}},
		{name: "id in 1..9 as a slice", q: []repo.Clause{repo.Where(repo.In("id", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}))}, same: "id in 1..9"},
		{name: "email contains user", q: []repo.Clause{repo.Where(repo.Contains("email", "user"))}},
		{name: "email contains user0", q: []repo.Clause{repo.Where(repo.Contains("email", "user0"))}},
		{name: "email like %user%", q: []repo.Clause{repo.Where(repo.Like("email", "%user%"))}},
		{name: "nick is null", q: []repo.Clause{repo.Where(repo.IsNull("nick"))}},
		{name: "nick = nil", q: []repo.Clause{repo.Where(repo.Eq("nick", nil))}, same: "nick is null"},
		{name: "name = user 1 or age > 20", q: []repo.Clause{repo.Where(repo.Or(repo.Eq("name", "user 1"), repo.Gt("age", 20)))}},
		{name: "created before", q: []repo.Clause{repo.Where(repo.Lt("created_at", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)))}},
		{name: "created before, 1ns later", q: []repo.Clause{repo.Where(repo.Lt("created_at", time.Date(2100, 1, 1, 0, 0, 0, 1, time.UTC)))}},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		seedUsers(t, v, 10)
		canon := func(i int) string {
			if queries[i].same != "" {
				return queries[i].same
			}
			return queries[i].name
		}
		cursors := make([]string, len(queries))
		for i, q := range queries {
			p, err := v.users.Page(ctx, repo.PageRequest{Limit: 2}, q.q...)
			wantErrIs(t, q.name, err, nil)
			if p.Next == "" {
				t.Fatalf("%s: one page only", q.name)
			}
			cursors[i] = p.Next
		}
		for i, a := range queries {
			for j, b := range queries {
				_, err := v.users.Page(ctx, repo.PageRequest{Limit: 2, After: cursors[i]}, b.q...)
				if canon(i) == canon(j) {
					wantErrIs(t, fmt.Sprintf("the cursor of %q with %q", a.name, b.name), err, nil)
				} else {
					wantErrIs(t, fmt.Sprintf("the cursor of %q with %q", a.name, b.name), err, repo.ErrInvalidCursor)
				}
			}
		}
		// Another table with the same key type and ordering.
		settings, err := repo.New[Setting, string](v.m)
		wantErrIs(t, "New", err, nil)
		for _, k := range []string{"a", "b", "c"} {
			wantErrIs(t, "Insert", settings.Insert(ctx, &Setting{Key: k, Value: k}), nil)
		}
		sp, err := settings.Page(ctx, repo.PageRequest{Limit: 1})
		wantErrIs(t, "settings.Page", err, nil)
		_, err = v.users.Page(ctx, repo.PageRequest{Limit: 1, After: sp.Next})
		wantErrIs(t, "a settings cursor for users", err, repo.ErrInvalidCursor)
		_, err = settings.Page(ctx, repo.PageRequest{Limit: 1, After: cursors[0]})
		wantErrIs(t, "a users cursor for settings", err, repo.ErrInvalidCursor)
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// TestForgedCursorStaysInItsQuery makes, as a client could, an unsigned
// cursor with values of its choosing: it chooses where the page starts,
// never which rows the conditions select. A signed repository refuses it.
func TestForgedCursorStaysInItsQuery(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		seedUsers(t, v, 10)
		adults := []repo.Clause{repo.Where(repo.Gt("age", 22))} // ids 3, 4, 8, 9
		forged, err := v.users.ForgeCursor(nil, `[-1000]`, adults...)
		wantErrIs(t, "ForgeCursor", err, nil)
		p, err := v.users.Page(ctx, repo.PageRequest{Limit: 100, After: forged}, adults...)
		wantErrIs(t, "Page after a forged cursor", err, nil)
		if got := idsOf(p.Items); !slices.Equal(got, []int64{3, 4, 8, 9}) {
			t.Fatalf("a forged cursor gave %v, want the rows of the query only", got)
		}
		forged, err = v.users.ForgeCursor(nil, `[4]`, adults...)
		wantErrIs(t, "ForgeCursor", err, nil)
		p, err = v.users.Page(ctx, repo.PageRequest{Limit: 100, After: forged}, adults...)
		wantErrIs(t, "Page after a forged cursor", err, nil)
		if got := idsOf(p.Items); !slices.Equal(got, []int64{8, 9}) {
			t.Fatalf("a forged cursor at 4 gave %v", got)
		}
		signed, err := repo.New[User, int64](v.m, repo.SignCursors(testKey(1)))
		wantErrIs(t, "New", err, nil)
		_, err = signed.Page(ctx, repo.PageRequest{Limit: 100, After: forged}, adults...)
		wantErrIs(t, "a signed repository, a forged cursor", err, repo.ErrInvalidCursor)
		fxtest.RequireNoLeaks(t, v.e)
	})
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestSignCursors: a signed cursor is taken by the repositories with its
// key (as the key or a previous one) and refused by all others.
func TestSignCursors(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		seedUsers(t, v, 10)
		k1, k2 := testKey(1), testKey(2)
		newRepo := func(opts ...repo.Option) *repo.Repository[User, int64] {
			r, err := repo.New[User, int64](v.m, opts...)
			wantErrIs(t, "New", err, nil)
			return r
		}
		key := slices.Clone(k1)
		repos := map[string]*repo.Repository[User, int64]{
			"unsigned":      v.users,
			"k1":            newRepo(repo.SignCursors(key)),
			"k2":            newRepo(repo.SignCursors(k2)),
			"k2, before k1": newRepo(repo.SignCursors(k2, k1)),
			"k1 again":      newRepo(repo.SignCursors(k1), repo.MaxPageLimit(10)),
		}
		clear(key) // the repository keeps a copy
		accepts := map[string][]string{
			"unsigned":      {"unsigned"},
			"k1":            {"k1", "k2, before k1", "k1 again"},
			"k2":            {"k2", "k2, before k1"},
			"k2, before k1": {"k2", "k2, before k1"},
			"k1 again":      {"k1", "k2, before k1", "k1 again"},
		}
		q := []repo.Clause{repo.Where(repo.Gt("age", 21)), repo.OrderBy("name", true)}
		for from, rf := range repos {
			p, err := rf.Page(ctx, repo.PageRequest{Limit: 2}, q...)
			wantErrIs(t, from, err, nil)
			for to, rt := range repos {
				next, err := rt.Page(ctx, repo.PageRequest{Limit: 2, After: p.Next}, q...)
				if slices.Contains(accepts[from], to) {
					wantErrIs(t, "a cursor of "+from+" with "+to, err, nil)
					if len(next.Items) != 2 || next.Items[0].Name >= p.Items[1].Name {
						t.Fatalf("a cursor of %s with %s: %v after %v", from, to, next.Items, p.Items)
					}
				} else {
					wantErrIs(t, "a cursor of "+from+" with "+to, err, repo.ErrInvalidCursor)
				}
				_, err = rt.Page(ctx, repo.PageRequest{Limit: 2, After: p.Next}, repo.Where(repo.Gt("age", 22)), repo.OrderBy("name", true))
				wantErrIs(t, "a cursor of "+from+" with "+to+" and another value", err, repo.ErrInvalidCursor)
			}
		}
		for _, k := range [][]byte{nil, {}, []byte("short key"), make([]byte, 15)} {
			if _, err := repo.New[User, int64](v.m, repo.SignCursors(k)); err == nil {
				t.Fatalf("New with a key of %d bytes succeeded", len(k))
			}
			if _, err := repo.New[User, int64](v.m, repo.SignCursors(k1, k)); err == nil {
				t.Fatalf("New with a previous key of %d bytes succeeded", len(k))
			}
		}
		if _, err := repo.New[User, int64](v.m, repo.SignCursors(make([]byte, 16))); err != nil {
			t.Fatalf("New with a 16-byte key: %v", err)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}
