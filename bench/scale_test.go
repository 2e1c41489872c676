package bench

import (
	"context"
	"database/sql"
	"errors"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/lib/pq"
)

// How cost grows. BenchmarkScale runs three curves per database and
// variant, each point a benchmark of its own:
//
//	op=Find/rows=N        Find of a group of N rows (10 ... 10,000); one
//	                      op reads scaleFindRows rows (scaleFindRows/N Finds)
//	op=Mixed/goroutines=G Mixed64's work (80% Get, 20% Update) on G
//	                      goroutines sharing the pool of poolConns; one op
//	                      is one call
//	op=Load/rows=N        a bulk load of N rows (1,000 or 100,000) into a
//	                      fresh database; one op loads scaleLoadRows rows
//	                      (scaleLoadRows/N loads)
//
// Each reports its cost per row (ns/row, allocs/row) or per call (ns/call,
// allocs/call), so that the points of a curve compare. They are meant for a
// fixed -benchtime=Nx (scale.sh): go test's calibration would spend minutes
// on the large points.
//
// The bulk loads: enginekit's Load (op=Load) and InsertMany (op=InsertMany)
// against the hand-written fastest form: COPY on PostgreSQL (lib/pq's
// CopyIn for sql, pgx's CopyFrom for pgx), multi-row INSERTs of
// scaleChunkRows rows in one transaction on MySQL and SQLite. None reads
// keys back but InsertMany.
var (
	scaleFindSizes = []int{10, 100, 1000, 10000}
	scaleWorkers   = []int{1, 8, 64, 256}
	scaleLoadSizes = []int{1000, 100000}
)

const (
	scaleFindRows  = 10000
	scaleLoadRows  = 100000
	scaleChunkRows = 1000
	scaleGroup     = 1000000 // Find's group of N rows is scaleGroup + N
	loadGroup      = -2      // grp of loaded rows
)

// scaleVariants are the variants of the curves: GORM is left out.
var scaleVariants = map[string]bool{"sqlx": true, "sql": true, "pgx": true, "enginekit": true, "enginekitpgx": true}

// loader is a variant's bulk load; enginekit's also has InsertMany.
type loader interface {
	load(ctx context.Context, rs []row) error
}

func BenchmarkScale(b *testing.B) {
	for _, driver := range []string{"sqlite3", "postgres", "mysql"} {
		b.Run("db="+driver, func(b *testing.B) {
			for _, impl := range variants {
				if !scaleVariants[impl.name] || (impl.only != "" && impl.only != driver) {
					continue
				}
				b.Run("impl="+impl.name, func(b *testing.B) {
					e := newScaleEnv(b, driver, impl.name, impl.open) // Find's and Mixed's
					for _, n := range scaleFindSizes {
						b.Run("op=Find/rows="+strconv.Itoa(n), func(b *testing.B) { scaleFind(b, e, n) })
					}
					for _, g := range scaleWorkers {
						b.Run("op=Mixed/goroutines="+strconv.Itoa(g), func(b *testing.B) {
							b.ReportAllocs()
							runMixed(b, e, g)
							b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
						})
					}
					for _, n := range scaleLoadSizes {
						if impl.name == "sqlx" { // sqlx has no bulk form: sql's is the baseline
							break
						}
						b.Run("op=Load/rows="+strconv.Itoa(n), func(b *testing.B) {
							scaleLoad(b, driver, impl.name, impl.open, n, false)
						})
					}
					if impl.name == "enginekit" || impl.name == "enginekitpgx" {
						for _, n := range scaleLoadSizes {
							b.Run("op=InsertMany/rows="+strconv.Itoa(n), func(b *testing.B) {
								scaleLoad(b, driver, impl.name, impl.open, n, true)
							})
						}
					}
				})
			}
		})
	}
}

// newScaleEnv is the suite's env with, beside the seeded rows, a group of
// each of Find's sizes.
func newScaleEnv(b *testing.B, driver, name string, open func(*testing.B, target) variant) *env {
	b.Helper()
	t := newTarget(b, driver)
	e := &env{name: name, check: openCheck(b, t),
		loadSQL: newStatements(driver).rebind("SELECT " + columns + " FROM bench_rows WHERE id BETWEEN ? AND ? ORDER BY id")}
	createSchema(b, e.check, driver)
	for id := int64(1); id <= seedRows; id++ {
		e.emails[id] = seedEmail(id)
	}
	q := newStatements(driver)
	stamped := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range scaleFindSizes {
		rs := newRows(n, "scale-"+strconv.Itoa(n)+"-", &e.seq)
		for i := range rs {
			rs[i].Grp, rs[i].Version, rs[i].Created, rs[i].Updated = int64(scaleGroup+n), 1, stamped, stamped
		}
		for c := rs; len(c) > 0; {
			k := min(len(c), scaleChunkRows)
			if _, err := e.check.Exec(q.insertValuesNoKeys(k), valuesOf(nil, c[:k])...); err != nil {
				b.Fatal(err)
			}
			c = c[k:]
		}
	}
	e.v = open(b, t)
	return e
}

// memAllocs is the number of heap allocations so far.
func memAllocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// perRow reports the cost of the b.N ops of rows rows each.
func perRow(b *testing.B, rows int, allocs uint64) {
	total := float64(b.N) * float64(rows)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/row")
	b.ReportMetric(float64(allocs)/total, "allocs/row")
}

