package repo_test

import (
	"context"
	"database/sql/driver"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// FuzzClauses builds conditions and orderings from arbitrary bytes, column
// names and values. A clause naming an unknown column must fail before any
// SQL exists; any other statement must hold nothing but known quoted
// columns, bound parameters and the builder's own keywords, and must run
// on SQLite without error.
//
//	go test -fuzz FuzzClauses -fuzztime 60s ./repo/
func FuzzClauses(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0}, "email", "x", "s", int64(1), 0.5)
	f.Add([]byte{2, 1, 11, 3, 1, 0, 1, 2, 1, 7, 2, 2, 1, 3, 5}, "id", "name", "%a%", int64(-3), 1.0)
	f.Add([]byte{3, 2, 3, 1, 4, 3, 7, 1, 8, 250, 2}, `id"; DROP TABLE users; --`, "ID", "'; --", int64(math.MaxInt64), math.Inf(1))
	f.Add([]byte{4, 1, 12, 3, 8, 9, 1, 10, 2, 3, 255, 4, 254}, "nick", " id", "\x00", int64(0), math.NaN())
	f.Add([]byte{1, 1, 8, 4, 0, 0, 1, 1, 2, 2, 3, 3}, "age", "version", "", int64(7), -1.5)

	e, err := dbfx.Open(testContext(f), fxtest.SQLite(f), fxtest.WithDrivers())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			f.Error(err)
		}
	})
	for _, ddl := range schema["sqlite3"] {
		exec(f, e, ddl)
	}
	users, err := repo.New[User, int64](e.Sessions())
	if err != nil {
		f.Fatal(err)
	}
	seed := []User{newUser(1), newUser(2), newUser(3)}
	seed[1].Nick = ptr("b")
	if err := users.InsertMany(testContext(f), seed); err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{`"users"`: true}
	for _, c := range []string{"id", "email", "name", "age", "nick", "version", "created_at", "updated_at"} {
		known[`"`+c+`"`] = true
	}

	f.Fuzz(func(t *testing.T, prog []byte, name1, name2, s string, n int64, fl float64) {
		d := &decoder{prog: prog, names: []string{name1, name2}, s: s, n: n, fl: fl}
		clauses := d.clauses()
		text, args, err := users.BuildFind(clauses...)
		switch {
		case d.unknown:
			if err == nil || text != "" {
				t.Fatalf("built %q from an unknown column", text)
			}
			if !errors.Is(err, repo.ErrUnknownColumn) && !errors.Is(err, repo.ErrInvalidClause) {
				t.Fatalf("unknown column: %v", err)
			}
			return
		case d.invalid:
			if !errors.Is(err, repo.ErrInvalidClause) {
				t.Fatalf("invalid clause: %v, want ErrInvalidClause", err)
			}
			return
		case err != nil:
			t.Fatalf("BuildFind: %v", err)
		}
		checkSQL(t, text, len(args), known)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := users.Find(ctx, clauses...); err != nil {
			t.Fatalf("Find %s %v: %v", text, args, err)
		}
		text, args, err = users.BuildCount(clauses...)
		if err != nil {
			t.Fatalf("BuildCount: %v", err)
		}
		checkSQL(t, text, len(args), known)
		if _, err := users.Count(ctx, clauses...); err != nil {
			t.Fatalf("Count %s %v: %v", text, args, err)
		}
		if d.limitOrOffset || d.nullableOrder {
			return
		}
		p, err := users.Page(ctx, repo.PageRequest{Limit: 1}, clauses...)
		if err != nil {
			t.Fatalf("Page: %v", err)
		}
		if p.Next != "" {
			if _, err := users.Page(ctx, repo.PageRequest{Limit: 1, After: p.Next}, clauses...); err != nil {
				t.Fatalf("Page after %q: %v", p.Next, err)
			}
		}
	})
}

// keywords are the only words the builder writes besides identifiers.
var keywords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "IS": true, "NOT": true,
	"NULL": true, "IN": true, "LIKE": true, "ORDER": true, "BY": true, "DESC": true, "LIMIT": true,
	"OFFSET": true, "COUNT": true, "ESCAPE": true,
}

