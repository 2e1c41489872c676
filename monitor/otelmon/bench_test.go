package otelmon_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/monitor/otelmon"
)

// BenchmarkPointRead is the cost of the OpenTelemetry monitor on a
// PostgreSQL point read by primary key: every span sampled into an
// exporter that discards it, the duration recorded on a meter with a
// reader, against an engine with no monitor. monitor=otel hands the spans
// to the SDK's batch processor, as a service does; monitor=otel-sync to a
// synchronous one, which leaves out the batch processor's goroutine (the
// SDK wakes it for each span ended); monitor=otel-batcher to otelmon's
// Batcher, which wakes its goroutine once per batch. Besides the time,
// cpu-ns/op is the CPU the test process used per read (user and system,
// every goroutine's: the batch processor's and the GC's too), which the
// machine's other work changes less. Compare them with benchstat:
//
//	go test -run '^$' -bench 'PointRead$' -count 10 ./monitor/otelmon/ > bench.txt
//	benchstat -col /monitor bench.txt
func BenchmarkPointRead(b *testing.B) {
	cfg, plain := benchDB(b)
	for _, v := range []struct {
		name string
		e    *dbfx.Engine
	}{
		{"none", plain},
		{"otel", openEngine(b, cfg, dbfx.WithMonitor(benchMonitor(b, sdkBatch)))},
		{"otel-sync", openEngine(b, cfg, dbfx.WithMonitor(benchMonitor(b, sdkSync)))},
		{"otel-batcher", openEngine(b, cfg, dbfx.WithMonitor(benchMonitor(b, batcher)))},
	} {
		b.Run("monitor="+v.name, func(b *testing.B) {
			db := v.e.DB()
			q := db.Rebind("SELECT v FROM bench WHERE id = ?")
			ctx := context.Background()
			var s string
			b.ReportAllocs()
			i := 0
			cpu := processCPU()
			for b.Loop() {
				i++
				if err := db.QueryRowContext(ctx, q, i%100+1).Scan(&s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(max(i, 1)), "cpu-ns/op")
		})
	}
}

// BenchmarkPointReadPaired alternates, read by read, between the engine
// with no monitor and the one with the OpenTelemetry monitor, so that both
// meet the same load from whatever else runs on the machine, and reports
// each one's time per read and their ratio (otel/none).
//
//	go test -run '^$' -bench PointReadPaired -count 10 ./monitor/otelmon/ > paired.txt
//	benchstat paired.txt
func BenchmarkPointReadPaired(b *testing.B) {
	cfg, plain := benchDB(b)
	traced := openEngine(b, cfg, dbfx.WithMonitor(benchMonitor(b, sdkBatch)))
	dbs := [2]*sqlx.DB{plain.DB(), traced.DB()}
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
	b.ReportMetric(float64(spent[1].Nanoseconds())/half, "ns/read-otel")
	b.ReportMetric(float64(spent[1])/float64(max(spent[0], 1)), "otel/none")
}

// BenchmarkMonitorAlone is the monitor's own work for one statement,
// without a database: QueryStart and Query with every span sampled, for
// each span processor (cpu-ns/op: the process's CPU per statement, the
// batch processor's included).
func BenchmarkMonitorAlone(b *testing.B) {
	for _, p := range []processor{sdkBatch, sdkSync, batcher} {
		b.Run("processor="+p.String(), func(b *testing.B) {
			mon := benchMonitor(b, p)
			defer mon.AddEngine(monitor.EngineInfo{DB: "primary", System: monitor.PostgreSQL, Namespace: "app",
				ServerAddress: "127.0.0.1", ServerPort: 5432})()
			const q = `SELECT "v" FROM "bench" WHERE "id" = $1`
			ctx := context.Background()
			b.ReportAllocs()
			n := 0
			cpu := processCPU()
			defer func() { b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(max(n, 1)), "cpu-ns/op") }()
			for b.Loop() {
				n++
				sctx := mon.QueryStart(ctx, monitor.QueryStart{DB: "primary", Op: monitor.OpQuery, SQL: q})
				mon.Query(sctx, monitor.QueryEvent{DB: "primary", Op: monitor.OpQuery, SQL: q, Duration: time.Millisecond, Rows: -1})
			}
		})
	}
}

// processor is the span processor of benchMonitor's tracer provider.
type processor int

const (
	sdkBatch processor = iota // the SDK's batch processor (sdktrace.WithBatcher)
	sdkSync                   // the SDK's synchronous one (sdktrace.WithSyncer)
	batcher                   // otelmon.NewBatcher
)

func (p processor) String() string {
	return [...]string{"sdk-batch", "sdk-sync", "batcher"}[p]
}

// benchMonitor is a monitor whose tracer provider samples every span
// into an exporter that discards them, through the processor p, and
// whose meter provider has a reader.
func benchMonitor(b *testing.B, p processor) *otelmon.Monitor {
	var proc sdktrace.TracerProviderOption
	switch p {
	case sdkBatch:
		proc = sdktrace.WithBatcher(tracetest.NewNoopExporter())
	case sdkSync:
		proc = sdktrace.WithSyncer(tracetest.NewNoopExporter())
	case batcher:
		proc = sdktrace.WithSpanProcessor(otelmon.NewBatcher(tracetest.NewNoopExporter()))
	}
	tp := sdktrace.NewTracerProvider(proc, sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	mon, err := otelmon.New(otelmon.WithTracerProvider(tp), otelmon.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	return mon
}

// benchDB is a PostgreSQL database with a table bench of 100 rows, and
// an engine on it with no monitor.
func benchDB(b *testing.B) (dbfx.Config, *dbfx.Engine) {
	cfg := fxtest.Postgres(b)
	plain := openEngine(b, cfg)
	mustExec(b, plain, "CREATE TABLE bench (id INTEGER PRIMARY KEY, v VARCHAR(32) NOT NULL)")
	for i := 1; i <= 100; i++ {
		mustExec(b, plain, "INSERT INTO bench (id, v) VALUES (?, 'value')", i)
	}
	return cfg, plain
}
