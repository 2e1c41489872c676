package session_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/testdb"
)

// TestBeginOnADeadConnectionTakesAnother: a transaction scope whose BEGIN
// meets a connection that died in the pool a moment ago (a server
// restarted, or pg_terminate_backend, while the connection was idle for
// less than the idle check's window) takes another connection and runs:
// nothing was sent, so nothing can be done twice.
func TestBeginOnADeadConnectionTakesAnother(t *testing.T) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(t)
		t.Run(cfg.Driver, func(t *testing.T) {
			cfg.MaxOpenConns, cfg.MaxIdleConns = 4, 4
			cfg.IdleCheck = time.Hour // connections used a moment ago are not checked
			e := openEngine(t, cfg)
			m := e.Sessions()
			ctx := testContext(t)
			admin, err := sql.Open(cfg.Driver, cfg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			conns := make([]*sql.Conn, 4)
			for i := range conns {
				if conns[i], err = e.DB().Conn(ctx); err != nil {
					t.Fatal(err)
				}
				if err := conns[i].PingContext(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range conns {
				c.Close()
			}
			testdb.KillConnections(t, cfg.Driver, admin)
			for i := range 4 {
				if err := m.Tx(ctx, func(ctx context.Context) error {
					_, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind("INSERT INTO items (id) VALUES (?)"), i+1)
					return err
				}); err != nil {
					t.Errorf("transaction %d after the pool's connections died: %v", i+1, err)
				}
			}
			var n int
			if err := e.DB().GetContext(ctx, &n, "SELECT COUNT(*) FROM items"); err != nil || n != 4 {
				t.Fatalf("%d rows (%v), want 4", n, err)
			}
		})
	}
}
