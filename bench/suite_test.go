package bench

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"
)

// Mixed64's shape.
const (
	mixedWorkers = 64
	mixedWrites  = 5 // one operation in mixedWrites is an Update, the others Gets
)

// env is the database of one variant, seeded, with the variant open on it.
type env struct {
	name    string
	v       variant
	check   *sql.DB // a pool of its own, for the checks between runs
	loadSQL string  // rows by a range of ids
	emails  [seedRows + 1]string
	seq     int64 // last number used in an inserted row's email
}

func BenchmarkSuite(b *testing.B) {
	for _, driver := range []string{"sqlite3", "postgres", "mysql"} {
		b.Run("db="+driver, func(b *testing.B) {
			for _, impl := range variants {
				if impl.only != "" && impl.only != driver {
					continue
				}
				b.Run("impl="+impl.name, func(b *testing.B) {
					t := newTarget(b, driver)
					e := &env{name: impl.name, check: openCheck(b, t),
						loadSQL: newStatements(driver).rebind("SELECT " + columns + " FROM bench_rows WHERE id BETWEEN ? AND ? ORDER BY id")}
					createSchema(b, e.check, driver)
					for id := int64(1); id <= seedRows; id++ {
						e.emails[id] = seedEmail(id)
					}
					e.v = impl.open(b, t)
					for _, op := range ops {
						b.Run("op="+op.name, func(b *testing.B) {
							b.ReportAllocs()
							op.run(b, e)
						})
					}
				})
			}
		})
	}
}

// openCheck opens the pool that makes the schema and checks each run's
// work: one connection, on SQLite the writer's DSN (it sees every commit).
func openCheck(b *testing.B, t target) *sql.DB {
	b.Helper()
	db, err := sql.Open(t.driver, t.dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { _ = db.Close() })
	return db
}

var ops = []struct {
	name string
	run  func(b *testing.B, e *env)
}{
	{"Get", benchGet},
	{"Insert", benchInsert},
	{"InsertMany100", benchInsertMany},
	{"Find100", benchFind},
	{"Update", benchUpdate},
	{"Mixed64", benchMixed},
}

