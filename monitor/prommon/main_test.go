package prommon_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
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

// sample finds the series of family name whose labels include want.
func sample(tb testing.TB, reg prometheus.Gatherer, name string, want map[string]string) *dto.Metric {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// queryString returns the one string query returns.
func queryString(tb testing.TB, e *dbfx.Engine, query string) string {
	tb.Helper()
	var s string
	if err := e.DB().GetContext(testContext(tb), &s, query); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return s
}

// opCount is the histogram's count for engine, db_operation_name and
// error_type ("" for the statements that succeeded).
func opCount(tb testing.TB, reg prometheus.Gatherer, engine, op, errType string) uint64 {
	tb.Helper()
	m := sample(tb, reg, "db_client_operation_duration_seconds",
		map[string]string{"engine": engine, "db_operation_name": op, "error_type": errType})
	return m.GetHistogram().GetSampleCount()
}

// counter is the value of a counter or gauge series (0 when absent).
func counter(tb testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	tb.Helper()
	m := sample(tb, reg, name, labels)
	if m == nil {
		return 0
	}
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

// recorder is a monitor that keeps every event.
type recorder struct {
	mu  sync.Mutex
	qs  []monitor.QueryEvent
	txs []monitor.TxEvent
}

func (r *recorder) Query(_ context.Context, e monitor.QueryEvent) {
	e.Args = nil
	r.mu.Lock()
	r.qs = append(r.qs, e)
	r.mu.Unlock()
}

func (r *recorder) Tx(_ context.Context, e monitor.TxEvent) {
	r.mu.Lock()
	r.txs = append(r.txs, e)
	r.mu.Unlock()
}

func (r *recorder) queries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.qs)
}

func (r *recorder) txEvents() []monitor.TxEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]monitor.TxEvent(nil), r.txs...)
}

var errAgain = errors.New("again, please")
