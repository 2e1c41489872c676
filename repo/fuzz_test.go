package repo_test

import (
	"context"
	"errors"
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
	"OFFSET": true, "COUNT": true,
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
	op := d.next() % 14
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
	default:
		return repo.And(d.cond(depth + 1))
	}
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
