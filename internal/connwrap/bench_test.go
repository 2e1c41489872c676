package connwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/connwrap"
)

// openEngine opens an engine on cfg with fxtest's drivers, closed when
// the benchmark ends.
func openEngine(tb testing.TB, cfg dbfx.Config, opts ...dbfx.Option) *dbfx.Engine {
	tb.Helper()
	e, err := dbfx.Open(testContext(tb), cfg, append([]dbfx.Option{fxtest.WithDrivers()}, opts...)...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return e
}

// benchTable makes a table of 100 rows for point reads.
func benchTable(b *testing.B, e *dbfx.Engine) {
	b.Helper()
	ctx := testContext(b)
	db := e.DB()
	if _, err := db.ExecContext(ctx, "CREATE TABLE bench (id INTEGER PRIMARY KEY, v VARCHAR(32) NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		if _, err := db.ExecContext(ctx, db.Rebind("INSERT INTO bench (id, v) VALUES (?, ?)"), i, fmt.Sprint("value ", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPointRead reads one row by primary key: on the driver bare
// (the connector dbfx opens, unwrapped), on an engine with no monitor (its
// pools wrapped all the same), and on one with a monitor that counts; each
// with a background ctx and with a ctx that has a deadline, made per read
// as a request's would be (the wrapper then watches the call, to cut its
// connection should the server not answer by the deadline).
//
//	go test -run '^$' -bench 'PointRead$' -benchmem -count=10 ./internal/connwrap/ | tee bench.txt
//	benchstat -col /monitor bench.txt
func BenchmarkPointRead(b *testing.B) {
	for _, d := range []struct {
		name string
		cfg  func(testing.TB) dbfx.Config
	}{{"sqlite3", fxtest.SQLite}, {"postgres", fxtest.Postgres}, {"mysql", fxtest.MySQL}} {
		b.Run("db="+d.name, func(b *testing.B) {
			cfg := d.cfg(b)
			plain := openEngine(b, cfg)
			benchTable(b, plain)
			watched := openEngine(b, cfg, dbfx.WithMonitor(&counter{}))
			bare := openBare(b, cfg)
			for _, deadline := range []bool{false, true} {
				name := "ctx=background"
				if deadline {
					name = "ctx=deadline"
				}
				b.Run(name, func(b *testing.B) {
					for _, v := range []struct {
						name string
						db   *sqlx.DB
					}{{"bare", bare}, {"none", plain.DB()}, {"counter", watched.DB()}} {
						b.Run("monitor="+v.name, func(b *testing.B) {
							q := v.db.Rebind("SELECT v FROM bench WHERE id = ?")
							var s string
							b.ReportAllocs()
							i := 0
							for b.Loop() {
								i++
								ctx, cancel := context.Background(), context.CancelFunc(func() {})
								if deadline {
									ctx, cancel = context.WithTimeout(ctx, time.Minute)
								}
								err := v.db.QueryRowContext(ctx, q, i%100+1).Scan(&s)
								cancel()
								if err != nil {
									b.Fatal(err)
								}
							}
						})
					}
				})
			}
		})
	}
}

// BenchmarkWrapperOverhead isolates the wrapper's own cost per point read
// on a driver that does nothing: bare, wrapped with no monitor, and
// wrapped with a monitor that counts (not Nop, so every statement is
// timed and reported).
//
//	go test -run '^$' -bench WrapperOverhead -benchmem -count=10 ./internal/connwrap/ | tee overhead.txt
//	benchstat -col /monitor overhead.txt
func BenchmarkWrapperOverhead(b *testing.B) {
	for _, v := range []struct {
		name string
		o    *connwrap.Options
	}{
		{"bare", nil},
		{"none", &connwrap.Options{DB: "fake", MaxLifetime: time.Hour}},
		{"counter", &connwrap.Options{DB: "fake", Monitor: &counter{}, MaxLifetime: time.Hour}},
	} {
		b.Run("monitor="+v.name, func(b *testing.B) {
			var c driver.Connector = &fakeConnector{log: &fakeLog{}, full: true, quiet: true}
			if v.o != nil {
				c = connwrap.Wrap(c, *v.o)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			ctx := context.Background()
			var n int
			b.ReportAllocs()
			for b.Loop() {
				if err := db.QueryRowContext(ctx, "query", 1).Scan(&n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPointReadPaired alternates, read by read, between an engine
// with no monitor and one with a monitor that counts on the same
// database, so both meet the same load from whatever else runs on the
// machine; it reports each one's time per read and their ratio.
//
//	go test -run '^$' -bench PointReadPaired -count=10 ./internal/connwrap/ | tee paired.txt
//	benchstat paired.txt
func BenchmarkPointReadPaired(b *testing.B) {
	for _, d := range []struct {
		name string
		cfg  func(testing.TB) dbfx.Config
	}{{"sqlite3", fxtest.SQLite}, {"postgres", fxtest.Postgres}, {"mysql", fxtest.MySQL}} {
		b.Run("db="+d.name, func(b *testing.B) {
			cfg := d.cfg(b)
			plain := openEngine(b, cfg)
			benchTable(b, plain)
			watched := openEngine(b, cfg, dbfx.WithMonitor(&counter{}))
			dbs := [2]*sqlx.DB{plain.DB(), watched.DB()}
			q := plain.DB().Rebind("SELECT v FROM bench WHERE id = ?")
			ctx := context.Background()
			var spent [2]time.Duration
			var s string
			i := 0
			for b.Loop() {
				i++
				k := i % 2
				begun := time.Now()
				if err := dbs[k].QueryRowContext(ctx, q, i%100+1).Scan(&s); err != nil {
					b.Fatal(err)
				}
				spent[k] += time.Since(begun)
			}
			half := float64(max(i/2, 1))
			b.ReportMetric(float64(spent[0].Nanoseconds())/half, "ns/read-none")
			b.ReportMetric(float64(spent[1].Nanoseconds())/half, "ns/read-counter")
			b.ReportMetric(float64(spent[1])/float64(max(spent[0], 1)), "counter/none")
		})
	}
}

// TestWrapperAllocatesNothingMore: a statement that succeeds outside a
// transaction allocates no more through the wrapper, with no monitor or
// with one (and a leak threshold), than on the bare driver, as the
// package promises; on a driver that does nothing, so that the driver's
// own allocations do not hide the wrapper's.
func TestWrapperAllocatesNothingMore(t *testing.T) {
	allocs := func(o *connwrap.Options) float64 {
		var c driver.Connector = &fakeConnector{log: &fakeLog{}, full: true, quiet: true}
		if o != nil {
			c = connwrap.Wrap(c, *o)
		}
		db := sql.OpenDB(c)
		defer db.Close()
		ctx := context.Background()
		var n int
		run := func() {
			if err := db.QueryRowContext(ctx, "query", 1).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "exec", 1); err != nil {
				t.Fatal(err)
			}
		}
		run() // the connection is opened here, not counted
		return testing.AllocsPerRun(200, run)
	}
	bare := allocs(nil)
	for _, v := range []struct {
		name string
		o    connwrap.Options
	}{
		{"none", connwrap.Options{DB: "fake", MaxLifetime: time.Hour}},
		{"counter", connwrap.Options{DB: "fake", Monitor: &counter{}, MaxLifetime: time.Hour, LeakThreshold: time.Hour, SlowQuery: time.Hour}},
	} {
		if got := allocs(&v.o); got > bare {
			t.Errorf("monitor=%s: %v allocations per query and exec, the bare driver %v", v.name, got, bare)
		}
	}
}