// checkSQL tokenizes a statement: quoted identifiers must be known,
// placeholders must match the arguments, and nothing else may appear but
// keywords, numbers and operators.
func checkSQL(t *testing.T, text string, nargs int, known map[string]bool) {
	t.Helper()
	params := 0
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(text) {
				if text[j] == '"' {
					if j+1 < len(text) && text[j+1] == '"' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(text) {
				t.Fatalf("unterminated identifier in %q", text)
			}
			if id := text[i : j+1]; !known[id] {
				t.Fatalf("identifier %s in %q is no known column", id, text)
			}
			i = j + 1
		case c == '?':
			params++
			i++
		case c >= 'A' && c <= 'Z':
			j := i
			for j < len(text) && text[j] >= 'A' && text[j] <= 'Z' {
				j++
			}
			if !keywords[text[i:j]] {
				t.Fatalf("word %q in %q", text[i:j], text)
			}
			i = j
		case c >= '0' && c <= '9', c == '-':
			i++
		case strings.IndexByte(" (),=<>*", c) >= 0:
			i++
		case c == '\'' && strings.HasSuffix(text[:i], " ESCAPE ") && strings.HasPrefix(text[i:], "'!'"):
			i += 3
		default:
			t.Fatalf("character %q in %q", c, text)
		}
	}
	if params != nargs {
		t.Fatalf("%d placeholders, %d arguments in %q", params, nargs, text)
	}
}

// decoder turns fuzz bytes into clauses, noting whether they name an
// unknown column or are invalid in another way.
type decoder struct {
	prog  []byte
	names []string
	s     string
	n     int64
	fl    float64

	unknown, invalid, limitOrOffset bool
	nullableOrder                   bool // Page refuses to make a cursor from a NULL
}

var (
	fuzzColumns = []string{"id", "email", "name", "age", "nick", "version", "created_at", "updated_at"}
	fuzzTricky  = []string{`id"`, `"id"`, "ID", "", " id", "id ", "id;", "nick\x00", "users.id", "*", "1", "Email"}
)

func (d *decoder) next() byte {
	if len(d.prog) == 0 {
		return 0
	}
	b := d.prog[0]
	d.prog = d.prog[1:]
	return b
}

func (d *decoder) name() string {
	b := d.next()
	var name string
	switch {
	case b < 200:
		name = fuzzColumns[int(b)%len(fuzzColumns)]
	case b < 230:
		name = d.names[int(b)%2]
	default:
		name = fuzzTricky[int(b)%len(fuzzTricky)]
	}
	isKnown := false
	for _, c := range fuzzColumns {
		isKnown = isKnown || c == name
	}
	if !isKnown {
		d.unknown = true
	}
	return name
}

func (d *decoder) value() any {
	switch d.next() % 9 {
	case 0:
		return d.s
	case 1:
		return d.n
	case 2:
		return d.fl
	case 3:
		return nil
	case 4:
		return d.n%2 == 0
	case 5:
		return []byte(d.s)
	case 6:
		return time.Unix(d.n%(1<<34), 0).UTC()
	case 7:
		return int(int32(d.n))
	default:
		return ptr(d.s)
	}
}

func (d *decoder) cond(depth int) repo.Cond {
	if depth > 64 { // deeper than the builder allows
		d.invalid = true
	}
	if depth > 80 {
		return repo.Eq(d.name(), d.value())
	}
	op := d.next() % 17
	switch op {
	case 0:
		d.invalid = true
		return repo.Cond{}
	case 1:
		return repo.Eq(d.name(), d.value())
	case 2:
		return repo.Ne(d.name(), d.value())
	case 3:
		return repo.Gt(d.name(), d.value())
	case 4:
		return repo.Gte(d.name(), d.value())
	case 5:
		return repo.Lt(d.name(), d.value())
	case 6:
		return repo.Lte(d.name(), d.value())
	case 7:
		return repo.Like(d.name(), d.value())
	case 8:
		name := d.name()
		vs := make([]any, d.next()%5)
		for i := range vs {
			vs[i] = d.value()
		}
		return repo.In(name, vs...)
	case 9:
		return repo.IsNull(d.name())
	case 10:
		return repo.NotNull(d.name())
	case 11, 12:
		cs := make([]repo.Cond, d.next()%4)
		for i := range cs {
			cs[i] = d.cond(depth + 1)
		}
		if op == 11 {
			return repo.And(cs...)
		}
		return repo.Or(cs...)
	case 13:
		return repo.And(d.cond(depth + 1))
	case 14:
		return repo.Contains(d.name(), d.str())
	case 15:
		return repo.HasPrefix(d.name(), d.str())
	default:
		return repo.HasSuffix(d.name(), d.str())
	}
}

