package dbfx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/testdb"
	"github.com/enginekit/enginekit/session"
)

// TestCallsEndByTheirDeadlineWhenTheServerHangs: a server that stops
// answering mid-statement (here a proxy that stops forwarding, as a
// partition or a stopped server process would) holds no caller past its
// deadline by more than about a second: Tx, a statement outside any
// scope, ReadOnly and Health, each with a 1s ctx, return within 2.5s with
// the ctx's error. When the server answers again, the engine works: the
// connections cut under the callers were discarded.
func TestCallsEndByTheirDeadlineWhenTheServerHangs(t *testing.T) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(t)
		t.Run(cfg.Driver, func(t *testing.T) {
			cfg, p := behindProxy(t, cfg)
			e := open(t, cfg)
			m := e.Sessions()
			createTable(t, e, "hang")
			p.Freeze()
			calls := []struct {
				name string
				call func(ctx context.Context) error
			}{
				{"Tx", func(ctx context.Context) error {
					return m.Tx(ctx, func(ctx context.Context) error {
						_, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind("INSERT INTO hang (id) VALUES (?)"), 1)
						return err
					})
				}},
				{"Q", func(ctx context.Context) error {
					var n int
					return m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM hang")
				}},
				{"ReadOnly", func(ctx context.Context) error {
					return m.ReadOnly(ctx, func(ctx context.Context) error {
						var n int
						return m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM hang")
					})
				}},
				{"Health", func(ctx context.Context) error {
					if h := e.Health(ctx); h.Status != dbfx.StatusDown {
						return errors.New("health says " + string(h.Status) + " of a server that does not answer")
					}
					return context.DeadlineExceeded
				}},
			}
			for _, c := range calls {
				ctx, cancel := context.WithTimeout(testContext(t), time.Second)
				begun := time.Now()
				err := c.call(ctx)
				took := time.Since(begun)
				cancel()
				t.Logf("%s returned after %s: %v", c.name, took.Round(time.Millisecond), err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s = %v, want the ctx's deadline error", c.name, err)
				}
				if took > 2500*time.Millisecond {
					t.Errorf("%s returned after %s, want within 2.5s of a 1s deadline", c.name, took)
				}
			}
			p.Thaw()
			ctx := testContext(t)
			if err := m.Tx(ctx, func(ctx context.Context) error {
				_, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind("INSERT INTO hang (id) VALUES (?)"), 2)
				return err
			}); err != nil {
				t.Fatalf("after the server answers again: %v", err)
			}
			if h := e.Health(ctx); h.Status != dbfx.StatusOK {
				t.Errorf("health after the server answers again: %+v", h)
			}
		})
	}
}

// TestDeadlineDuringCommitIsAmbiguous: a COMMIT sent to a server that
// then stops answering ends with the scope's deadline, as
// session.ErrAmbiguousCommit wrapping the ctx's error: it may or may not
// have been committed, and the caller must not think either.
func TestDeadlineDuringCommitIsAmbiguous(t *testing.T) {
	for _, newCfg := range []func(testing.TB) dbfx.Config{fxtest.Postgres, fxtest.MySQL} {
		cfg := newCfg(t)
		t.Run(cfg.Driver, func(t *testing.T) {
			cfg, p := behindProxy(t, cfg)
			e := open(t, cfg)
			m := e.Sessions()
			createTable(t, e, "ambiguous")
			ctx, cancel := context.WithTimeout(testContext(t), time.Second)
			defer cancel()
			begun := time.Now()
			err := m.Tx(ctx, func(ctx context.Context) error {
				if _, err := m.Q(ctx).ExecContext(ctx, m.Q(ctx).Rebind("INSERT INTO ambiguous (id) VALUES (?)"), 1); err != nil {
					return err
				}
				p.Freeze() // the COMMIT that follows gets no answer
				return nil
			})
			took := time.Since(begun)
			p.Thaw()
			t.Logf("Tx returned after %s: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, session.ErrAmbiguousCommit) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Tx = %v, want ErrAmbiguousCommit wrapping the ctx's deadline error", err)
			}
			if took > 2500*time.Millisecond {
				t.Errorf("Tx returned after %s, want within 2.5s of a 1s deadline", took)
			}
		})
	}
}

// behindProxy is cfg with its DSN pointed at a proxy to its server.
func behindProxy(t *testing.T, cfg dbfx.Config) (dbfx.Config, *testdb.Proxy) {
	t.Helper()
	p := testdb.NewProxy(t, testdb.TargetOf(t, cfg.DSN))
	if cfg.Driver == "postgres" {
		cfg.DSN = p.PostgresDSN(t, cfg.DSN)
	} else {
		cfg.DSN = p.MySQLDSN(t, cfg.DSN)
	}
	return cfg, p
}