// count returns the rows of the table.
func (e *env) count(b *testing.B) int64 {
	b.Helper()
	var n int64
	if err := e.check.QueryRow("SELECT COUNT(*) FROM bench_rows").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// load reads rows by id, straight from the database.
func (e *env) load(b *testing.B, from, to int64) []row {
	b.Helper()
	rows, err := e.check.Query(e.loadSQL, from, to)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		out = append(out, row{})
		if err := scanRow(rows, &out[len(out)-1]); err != nil {
			b.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// unchanged fails b when the table no longer has n rows: a read wrote.
func (e *env) unchanged(b *testing.B, n int64) {
	b.Helper()
	if got := e.count(b); got != n {
		b.Fatalf("%s: %d rows after a read-only run, want %d", e.name, got, n)
	}
}

// checkSeeded fails b unless x is seeded row id.
func (e *env) checkSeeded(b *testing.B, x row, id int64) {
	if x.ID != id || x.Email != e.emails[id] || x.Grp != (id-1)%groups || x.Name != rowName || x.Version < 1 {
		b.Fatalf("%s: row %d read as %+v", e.name, id, x)
	}
}

func benchGet(b *testing.B, e *env) {
	ctx := context.Background()
	n := e.count(b)
	b.ResetTimer()
	for i := range b.N {
		id := int64(i%seedRows) + 1
		x, err := e.v.get(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		e.checkSeeded(b, x, id)
	}
	b.StopTimer()
	e.unchanged(b, n)
}

func benchInsert(b *testing.B, e *env) {
	ctx := context.Background()
	rs := newRows(b.N, e.name+"-one-", &e.seq)
	n := e.count(b)
	b.ResetTimer()
	for i := range rs {
		if err := e.v.insert(ctx, &rs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := e.count(b); got != n+int64(b.N) {
		b.Fatalf("%s: %d rows after %d inserts into %d", e.name, got, b.N, n)
	}
	e.checkInserted(b, rs)
}

// checkInserted fails b unless the keys of rs rise, one insert after the
// other, and the last rows read back as written.
func (e *env) checkInserted(b *testing.B, rs []row) {
	b.Helper()
	for i := range rs {
		if rs[i].ID <= 0 || (i > 0 && rs[i].ID <= rs[i-1].ID) {
			b.Fatalf("%s: row %d of %d got key %d", e.name, i, len(rs), rs[i].ID)
		}
	}
	tail := rs[max(0, len(rs)-batchRows):]
	got := e.load(b, tail[0].ID, tail[len(tail)-1].ID)
	if len(got) != len(tail) {
		b.Fatalf("%s: %d rows between keys %d and %d, want %d", e.name, len(got), tail[0].ID, tail[len(tail)-1].ID, len(tail))
	}
	for i, w := range tail {
		g := got[i]
		if g.ID != w.ID || g.Email != w.Email || g.Grp != w.Grp || g.Score != w.Score || g.Version != 1 ||
			!g.Created.Equal(w.Created) || !g.Updated.Equal(w.Updated) || w.Created.IsZero() {
			b.Fatalf("%s: inserted %+v, read back %+v", e.name, w, g)
		}
	}
}

func benchInsertMany(b *testing.B, e *env) {
	ctx := context.Background()
	rs := newRows(b.N*batchRows, e.name+"-many-", &e.seq)
	n := e.count(b)
	b.ResetTimer()
	for i := range b.N {
		if err := e.v.insertMany(ctx, rs[i*batchRows:(i+1)*batchRows]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got, want := e.count(b), n+int64(b.N*batchRows); got != want {
		b.Fatalf("%s: %d rows after %d batches of %d into %d", e.name, got, b.N, batchRows, n)
	}
	e.checkInserted(b, rs)
}

func benchFind(b *testing.B, e *env) {
	ctx := context.Background()
	n := e.count(b)
	b.ResetTimer()
	for i := range b.N {
		grp := int64(i % groups)
		rs, err := e.v.find(ctx, grp)
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) != perGroup {
			b.Fatalf("%s: group %d has %d rows, want %d", e.name, grp, len(rs), perGroup)
		}
		for j := range rs {
			if rs[j].Grp != grp || (j > 0 && rs[j].ID <= rs[j-1].ID) {
				b.Fatalf("%s: group %d, row %d: %+v", e.name, grp, j, rs[j])
			}
		}
	}
	b.StopTimer()
	e.unchanged(b, n)
}

func benchUpdate(b *testing.B, e *env) {
	ctx := context.Background()
	r := e.load(b, 1, 1)[0]
	v0 := r.Version
	b.ResetTimer()
	for i := range b.N {
		r.Score = float64(i) + 0.5
		if err := e.v.update(ctx, &r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	got := e.load(b, 1, 1)[0]
	want := v0 + int64(b.N)
	if got.Version != want || r.Version != want || got.Score != r.Score || !got.Updated.Equal(r.Updated) || got.Email != e.emails[1] {
		b.Fatalf("%s: after %d updates from version %d: the row is %+v, the caller holds %+v", e.name, b.N, v0, got, r)
	}
}

func benchMixed(b *testing.B, e *env) { runMixed(b, e, mixedWorkers) }

// runMixed runs b.N operations on workers goroutines: Gets of rows spread
// over the seeded rows and, one time in mixedWrites, an Update of one of
// the goroutine's own rows (ids w+1, w+1+workers, ...), so that versions
// never conflict.
func runMixed(b *testing.B, e *env, workers int) {
	ctx := context.Background()
	all := e.load(b, 1, seedRows)
	var before int64
	owned := make([][]row, workers)
	for i, r := range all {
		before += r.Version
		owned[i%workers] = append(owned[i%workers], r)
	}
	var next, reads, writes atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, k := owned[w], 0
			var nr, nw int64
			defer func() { reads.Add(nr); writes.Add(nw) }()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if i%mixedWrites == mixedWrites-1 {
					r := &mine[k%len(mine)]
					k++
					r.Score = float64(i)
					if err := e.v.update(ctx, r); err != nil {
						b.Errorf("%s: update %d: %v", e.name, r.ID, err)
						return
					}
					nw++
					continue
				}
				id := (i*7919)%seedRows + 1
				x, err := e.v.read(ctx, id)
				if err != nil || x.ID != id || x.Email != e.emails[id] {
					b.Errorf("%s: read %d: %+v, %v", e.name, id, x, err)
					return
				}
				nr++
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if b.Failed() {
		b.FailNow()
	}
	wantWrites := int64(b.N / mixedWrites)
	if reads.Load()+writes.Load() != int64(b.N) || writes.Load() != wantWrites {
		b.Fatalf("%s: %d reads and %d writes of %d operations, want %d writes", e.name, reads.Load(), writes.Load(), b.N, wantWrites)
	}
	var after int64
	for _, r := range e.load(b, 1, seedRows) {
		after += r.Version
	}
	if after-before != wantWrites {
		b.Fatalf("%s: versions rose by %d after %d updates", e.name, after-before, wantWrites)
	}
}