// likeStrings are strings searched for besides the fuzzer's own.
var likeStrings = []string{"%", "_", "!", "user", "@example", "", `\`, "'", "1%_!"}

// str is a string to search for with Contains, HasPrefix or HasSuffix.
func (d *decoder) str() string {
	if b := d.next(); b >= 128 {
		return likeStrings[int(b)%len(likeStrings)]
	}
	return d.s
}

func (d *decoder) clauses() []repo.Clause {
	cs := make([]repo.Clause, d.next()%6)
	for i := range cs {
		switch d.next() % 5 {
		case 0:
			d.invalid = true
			cs[i] = repo.Clause{}
		case 1:
			cs[i] = repo.Where(d.cond(0))
		case 2:
			name := d.name()
			d.nullableOrder = d.nullableOrder || name == "nick"
			cs[i] = repo.OrderBy(name, d.next()%2 == 1)
		case 3, 4:
			n := int(int8(d.next()))
			if n < 0 {
				d.invalid = true
			}
			d.limitOrOffset = true
			if i%2 == 0 {
				cs[i] = repo.Limit(n)
			} else {
				cs[i] = repo.Offset(n)
			}
		}
	}
	return cs
}

// FuzzPage pages with any PageRequest (any limit, any cursor string) and
// clauses built from fuzz bytes, through an unsigned repository, a signed
// one and one with a small maximum. Page never panics; a page never holds
// more rows than the limit allows; a cursor string that no repository
// made is ErrInvalidCursor; and a cursor made for query A is taken by
// query B only when B is A (the same SQL and values), by the repositories
// sharing A's key, and never once a bit of it is changed.
//
//	go test -run '^$' -fuzz FuzzPage -fuzztime 60s ./repo/
func FuzzPage(f *testing.F) {
	f.Add([]byte{}, []byte{}, 0, "", "user", "x", int64(1), uint(0))
	f.Add([]byte{1, 1, 3, 3, 1}, []byte{1, 1, 3, 3, 2}, 2, "", "age", "x", int64(21), uint(7))
	f.Add([]byte{2, 1, 4, 3, 1, 2, 1, 1}, []byte{2, 1, 4, 3, 1, 2, 1, 0}, math.MaxInt, "AQ", "name", "%", int64(20), uint(100))
	f.Add([]byte{1, 1, 14, 1, 200}, []byte{1, 1, 15, 1, 200}, -1, "eyJvIjoxLCJrIjpbMV19", "email", "user0", int64(0), uint(3))
	f.Add([]byte{2, 2, 3, 0, 1, 7, 2, 1}, []byte{2, 2, 3, 1, 1, 7, 2, 1}, math.MinInt, strings.Repeat("A", 5000), "nick", "_", int64(-1), uint(1<<20))
	f.Add([]byte{1, 1, 8, 0, 3, 1, 1, 1}, []byte{1, 1, 8, 0, 3, 1, 1, 1}, repo.DefaultMaxPageLimit+1, "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABbMjFd", "id", "", int64(3), uint(9))

	e, err := dbfx.Open(testContext(f), fxtest.SQLite(f), fxtest.WithDrivers())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			f.Error(err)
		}
	})
	for _, ddl := range schema["sqlite3"] {
		exec(f, e, ddl)
	}
	newRepo := func(opts ...repo.Option) *repo.Repository[User, int64] {
		r, err := repo.New[User, int64](e.Sessions(), opts...)
		if err != nil {
			f.Fatal(err)
		}
		return r
	}
	type pager struct {
		name     string
		r        *repo.Repository[User, int64]
		key      string // repositories with the same key take each other's cursors
		max, def int
	}
	pagers := []pager{
		{"unsigned", newRepo(), "", repo.DefaultMaxPageLimit, repo.DefaultPageLimit},
		{"signed", newRepo(repo.SignCursors([]byte("0123456789abcdef0123456789abcdef"))), "k", repo.DefaultMaxPageLimit, repo.DefaultPageLimit},
		{"max 3", newRepo(repo.MaxPageLimit(3)), "", 3, 3},
	}
	seed := make([]User, 12)
	for i := range seed {
		seed[i] = newUser(i + 1)
		seed[i].Age = 20 + i%4
		if i%3 == 0 {
			seed[i].Nick = ptr("n%_!" + seed[i].Name)
		}
	}
	if err := pagers[0].r.InsertMany(testContext(f), seed); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, progA, progB []byte, limit int, after, name, s string, n int64, flip uint) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		build := func(prog []byte) ([]repo.Clause, *decoder) {
			d := &decoder{prog: prog, names: []string{name, name}, s: s, n: n, fl: float64(n) / 3}
			return d.clauses(), d
		}
		qa, da := build(progA)
		bad := da.unknown || da.invalid || da.limitOrOffset
		for _, p := range pagers {
			pg, err := p.r.Page(ctx, repo.PageRequest{Limit: limit, After: after}, qa...)
			switch {
			case bad:
				if !errors.Is(err, repo.ErrUnknownColumn) && !errors.Is(err, repo.ErrInvalidClause) {
					t.Fatalf("%s: Page with bad clauses: %v", p.name, err)
				}
				continue
			case after != "":
				if !errors.Is(err, repo.ErrInvalidCursor) {
					t.Fatalf("%s: Page took the cursor %q: %v", p.name, after, err)
				}
				continue
			case err != nil && da.nullableOrder:
				continue // a NULL in an ordering column makes no cursor
			case err != nil:
				t.Fatalf("%s: Page: %v", p.name, err)
			}
			want := p.def
			if limit > 0 {
				want = min(limit, p.max)
			}
			if len(pg.Items) > want || (pg.Next != "" && len(pg.Items) != want) {
				t.Fatalf("%s: Limit %d gave %d rows, next %q (page size %d)", p.name, limit, len(pg.Items), pg.Next, want)
			}
		}
		if bad || da.nullableOrder {
			return
		}
		qb, db := build(progB)
		validB := !db.unknown && !db.invalid && !db.limitOrOffset
		same := validB && queryKey(t, pagers[0].r, qa) == queryKey(t, pagers[0].r, qb)
		for _, from := range pagers {
			first, err := from.r.Page(ctx, repo.PageRequest{Limit: 1}, qa...)
			if err != nil {
				t.Fatalf("%s: Page: %v", from.name, err)
			}
			if first.Next == "" {
				return // at most one row: no cursor
			}
			again, _ := build(progA) // values made anew (pointers, times)
			for _, to := range pagers {
				_, err := to.r.Page(ctx, repo.PageRequest{Limit: 1, After: first.Next}, again...)
				if to.key == from.key {
					if err != nil {
						t.Fatalf("a cursor of %s with %s and the same query: %v", from.name, to.name, err)
					}
				} else if !errors.Is(err, repo.ErrInvalidCursor) {
					t.Fatalf("a cursor of %s taken by %s: %v", from.name, to.name, err)
				}
				if validB {
					_, err = to.r.Page(ctx, repo.PageRequest{Limit: 1, After: first.Next}, qb...)
					switch {
					case same && to.key == from.key:
						if err != nil && !db.nullableOrder {
							t.Fatalf("a cursor with an equal query: %v", err)
						}
					case !errors.Is(err, repo.ErrInvalidCursor):
						t.Fatalf("a cursor of %s for query A taken by %s for query B: %v\nA: %s\nB: %s",
							from.name, to.name, err, queryKey(t, pagers[0].r, qa), queryKey(t, pagers[0].r, qb))
					}
				}
			}
			raw, err := base64.RawURLEncoding.DecodeString(first.Next)
			if err != nil {
				t.Fatalf("%s: a cursor not base64url: %q", from.name, first.Next)
			}
			if len(first.Next) > repo.MaxCursorLen {
				t.Fatalf("%s: a cursor of %d characters", from.name, len(first.Next))
			}
			bit := flip % uint(8*len(raw))
			raw[bit/8] ^= 1 << (bit % 8)
			_, err = from.r.Page(ctx, repo.PageRequest{Limit: 1, After: base64.RawURLEncoding.EncodeToString(raw)}, qa...)
			if !errors.Is(err, repo.ErrInvalidCursor) {
				t.Fatalf("%s: a cursor with bit %d flipped: %v", from.name, bit, err)
			}
		}
	})
}

// queryKey is what a query is to a cursor: its SQL and its values as the
// driver receives them.
func queryKey(t *testing.T, r *repo.Repository[User, int64], q []repo.Clause) string {
	t.Helper()
	text, args, err := r.BuildFind(q...)
	if err != nil {
		t.Fatalf("BuildFind: %v", err)
	}
	var b strings.Builder
	b.WriteString(text)
	for _, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			t.Fatalf("ConvertValue(%#v): %v", a, err)
		}
		fmt.Fprintf(&b, "\x00%T:%#v", v, v)
	}
	return b.String()
}
