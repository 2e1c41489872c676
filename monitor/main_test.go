package monitor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

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

// recorder is a monitor that keeps every event and passes leaks on.
type recorder struct {
	mu    sync.Mutex
	qs    []monitor.QueryEvent
	txs   []monitor.TxEvent
	leaks chan monitor.LeakEvent
}

func newRecorder() *recorder { return &recorder{leaks: make(chan monitor.LeakEvent, 64)} }

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

func (r *recorder) Leak(e monitor.LeakEvent) {
	select {
	case r.leaks <- e:
	default:
	}
}

var errAgain = errors.New("again, please")
