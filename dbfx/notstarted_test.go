package dbfx_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// countingMonitor counts what reaches it: statements, transaction scopes
// and pool events (connects and failed connects among them).
type countingMonitor struct{ queries, txs, pool atomic.Int64 }

func (m *countingMonitor) Query(context.Context, monitor.QueryEvent) { m.queries.Add(1) }
func (m *countingMonitor) Tx(context.Context, monitor.TxEvent)       { m.txs.Add(1) }
func (m *countingMonitor) Pool(context.Context, monitor.PoolEvent)   { m.pool.Add(1) }

// gatedTable creates the table of the calls below, as a migration would.
func gatedTable(family string) string {
	key := map[string]string{
		"sqlite3":  "INTEGER PRIMARY KEY",
		"postgres": "BIGSERIAL PRIMARY KEY",
		"mysql":    "BIGINT AUTO_INCREMENT PRIMARY KEY",
	}[family]
	return "CREATE TABLE gated (id " + key + ", name VARCHAR(20) NOT NULL)"
}

// call is one way of reaching the database.
type call struct {
	name string
	run  func(ctx context.Context) error
}

// everyPath reaches the database in every way an application does: the
// scopes, statements outside a scope through Q and Prepared, a repository
// and the engine's pool. fnRan counts the scopes' functions that ran.
func everyPath(e *dbfx.Engine, m *session.Manager, items *repo.Repository[repoItem, int64], fnRan *atomic.Int32) []call {
	insert := m.Rebind("INSERT INTO gated (name) VALUES (?)")
	inScope := func(ctx context.Context) error {
		fnRan.Add(1)
		var n int
		return m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM gated")
	}
	return []call{
		{"Q.ExecContext", func(ctx context.Context) error { _, err := m.Q(ctx).ExecContext(ctx, insert, "q"); return err }},
		{"Q.QueryRowxContext", func(ctx context.Context) error {
			var n int
			return m.Q(ctx).QueryRowxContext(ctx, "SELECT COUNT(*) FROM gated").Scan(&n)
		}},
		{"Prepared.ExecContext", func(ctx context.Context) error {
			_, err := m.Prepared(ctx).ExecContext(ctx, insert, "prepared")
			return err
		}},
		{"Tx", func(ctx context.Context) error { return m.Tx(ctx, inScope) }},
		{"ReadOnly", func(ctx context.Context) error { return m.ReadOnly(ctx, inScope) }},
		{"Conn", func(ctx context.Context) error { return m.Conn(ctx, inScope) }},
		{"session.Tx[T]", func(ctx context.Context) error {
			_, err := session.Tx(ctx, m, func(ctx context.Context) (int, error) { return 0, inScope(ctx) })
			return err
		}},
		{"repo.Insert", func(ctx context.Context) error { return items.Insert(ctx, &repoItem{Name: "repo"}) }},
		{"repo.Get", func(ctx context.Context) error { _, err := items.Get(ctx, 1); return err }},
		{"repo.Find", func(ctx context.Context) error { _, err := items.Find(ctx); return err }},
		{"DB.ExecContext", func(ctx context.Context) error { _, err := e.DB().ExecContext(ctx, insert, "db"); return err }},
		{"DB.BeginTxx", func(ctx context.Context) error {
			tx, err := e.DB().BeginTxx(ctx, nil)
			if err != nil {
				return err
			}
			return tx.Rollback()
		}},
		{"DB.PingContext", func(ctx context.Context) error { return e.DB().PingContext(ctx) }},
	}
}