func scaleFind(b *testing.B, e *env, n int) {
	ctx := context.Background()
	grp := int64(scaleGroup + n)
	reps := scaleFindRows / n
	count := e.count(b)
	b.ReportAllocs()
	b.ResetTimer()
	a0 := memAllocs()
	for range b.N {
		for range reps {
			rs, err := e.v.find(ctx, grp)
			if err != nil {
				b.Fatal(err)
			}
			if len(rs) != n || rs[0].Grp != grp || rs[n-1].Grp != grp || rs[n-1].ID <= rs[0].ID {
				b.Fatalf("%s: group %d read as %d rows", e.name, grp, len(rs))
			}
		}
	}
	a1 := memAllocs()
	b.StopTimer()
	perRow(b, scaleFindRows, a1-a0)
	e.unchanged(b, count)
}

// scaleLoad loads scaleLoadRows rows, n at a time, into a fresh database:
// by the variant's load, or by InsertMany when insertMany is set.
func scaleLoad(b *testing.B, driver, name string, open func(*testing.B, target) variant, n int, insertMany bool) {
	ctx := context.Background()
	t := newTarget(b, driver)
	e := &env{name: name, check: openCheck(b, t)}
	createSchema(b, e.check, driver)
	v := open(b, t)
	load := v.(loader).load
	if insertMany {
		load = v.insertMany
	}
	count := e.count(b)
	var all [][]row
	for range b.N {
		rs := newRows(scaleLoadRows, name+"-load-", &e.seq)
		for i := range rs {
			rs[i].Grp = loadGroup
		}
		all = append(all, rs)
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	a0 := memAllocs()
	for i := range b.N {
		for c := all[i]; len(c) > 0; c = c[n:] {
			if err := load(ctx, c[:n]); err != nil {
				b.Fatal(err)
			}
		}
	}
	a1 := memAllocs()
	b.StopTimer()
	perRow(b, scaleLoadRows, a1-a0)
	if got, want := e.count(b), count+int64(b.N*scaleLoadRows); got != want {
		b.Fatalf("%s: %d rows after loading %d into %d", name, got, b.N*scaleLoadRows, count)
	}
	var stamped int64
	if err := e.check.QueryRow(newStatements(driver).rebind("SELECT COUNT(*) FROM bench_rows WHERE grp = ? AND version = 1 AND created_at = updated_at"),
		loadGroup).Scan(&stamped); err != nil {
		b.Fatal(err)
	}
	if stamped != int64(b.N*scaleLoadRows) {
		b.Fatalf("%s: %d loaded rows stamped, want %d", name, stamped, b.N*scaleLoadRows)
	}
}

// insertValuesNoKeys is a multi-row INSERT of n rows that reads no keys back.
func (s statements) insertValuesNoKeys(n int) string {
	s.returning = false
	return s.insertValues(n)
}

// stampLoad stamps rows as every variant's insert does.
func stampLoad(rs []row) {
	now := stamp()
	for i := range rs {
		rs[i].Version, rs[i].Created, rs[i].Updated = 1, now, now
	}
}

var loadColumns = []string{"grp", "email", "name", "score", "version", "created_at", "updated_at"}

// load is the hand-written bulk load: COPY on PostgreSQL (lib/pq's CopyIn
// in a transaction, or pgx's CopyFrom, one statement), else multi-row
// INSERTs of scaleChunkRows rows in one transaction.
func (v *sqlVariant) load(ctx context.Context, rs []row) error {
	stampLoad(rs)
	switch v.driver {
	case "pgx":
		conn, err := v.w.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			c, ok := dc.(*stdlib.Conn)
			if !ok {
				return errors.New("not a pgx connection")
			}
			n, err := c.Conn().CopyFrom(ctx, pgx.Identifier{"bench_rows"}, loadColumns, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
				r := &rs[i]
				return []any{r.Grp, r.Email, r.Name, r.Score, r.Version, r.Created, r.Updated}, nil
			}))
			if err == nil && n != int64(len(rs)) {
				err = errors.New("COPY added fewer rows")
			}
			return err
		})
	case "postgres":
		return v.inTx(ctx, func(tx *sql.Tx) error {
			st, err := tx.PrepareContext(ctx, pq.CopyIn("bench_rows", loadColumns...))
			if err != nil {
				return err
			}
			for i := range rs {
				r := &rs[i]
				if _, err := st.ExecContext(ctx, r.Grp, r.Email, r.Name, r.Score, r.Version, r.Created, r.Updated); err != nil {
					_ = st.Close()
					return err
				}
			}
			if _, err := st.ExecContext(ctx); err != nil {
				_ = st.Close()
				return err
			}
			return st.Close()
		})
	}
	return v.inTx(ctx, func(tx *sql.Tx) error {
		for c := rs; len(c) > 0; {
			k := min(len(c), scaleChunkRows)
			if _, err := tx.ExecContext(ctx, v.q.insertValuesNoKeys(k), valuesOf(make([]any, 0, 7*k), c[:k])...); err != nil {
				return err
			}
			c = c[k:]
		}
		return nil
	})
}

func (v *sqlVariant) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := v.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (v *sqlxVariant) load(ctx context.Context, rs []row) error {
	return (&sqlVariant{w: v.w.DB, r: v.r.DB, q: v.q, driver: v.w.DriverName()}).load(ctx, rs)
}

func (v *enginekitVariant) load(ctx context.Context, rs []row) error { return v.rows.Load(ctx, rs) }
