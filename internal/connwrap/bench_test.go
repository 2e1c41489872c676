package monitor_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
)

// BenchmarkPointRead reads one row by primary key: on the driver bare, on
// an engine with no monitor (its pools wrapped for the lifetime jitter
// alone, except SQLite's writer), and on one with the Prometheus monitor.
//
//	go test -run '^$' -bench PointRead -benchmem -count=10 ./monitor/ | tee bench.txt
//	benchstat -col /monitor bench.txt
func BenchmarkPointRead(b *testing.B) {
	for _, d := range []struct {
		name string
		cfg  func(testing.TB) dbfx.Config
	}{{"sqlite3", fxtest.SQLite}, {"postgres", fxtest.Postgres}, {"mysql", fxtest.MySQL}} {
		b.Run("db="+d.name, func(b *testing.B) {
			cfg := d.cfg(b)
			plain := openEngine(b, cfg)
			mustExec(b, plain, "CREATE TABLE bench (id INTEGER PRIMARY KEY, v VARCHAR(32) NOT NULL)")
			for i := 1; i <= 100; i++ {
				mustExec(b, plain, "INSERT INTO bench (id, v) VALUES (?, ?)", i, fmt.Sprint("value ", i))
			}
			prom, err := monitor.NewPrometheus(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			watched := openEngine(b, cfg, dbfx.WithMonitor(prom))
			bareCfg := cfg
			if cfg.Driver == "mysql" {
				bareCfg.DSN += "?parseTime=true&clientFoundRows=true"
			}
			bare := sqlx.NewDb(sql.OpenDB(baseConnector(b, bareCfg)), cfg.Driver)
			b.Cleanup(func() { bare.Close() })
			for _, v := range []struct {
				name string
				db   *sqlx.DB
			}{{"none", plain.DB()}, {"prometheus", watched.DB()}, {"bare", bare}} {
				b.Run("monitor="+v.name, func(b *testing.B) {
					ctx := context.Background()
					q := v.db.Rebind("SELECT v FROM bench WHERE id = ?")
					var s string
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						i++
						if err := v.db.QueryRowContext(ctx, q, i%100+1).Scan(&s); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkWrapperOverhead isolates the wrapper's own cost per point read
// on a driver that does nothing: bare, wrapped for the lifetime jitter
// alone, and wrapped with the Prometheus monitor.
func BenchmarkWrapperOverhead(b *testing.B) {
	prom, err := monitor.NewPrometheus(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		o    *monitor.ConnectorOptions
	}{
		{"bare", nil},
		{"lifetime", &monitor.ConnectorOptions{DB: "fake", MaxLifetime: time.Hour}},
		{"prometheus", &monitor.ConnectorOptions{DB: "fake", Monitor: prom, MaxLifetime: time.Hour}},
	} {
		b.Run("monitor="+v.name, func(b *testing.B) {
			var c driver.Connector = &fakeConnector{log: &fakeLog{}, full: true, quiet: true}
			if v.o != nil {
				c = monitor.WrapConnector(c, *v.o)
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
// with no monitor and one with the Prometheus monitor on the same
// database, so both meet the same load from whatever else runs on the
// machine; it reports each one's time per read and their ratio.
//
//	go test -run '^$' -bench PointReadPaired -count=10 ./monitor/ | tee paired.txt
//	benchstat paired.txt
func BenchmarkPointReadPaired(b *testing.B) {
	for _, d := range []struct {
		name string
		cfg  func(testing.TB) dbfx.Config
	}{{"sqlite3", fxtest.SQLite}, {"postgres", fxtest.Postgres}, {"mysql", fxtest.MySQL}} {
		b.Run("db="+d.name, func(b *testing.B) {
			cfg := d.cfg(b)
			plain := openEngine(b, cfg)
			mustExec(b, plain, "CREATE TABLE bench (id INTEGER PRIMARY KEY, v VARCHAR(32) NOT NULL)")
			for i := 1; i <= 100; i++ {
				mustExec(b, plain, "INSERT INTO bench (id, v) VALUES (?, ?)", i, fmt.Sprint("value ", i))
			}
			prom, err := monitor.NewPrometheus(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			watched := openEngine(b, cfg, dbfx.WithMonitor(prom))
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
			b.ReportMetric(float64(spent[1].Nanoseconds())/half, "ns/read-prometheus")
			b.ReportMetric(float64(spent[1])/float64(max(spent[0], 1)), "prometheus/none")
		})
	}
}
