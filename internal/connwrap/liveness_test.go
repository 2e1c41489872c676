package connwrap_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/internal/drv"
	"github.com/enginekit/enginekit/internal/netdial"
	"github.com/enginekit/enginekit/internal/testdb"
	"github.com/enginekit/enginekit/monitor"
)

// dialedPool opens a pool of n connections on cfg's server through the
// wrapper, on enginekit's dialer (the liveness check needs the socket),
// with the idle check given.
func dialedPool(tb testing.TB, cfg dbfx.Config, n int, idleCheck time.Duration, mon monitor.Monitor) (*sql.DB, *connwrap.Connector) {
	tb.Helper()
	d := driverOf(tb, cfg)
	t, err := d.Resolve(cfg.DSN, drv.Options{Log: zap.NewNop(), ConnectTimeout: 5 * time.Second,
		Dialer: &netdial.Dialer{Setup: 5 * time.Second, DeadPeer: 30 * time.Second}})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := t.Writer()
	if err != nil {
		tb.Fatal(err)
	}
	w := connwrap.Wrap(c, connwrap.Options{DB: "live", Dialect: d.SQL, IdleCheck: idleCheck, Monitor: mon})
	db := sql.OpenDB(w)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	tb.Cleanup(func() { db.Close() })
	return db, w
}

// warm opens n connections of db at once and gives them back: n idle
// connections.
func warm(tb testing.TB, db *sql.DB, n int) {
	tb.Helper()
	ctx := testContext(tb)
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			tb.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestDeadIdleConnectionsNeverReachCallers: after every connection of a
// pool was ended from the server's side (a restart, a failover,
// pg_terminate_backend, an idle timeout), no caller meets one: the check
// at checkout finds each dead and database/sql takes a new one. Each round
// kills the pool's connections, then runs 4 calls on a path database/sql
// takes connections by: the pool (which retries a bad connection itself),
// an explicit *sql.Conn (which does not: enginekit's acquire timeout takes
// this path) and a transaction (whose BEGIN is not retried either).
func TestDeadIdleConnectionsNeverReachCallers(t *testing.T) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(t)
		t.Run(cfg.Driver, func(t *testing.T) {
			const n = 4
			rec := &poolEvents{}
			db, w := dialedPool(t, cfg, n, time.Nanosecond, rec)
			admin, _ := dialedPool(t, cfg, 1, -1, nil)
			warm(t, admin, 1)
			paths := []struct {
				name string
				call func(ctx context.Context) error
			}{
				{"pool", func(ctx context.Context) error {
					var x int
					return db.QueryRowContext(ctx, "SELECT 1").Scan(&x)
				}},
				{"conn", func(ctx context.Context) error {
					c, err := db.Conn(ctx)
					if err != nil {
						return err
					}
					defer c.Close()
					_, err = c.ExecContext(ctx, "SELECT 1")
					return err
				}},
				{"tx", func(ctx context.Context) error {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
						tx.Rollback()
						return err
					}
					return tx.Commit()
				}},
			}
			for _, p := range paths {
				warm(t, db, n)
				testdb.KillConnections(t, cfg.Driver, admin)
				ctx := testContext(t)
				for i := range 4 {
					if err := p.call(ctx); err != nil {
						t.Errorf("%s: call %d met a dead connection: %v", p.name, i+1, err)
					}
				}
			}
			if got := w.Stats().Dead; got < int64(len(paths)) {
				t.Errorf("Stats().Dead = %d, want at least %d", got, len(paths))
			}
			if got := rec.count(monitor.PoolDeadConn); got != int(w.Stats().Dead) {
				t.Errorf("%d PoolDeadConn events for %d dead connections", got, w.Stats().Dead)
			}
		})
	}
}

