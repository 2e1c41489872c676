package otelmon_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor/otelmon"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testContext ends when the test does, or after a minute.
func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// openEngine opens an engine on cfg, closed when the test ends.
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

// mustExec runs a statement on the engine's pool.
func mustExec(tb testing.TB, e *dbfx.Engine, query string, args ...any) {
	tb.Helper()
	if _, err := e.DB().ExecContext(testContext(tb), e.DB().Rebind(query), args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

// sdk is an OpenTelemetry SDK that keeps what it gets for the test.
type sdk struct {
	spans   *tracetest.InMemoryExporter
	reader  *sdkmetric.ManualReader
	tracers *sdktrace.TracerProvider
	meters  *sdkmetric.MeterProvider
}

func newSDK(tb testing.TB) *sdk {
	s := &sdk{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	s.tracers = sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.spans), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	s.meters = sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	tb.Cleanup(func() {
		_ = s.tracers.Shutdown(context.Background())
		_ = s.meters.Shutdown(context.Background())
	})
	return s
}

// monitor returns a monitor on s.
func (s *sdk) monitor(tb testing.TB, opts ...otelmon.Option) *otelmon.Monitor {
	tb.Helper()
	m, err := otelmon.New(append([]otelmon.Option{otelmon.WithTracerProvider(s.tracers), otelmon.WithMeterProvider(s.meters)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// metric collects the metrics and returns the one named name.
func (s *sdk) metric(tb testing.TB, name string) metricdata.Metrics {
	tb.Helper()
	var rm metricdata.ResourceMetrics
	if err := s.reader.Collect(context.Background(), &rm); err != nil {
		tb.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	tb.Fatalf("no metric %s", name)
	return metricdata.Metrics{}
}

// attrs is a set of attributes as strings, for comparisons.
func attrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// has reports whether got holds every attribute of want with its value
// ("" for an attribute that must be absent).
func has(got map[string]string, want map[string]string) bool {
	for k, v := range want {
		if gv, ok := got[k]; v == "" && ok || v != "" && gv != v {
			return false
		}
	}
	return true
}