// TestBeforeStart: used in an fx.Invoke, before the engine's OnStart,
// every path fails with session.ErrNotStarted naming the engine, and
// nothing reaches the database: no connection opened (the monitor hears
// of none, and of no statement or transaction), no SQLite file created,
// nothing left in the statement cache; Health reports the engine down
// without connecting. The start itself goes through (its step creates
// the table, as migrations do), and after it every path works.
func TestBeforeStart(t *testing.T) {
	run := func(t *testing.T, cfg dbfx.Config) {
		mon := &countingMonitor{}
		var fnRan atomic.Int32
		var e *dbfx.Engine
		var m *session.Manager
		var items *repo.Repository[repoItem, int64]
		var stepRan bool
		before := map[string]error{}
		var health dbfx.Health
		var handlerCode int
		var handlerBody string
		ctx := testContext(t)
		app := fxtest.New(t,
			fx.Supply(cfg),
			fx.Supply(fx.Annotate(mon, fx.As(new(monitor.Monitor)))),
			dbfx.ProvideRepository[repoItem, int64](repo.Table("gated")),
			dbfx.Options(dbfx.WithStartup(func(ctx context.Context, s dbfx.Startup) error {
				stepRan = true
				sm := s.Engine.Sessions()
				return sm.Tx(ctx, func(ctx context.Context) error {
					_, err := sm.Q(ctx).ExecContext(ctx, gatedTable(s.Family))
					return err
				})
			})),
			fx.Populate(&e, &m, &items),
			fx.Invoke(func(e *dbfx.Engine, m *session.Manager, items *repo.Repository[repoItem, int64]) {
				for _, c := range everyPath(e, m, items, &fnRan) {
					before[c.name] = c.run(ctx)
				}
				health = e.Health(ctx)
				rec := httptest.NewRecorder()
				dbfx.HealthHandler(e).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
				handlerCode, handlerBody = rec.Code, rec.Body.String()
			}),
		)
		for name, err := range before {
			if !errors.Is(err, session.ErrNotStarted) {
				t.Errorf("%s before start = %v, want session.ErrNotStarted", name, err)
			} else if !strings.Contains(err.Error(), `engine "primary"`) {
				t.Errorf("%s before start = %q: the engine is not named", name, err)
			}
		}
		if len(before) == 0 {
			t.Fatal("the fx.Invoke did not run")
		}
		if n := fnRan.Load(); n != 0 {
			t.Errorf("%d scope functions ran before start", n)
		}
		if q, tx, p := mon.queries.Load(), mon.txs.Load(), mon.pool.Load(); q+tx+p != 0 {
			t.Errorf("before start the monitor saw %d statements, %d transaction events, %d pool events: want none", q, tx, p)
		}
		if st := e.Stats(); st.Open != 0 || st.Scopes != 0 {
			t.Errorf("before start: %d connections open, %d scopes", st.Open, st.Scopes)
		}
		if n := m.Stats().Statements; n != 0 {
			t.Errorf("before start: %d statements in the cache", n)
		}
		if cfg.Driver == "sqlite3" {
			if _, err := os.Stat(cfg.DSN); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("before start the SQLite file exists (%v)", err)
			}
		}
		if health.Status != dbfx.StatusStarting || health.Error != "engine not started" || health.Latency != 0 {
			t.Errorf("health before start = %+v, want starting, engine not started, no ping", health)
		}
		if handlerCode != http.StatusServiceUnavailable || !strings.Contains(handlerBody, `{"status":"starting"`) ||
			!strings.Contains(handlerBody, "engine not started") {
			t.Errorf("health handler before start: %d %s", handlerCode, handlerBody)
		}

		app.RequireStart()
		if !stepRan {
			t.Fatal("the startup step did not run")
		}
		for _, c := range everyPath(e, m, items, &fnRan) {
			if err := c.run(ctx); err != nil {
				t.Errorf("%s after start: %v", c.name, err)
			}
		}
		if n := fnRan.Load(); n != 4 {
			t.Errorf("%d scope functions ran after start, want 4", n)
		}
		if mon.queries.Load() == 0 || mon.txs.Load() == 0 {
			t.Error("after start the monitor saw nothing")
		}
		if n := m.Stats().Statements; n == 0 {
			t.Error("after start no statement was cached: the failures before it poisoned the cache")
		}
		var names []string
		if err := m.Q(ctx).SelectContext(ctx, &names, "SELECT name FROM gated ORDER BY id"); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(names, ","); got != "q,prepared,repo,db" {
			t.Errorf("rows %s, want q,prepared,repo,db", got)
		}
		if h := e.Health(ctx); h.Status != dbfx.StatusOK {
			t.Errorf("health after start = %+v", h)
		}
		fxtest.RequireNoLeaks(t, e)
		app.RequireStop()
		if err := m.Tx(ctx, func(context.Context) error { return nil }); !errors.Is(err, session.ErrClosed) {
			t.Errorf("Tx after stop = %v, want session.ErrClosed", err)
		}
	}
	fxtest.Each(t, run)
	// One connection is the whole database: had anything opened it before
	// the start, the table would be missing or the data lost.
	t.Run("sqlite3-memory", func(t *testing.T) { run(t, dbfx.Config{DSN: ":memory:"}) })
}

