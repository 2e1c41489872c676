package dbfx_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/testdb"
	"github.com/enginekit/enginekit/repo"
)

type deadItem struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name"`
}

// TestNoCallerMeetsADeadIdleConnection: after every connection of an
// engine's pool was ended from the server's side (a restart, a failover,
// pg_terminate_backend, an idle timeout), 4 calls on each path that takes
// a connection meet none of them: Q outside a scope, Prepared, a
// repository, Tx, ReadOnly and Conn, with the pool's idle connections
// checked at every checkout (Config.IdleCheck). MariaDB's driver checks
// its connections itself; PostgreSQL's does not.
func TestNoCallerMeetsADeadIdleConnection(t *testing.T) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(t)
		t.Run(cfg.Driver, func(t *testing.T) {
			const n = 4
			cfg.MaxOpenConns, cfg.MaxIdleConns, cfg.IdleCheck = n, n, time.Nanosecond
			e := open(t, cfg)
			m := e.Sessions()
			ctx := testContext(t)
			if _, err := e.DB().ExecContext(ctx, "CREATE TABLE dead_items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.DB().ExecContext(ctx, e.DB().Rebind("INSERT INTO dead_items (id, name) VALUES (?, ?)"), 1, "one"); err != nil {
				t.Fatal(err)
			}
			items, err := repo.New[deadItem, int64](m, repo.Table("dead_items"))
			if err != nil {
				t.Fatal(err)
			}
			admin, err := sql.Open(cfg.Driver, cfg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			count := func(ctx context.Context) error {
				var k int
				return m.Q(ctx).GetContext(ctx, &k, "SELECT COUNT(*) FROM dead_items")
			}
			paths := []struct {
				name string
				call func(ctx context.Context) error
			}{
				{"Q", func(ctx context.Context) error {
					_, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind("UPDATE dead_items SET name = ? WHERE id = ?"), "q", 1)
					return err
				}},
				{"Prepared", func(ctx context.Context) error {
					var name string
					return m.Prepared(ctx).GetContext(ctx, &name, m.Q(ctx).Rebind("SELECT name FROM dead_items WHERE id = ?"), 1)
				}},
				{"repository", func(ctx context.Context) error {
					_, err := items.Get(ctx, 1)
					return err
				}},
				{"Tx", func(ctx context.Context) error { return m.Tx(ctx, count) }},
				{"ReadOnly", func(ctx context.Context) error { return m.ReadOnly(ctx, count) }},
				{"Conn", func(ctx context.Context) error { return m.Conn(ctx, count) }},
			}
			for _, p := range paths {
				warmPool(t, e, n)
				testdb.KillConnections(t, cfg.Driver, admin)
				for i := range 4 {
					if err := p.call(ctx); err != nil {
						t.Errorf("%s: call %d met a dead connection: %v", p.name, i+1, err)
					}
				}
			}
		})
	}
}

// warmPool opens n connections of e's pool at once and gives them back.
func warmPool(t *testing.T, e *dbfx.Engine, n int) {
	t.Helper()
	ctx := testContext(t)
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := e.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Close()
	}
}

// Close succeeds when the pools' idle connections are already dead (their
// server host crashed, a node of a cluster was killed): closing a
// connection that is gone is not a failure of Close.
func TestCloseWithDeadIdleConnections(t *testing.T) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(t)
		t.Run(cfg.Driver, func(t *testing.T) {
			cfg, p := behindProxy(t, cfg)
			cfg.MaxOpenConns, cfg.MaxIdleConns = 4, 4
			e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			m := e.Sessions()
			ctx := testContext(t)
			var wg, in sync.WaitGroup
			hold := make(chan struct{})
			for range 4 { // four connections at once, then idle
				wg.Add(1)
				in.Add(1)
				go func() {
					defer wg.Done()
					_ = m.Conn(ctx, func(ctx context.Context) error {
						_, err := m.Q(ctx).ExecContext(ctx, "SELECT 1")
						in.Done()
						<-hold
						return err
					})
				}()
			}
			in.Wait()
			close(hold)
			wg.Wait()
			if st := e.DB().Stats(); st.Idle != 4 {
				t.Fatalf("%d idle connections, want 4", st.Idle)
			}
			p.Reset()
			if err := e.Close(context.Background()); err != nil {
				t.Fatalf("Close with dead idle connections = %v, want nil", err)
			}
		})
	}
}
