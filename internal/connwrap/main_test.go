package connwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
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

// driverOf is the enginekit driver that cfg names.
func driverOf(tb testing.TB, cfg dbfx.Config) *drv.Driver {
	tb.Helper()
	for _, d := range fxtest.Drivers() {
		if d.Spec().Name == cfg.Driver {
			return d.Spec()
		}
	}
	tb.Fatalf("no driver %q", cfg.Driver)
	return nil
}

// dialectOf is the dialect of cfg's driver.
func dialectOf(tb testing.TB, cfg dbfx.Config) *dialect.Dialect {
	tb.Helper()
	return driverOf(tb, cfg).Dialect()
}

// baseConnector is the driver's own connector for cfg's writer, as dbfx
// opens it (with the parameters enginekit sets), unwrapped.
func baseConnector(tb testing.TB, cfg dbfx.Config) driver.Connector {
	tb.Helper()
	// The driver's log lines (connections killed on purpose) go nowhere.
	t, err := driverOf(tb, cfg).Resolve(cfg.DSN, drv.Options{Log: zap.NewNop()})
	if err != nil {
		tb.Fatalf("Resolve: %v", err)
	}
	c, err := t.Writer()
	if err != nil {
		tb.Fatalf("Writer: %v", err)
	}
	return c
}

// openDB opens a pool on c, closed when the test ends. SQLite's pool
// has one connection, as dbfx's writer.
func openDB(tb testing.TB, cfg dbfx.Config, c driver.Connector) *sqlx.DB {
	tb.Helper()
	db := sqlx.NewDb(sql.OpenDB(c), cfg.Driver)
	if cfg.Driver == "sqlite3" {
		db.SetMaxOpenConns(1)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// openBare opens a pool on cfg's driver, unwrapped.
func openBare(tb testing.TB, cfg dbfx.Config) *sqlx.DB {
	tb.Helper()
	return openDB(tb, cfg, baseConnector(tb, cfg))
}

// openWrapped opens a pool on cfg's driver wrapped per o (the driver's
// dialect unless o names one).
func openWrapped(tb testing.TB, cfg dbfx.Config, o connwrap.Options) (*sqlx.DB, *connwrap.Connector) {
	tb.Helper()
	if o.Dialect == nil {
		o.Dialect = dialectOf(tb, cfg)
	}
	w := connwrap.Wrap(baseConnector(tb, cfg), o)
	return openDB(tb, cfg, w), w
}

// recorder is a monitor that keeps the statements and pool events it is
// given and passes leaks on.
type recorder struct {
	mu    sync.Mutex
	qs    []monitor.QueryEvent
	pool  []monitor.PoolEvent
	leaks chan monitor.LeakEvent
}

var (
	_ monitor.PoolMonitor = (*recorder)(nil)
	_ monitor.LeakMonitor = (*recorder)(nil)
)

func newRecorder() *recorder { return &recorder{leaks: make(chan monitor.LeakEvent, 64)} }

func (r *recorder) Query(_ context.Context, e monitor.QueryEvent) {
	e.Args = nil // valid during the call only
	r.mu.Lock()
	r.qs = append(r.qs, e)
	r.mu.Unlock()
}

func (r *recorder) Tx(context.Context, monitor.TxEvent) {}

func (r *recorder) Pool(_ context.Context, e monitor.PoolEvent) {
	r.mu.Lock()
	r.pool = append(r.pool, e)
	r.mu.Unlock()
}

func (r *recorder) Leak(e monitor.LeakEvent) {
	select {
	case r.leaks <- e:
	default:
	}
}

func (r *recorder) queries() []monitor.QueryEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]monitor.QueryEvent(nil), r.qs...)
}

func (r *recorder) poolEvents() []monitor.PoolEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]monitor.PoolEvent(nil), r.pool...)
}

// counter is a monitor that counts what it is given, for benchmarks: it
// observes (it is not Nop) and keeps nothing.
type counter struct {
	queries, failed, txs, pool atomic.Int64
}

func (c *counter) Query(_ context.Context, e monitor.QueryEvent) {
	c.queries.Add(1)
	if e.Err != nil {
		c.failed.Add(1)
	}
}
func (c *counter) Tx(context.Context, monitor.TxEvent)     { c.txs.Add(1) }
func (c *counter) Pool(context.Context, monitor.PoolEvent) { c.pool.Add(1) }