// TestAfterFailedStart: a start that fails (here its startup step) closes
// the pools and leaves the engine refused: scopes and statements through
// the Manager fail with session.ErrNotStarted naming the failure, the
// step's own pool opens no connection, and Health reports the failed start.
func TestAfterFailedStart(t *testing.T) {
	run := func(t *testing.T, cfg dbfx.Config) {
		var e *dbfx.Engine
		var m *session.Manager
		var openDB func() (*sql.DB, error)
		stepErr := errors.New("the step refuses")
		app := fxtest.New(t,
			fx.Supply(cfg),
			dbfx.Options(dbfx.WithStartup(func(ctx context.Context, s dbfx.Startup) error {
				// During the start, the engine's scopes go through.
				if err := s.Engine.Sessions().Tx(ctx, func(context.Context) error { return nil }); err != nil {
					t.Errorf("a scope in a startup step: %v", err)
				}
				openDB = s.OpenDB
				return stepErr
			})),
			fx.Populate(&e, &m),
		)
		ctx := testContext(t)
		if err := app.Start(ctx); !errors.Is(err, stepErr) {
			t.Fatalf("Start = %v, want the step's error", err)
		}
		for _, tt := range []struct {
			name string
			err  error
		}{
			{"Tx", m.Tx(ctx, func(context.Context) error { t.Error("Tx ran"); return nil })},
			{"Conn", m.Conn(ctx, func(context.Context) error { t.Error("Conn ran"); return nil })},
			{"Q.ExecContext", func() error { _, err := m.Q(ctx).ExecContext(ctx, "SELECT 1"); return err }()},
		} {
			if !errors.Is(tt.err, session.ErrNotStarted) || !strings.Contains(tt.err.Error(), "start failed") ||
				!strings.Contains(tt.err.Error(), stepErr.Error()) {
				t.Errorf("%s after a failed start = %v, want session.ErrNotStarted naming the failure", tt.name, tt.err)
			}
		}
		if _, err := e.DB().ExecContext(ctx, "SELECT 1"); err == nil {
			t.Error("DB().ExecContext after a failed start succeeded")
		}
		if h := e.Health(ctx); h.Status != dbfx.StatusDown || h.Error != "engine failed to start" {
			t.Errorf("health after a failed start = %+v", h)
		}
		if openDB != nil { // nil in memory
			db, err := openDB()
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.PingContext(ctx); !errors.Is(err, session.ErrNotStarted) {
				t.Errorf("the step's pool after a failed start: %v, want session.ErrNotStarted", err)
			}
		}
	}
	fxtest.Each(t, run)
	t.Run("sqlite3-memory", func(t *testing.T) { run(t, dbfx.Config{DSN: ":memory:"}) })
}

// TestAfterFailedConnect: the error of a start that could not connect
// says why, and carries no password.
func TestAfterFailedConnect(t *testing.T) {
	const secret = "s3cret-pw"
	var m *session.Manager
	app := fxtest.New(t,
		fx.Supply(dbfx.Config{DSN: "postgres://app:" + secret + "@" + closedPort(t) + "/app?sslmode=disable",
			ConnectTimeout: 100 * time.Millisecond}),
		fx.Populate(&m),
	)
	ctx := testContext(t)
	if err := app.Start(ctx); !errors.Is(err, dbfx.ErrConnect) {
		t.Fatalf("Start = %v, want ErrConnect", err)
	}
	err := m.Tx(ctx, func(context.Context) error { return nil })
	if !errors.Is(err, session.ErrNotStarted) || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("Tx = %v, want session.ErrNotStarted naming the connect failure", err)
	}
	mustNotContain(t, err.Error(), secret)
}

// TestFailedOpen: an engine whose Open failed (a step kept it) refuses as
// after a failed start in Fx; during the start its scopes went through.
func TestFailedOpen(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var kept *dbfx.Engine
		stepErr := errors.New("the step refuses")
		step := dbfx.WithStartup(func(ctx context.Context, s dbfx.Startup) error {
			kept = s.Engine
			m := s.Engine.Sessions()
			if err := m.Tx(ctx, func(ctx context.Context) error {
				_, err := m.Q(ctx).ExecContext(ctx, "SELECT 1")
				return err
			}); err != nil {
				t.Errorf("a scope in a startup step: %v", err)
			}
			return stepErr
		})
		ctx := testContext(t)
		e, err := dbfx.Open(ctx, cfg, fxtest.WithDrivers(), step)
		if e != nil || !errors.Is(err, stepErr) {
			t.Fatalf("Open = %v, %v: want no engine and the step's error", e, err)
		}
		err = kept.Sessions().ReadOnly(ctx, func(context.Context) error { return nil })
		if !errors.Is(err, session.ErrNotStarted) {
			t.Fatalf("ReadOnly after a failed Open = %v, want session.ErrNotStarted", err)
		}
	})
}