// TestLostConnectionChecksTheOthers: a connection used a moment ago is
// not checked at checkout (the pool is busy, the check would cost), unless
// a connection was lost since it was last known alive: a restart kills
// them all at once, and the first loss seen gets the others checked.
func TestLostConnectionChecksTheOthers(t *testing.T) {
	cfg := fxtest.Postgres(t)
	db, w := dialedPool(t, cfg, 2, time.Hour, nil)
	admin, _ := dialedPool(t, cfg, 1, -1, nil)
	warm(t, admin, 1)
	warm(t, db, 2)
	testdb.KillConnections(t, cfg.Driver, admin)
	ctx := testContext(t)
	// Within the window nothing is checked: one call meets a dead
	// connection (database/sql retries a bad one on the pool, so pin it).
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ExecContext(ctx, "SELECT 1")
	c.Close()
	if err == nil {
		t.Fatal("the first call after the kill met no dead connection: the test proves nothing")
	}
	// The loss it met gets the other one checked at its checkout.
	c, err = db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Errorf("after a lost connection, the next call met another: %v", err)
	}
	if w.Stats().Dead < 1 {
		t.Errorf("Stats().Dead = %d, want at least 1", w.Stats().Dead)
	}
}

// TestLostAtBeginChecksTheOthers: a connection lost at BEGIN (where a
// transaction meets one a restart killed: lib/pq reads the server's
// goodbye there) gets the others checked at their checkout too, as one
// lost by a statement does: after a restart, one transaction fails, not
// one per connection.
func TestLostAtBeginChecksTheOthers(t *testing.T) {
	cfg := fxtest.Postgres(t)
	db, w := dialedPool(t, cfg, 2, time.Hour, nil)
	admin, _ := dialedPool(t, cfg, 1, -1, nil)
	warm(t, admin, 1)
	warm(t, db, 2)
	testdb.KillConnections(t, cfg.Driver, admin)
	ctx := testContext(t)
	// A transaction on an explicit connection, as a scope takes it:
	// database/sql retries a bad connection at BEGIN on the pool only.
	begin := func() error {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		return tx.Rollback()
	}
	if err := begin(); err == nil {
		t.Fatal("the first BEGIN after the kill met no dead connection: the test proves nothing")
	}
	if err := begin(); err != nil {
		t.Errorf("after a connection lost at BEGIN, the next BEGIN met another: %v", err)
	}
	if w.Stats().Dead < 1 {
		t.Errorf("Stats().Dead = %d, want at least 1", w.Stats().Dead)
	}
}

// poolEvents counts pool events by kind.
type poolEvents struct {
	mu sync.Mutex
	n  map[monitor.PoolKind]int
}

func (p *poolEvents) Query(context.Context, monitor.QueryEvent) {}
func (p *poolEvents) Tx(context.Context, monitor.TxEvent)       {}
func (p *poolEvents) Pool(_ context.Context, e monitor.PoolEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n = map[monitor.PoolKind]int{}
	}
	p.n[e.Kind]++
}

func (p *poolEvents) count(k monitor.PoolKind) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[k]
}

// BenchmarkIdleCheck reads one row from many goroutines at once on a
// pool smaller than they are, so connections go out and back without
// pause: with the idle check off, at every checkout, and at its default
// window.
//
//	go test -run '^$' -bench IdleCheck -benchmem -count=10 ./internal/connwrap/ | tee idle.txt
//	benchstat -col /check idle.txt
func BenchmarkIdleCheck(b *testing.B) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(b)
		b.Run("db="+cfg.Driver, func(b *testing.B) {
			for _, v := range []struct {
				name   string
				window time.Duration
			}{{"off", -1}, {"always", time.Nanosecond}, {"default", 0}} {
				b.Run("check="+v.name, func(b *testing.B) {
					db, _ := dialedPool(b, cfg, 4, v.window, nil)
					b.ReportAllocs()
					b.SetParallelism(2)
					b.RunParallel(func(pb *testing.PB) {
						ctx := context.Background()
						var x int
						for pb.Next() {
							if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&x); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		})
	}
}
