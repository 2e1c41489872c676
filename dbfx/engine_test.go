package dbfx_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// open opens an engine on cfg and closes it at cleanup, checking for leaks.
func open(t *testing.T, cfg dbfx.Config) *dbfx.Engine {
	t.Helper()
	e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fxtest.RequireNoLeaks(t, e)
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

func createTable(t *testing.T, e *dbfx.Engine, name string) {
	t.Helper()
	if _, err := e.DB().ExecContext(testContext(t), "CREATE TABLE "+name+" (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, e *dbfx.Engine, table string) int {
	t.Helper()
	var n int
	if err := e.DB().GetContext(testContext(t), &n, "SELECT COUNT(*) FROM "+table); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFxStartAndStop(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var e *dbfx.Engine
		var m *session.Manager
		app := fxtest.New(t, fx.Supply(cfg), fx.Populate(&e, &m))
		app.RequireStart()
		if e.Sessions() != m {
			t.Fatal("the Manager in the graph is not the engine's")
		}
		if e.Name() != dbfx.DefaultName || e.Driver() != cfg.Driver {
			t.Fatalf("engine %q on %s", e.Name(), e.Driver())
		}
		createTable(t, e, "t")
		err := m.Tx(testContext(t), func(ctx context.Context) error {
			_, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO t (id) VALUES (1)")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Health(testContext(t)); got.Status != dbfx.StatusOK {
			t.Fatalf("health %+v", got)
		}
		fxtest.RequireNoLeaks(t, e)
		app.RequireStop()
		if err := m.Tx(testContext(t), func(context.Context) error { return nil }); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Tx after stop = %v, want ErrClosed", err)
		}
		if err := e.DB().PingContext(testContext(t)); err == nil {
			t.Fatal("the pool is still open after stop")
		}
	})
}

func TestFxNewUsesSQLiteByDefault(t *testing.T) {
	var e *dbfx.Engine
	fxtest.New(t, fx.Populate(&e)).RequireStart().RequireStop()
	if e.Driver() != "sqlite3" {
		t.Fatalf("driver %s", e.Driver())
	}
}

func TestNamedEnginesNeverMix(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var (
			primary, audit *dbfx.Engine
			pm, am         *session.Manager
		)
		other := fxtest.SQLite(t)
		app := fxtest.New(t,
			fx.Supply(cfg),
			dbfx.Named("audit", other),
			fx.Populate(&primary, &pm),
			fx.Invoke(fx.Annotate(func(e *dbfx.Engine, m *session.Manager) { audit, am = e, m },
				fx.ParamTags(`name:"audit"`, `name:"audit"`))),
		)
		app.RequireStart()
		defer app.RequireStop()
		if audit.Name() != "audit" || primary.Name() != dbfx.DefaultName || pm == am {
			t.Fatalf("engines %q and %q", primary.Name(), audit.Name())
		}
		createTable(t, primary, "orders")
		createTable(t, audit, "events")
		if _, err := audit.DB().ExecContext(testContext(t), "SELECT 1 FROM orders"); err == nil {
			t.Fatal("the audit database sees the primary's table")
		}
		err := pm.Tx(testContext(t), func(ctx context.Context) error {
			if !pm.InTx(ctx) || am.InTx(ctx) {
				return errors.New("a transaction of one engine is visible to the other")
			}
			// The audit engine's Q is its own pool, not the primary's transaction.
			if _, err := am.Q(ctx).ExecContext(ctx, "INSERT INTO events (id) VALUES (1)"); err != nil {
				return err
			}
			_, err := pm.Q(ctx).ExecContext(ctx, "INSERT INTO orders (id) VALUES (1)")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if count(t, primary, "orders") != 1 || count(t, audit, "events") != 1 {
			t.Fatal("rows went to the wrong database")
		}
	})
}

func TestUnreachableFailsStartWithinConnectTimeout(t *testing.T) {
	const secret = "Sup3rSecretPw"
	addr := closedPort(t)
	tests := []struct {
		name string
		give dbfx.Config
	}{
		{"postgres", dbfx.Config{DSN: "postgres://app:" + secret + "@" + addr + "/app?sslmode=disable"}},
		{"mysql", dbfx.Config{DSN: "app:" + secret + "@tcp(" + addr + ")/app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.give
			cfg.ConnectTimeout = 700 * time.Millisecond
			core, logs := observer.New(zap.DebugLevel)
			begun := time.Now()
			app := fx.New(fx.NopLogger, fx.Supply(cfg, zap.New(core)), dbfx.Module, postgres.Module, mysql.Module)
			err := app.Start(testContext(t))
			took := time.Since(begun)
			if !errors.Is(err, dbfx.ErrConnect) {
				t.Fatalf("start = %v, want ErrConnect", err)
			}
			t.Logf("start failed after %s with ConnectTimeout %s", took.Round(time.Millisecond), cfg.ConnectTimeout)
			if took > cfg.ConnectTimeout+2*time.Second {
				t.Fatalf("start took %s with ConnectTimeout %s", took, cfg.ConnectTimeout)
			}
			msg := err.Error()
			mustNotContain(t, msg, secret)
			for _, want := range []string{`engine "primary"`, tt.name, addr} {
				if !strings.Contains(msg, want) {
					t.Errorf("%q does not name %s", msg, want)
				}
			}
			for _, entry := range logs.All() {
				mustNotContain(t, entry.Message+fmtFields(entry.ContextMap()), secret)
			}
		})
	}
}

func fmtFields(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func TestStartWaitsForADatabaseThatComesUp(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg, p := viaProxy(t, cfg, 3) // the first three connections are dropped
		e := open(t, cfg)
		if p.accepted.Load() < 4 {
			t.Fatalf("the proxy saw %d connections, want the 3 dropped and one more", p.accepted.Load())
		}
		if h := e.Health(testContext(t)); h.Status != dbfx.StatusOK {
			t.Fatalf("health %+v", h)
		}
	})
}

func TestCloseWaitsForScopesInFlightThenRefusesNewOnes(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers())
		if err != nil {
			t.Fatal(err)
		}
		createTable(t, e, "t")
		m := e.Sessions()
		inside, release := make(chan struct{}), make(chan struct{})
		txDone := make(chan error, 1)
		go func() {
			txDone <- m.Tx(testContext(t), func(ctx context.Context) error {
				if _, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO t (id) VALUES (1)"); err != nil {
					return err
				}
				close(inside)
				<-release
				return nil
			})
		}()
		<-inside
		closeDone := make(chan error, 1)
		go func() { closeDone <- e.Close(testContext(t)) }()
		// Once Close has begun, new scopes are refused.
		for {
			err := m.ReadOnly(testContext(t), func(context.Context) error { return nil })
			if errors.Is(err, session.ErrClosed) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			runtime.Gosched()
		}
		select {
		case err := <-closeDone:
			t.Fatalf("Close returned (%v) while a scope was in flight", err)
		default:
		}
		close(release)
		if err := <-txDone; err != nil {
			t.Fatalf("the scope in flight: %v", err)
		}
		if err := <-closeDone; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := e.Close(testContext(t)); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		// The write of the scope in flight was committed: reopen and look.
		e2 := open(t, cfg)
		if n := count(t, e2, "t"); n != 1 {
			t.Fatalf("%d rows, want the 1 committed during Close", n)
		}
	})
}

func TestHealthAnswersWithThePoolExhausted(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.MaxOpenConns = 2
		e := open(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		// Hold every connection: the writer(s), and on SQLite the readers too.
		holders := 2
		if cfg.Driver == "sqlite3" {
			holders = 3 // one writer, two readers
		}
		held, release := make(chan struct{}, holders), make(chan struct{})
		errs := make(chan error, holders+1)
		for i := 0; i < holders; i++ {
			scope := m.Tx
			if cfg.Driver == "sqlite3" && i > 0 {
				scope = m.ReadOnly
			}
			go func() {
				errs <- scope(ctx, func(ctx context.Context) error {
					held <- struct{}{}
					<-release
					return nil
				})
			}()
		}
		for i := 0; i < holders; i++ {
			<-held
		}
		// One more caller queues for a connection.
		go func() { errs <- m.Tx(ctx, func(context.Context) error { return nil }) }()
		for e.Stats().Waiting == 0 {
			runtime.Gosched()
		}
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		h := e.Health(hctx)
		if h.Status != dbfx.StatusDegraded || h.Error != "" || h.Pool.InUse != h.Pool.MaxOpen {
			t.Fatalf("health with the pool exhausted: %+v", h)
		}
		rec := httptest.NewRecorder()
		dbfx.HealthHandler(e).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil).WithContext(hctx))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"degraded"`) {
			t.Fatalf("handler: %d %s", rec.Code, rec.Body)
		}
		close(release)
		for i := 0; i < holders+1; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestHealthDownWhenTheServerIsGone(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg, p := viaProxy(t, cfg, 0)
		e := open(t, cfg)
		p.Close()
		h := e.Health(testContext(t))
		if h.Status != dbfx.StatusDown || h.Error == "" {
			t.Fatalf("health with the server gone: %+v", h)
		}
		rec := httptest.NewRecorder()
		dbfx.HealthHandler(e).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var body struct {
			Status  string
			Engines map[string]map[string]any
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusServiceUnavailable || body.Status != "down" || body.Engines["primary"]["status"] != "down" {
			t.Fatalf("handler: %d %s", rec.Code, rec.Body)
		}
	})
}

func TestWarnsWhenTLSIsOffToARemoteHost(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := dbfx.Config{DSN: "postgres://app:pw@" + closedPort(t) + "/app?sslmode=disable", ConnectTimeout: 100 * time.Millisecond}
	if _, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithLogger(zap.New(core))); err == nil {
		t.Fatal("Open succeeded on a closed port")
	}
	if n := logs.FilterMessageSnippet("not encrypted").Len(); n != 0 {
		t.Fatalf("%d TLS warnings for a loopback host", n)
	}
	cfg.DSN = "postgres://app:pw@192.0.2.10:5432/app?sslmode=disable" // TEST-NET-1: never routed
	if _, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithLogger(zap.New(core))); err == nil {
		t.Fatal("Open succeeded on an unroutable host")
	}
	if n := logs.FilterMessageSnippet("not encrypted").Len(); n != 1 {
		t.Fatalf("%d TLS warnings for a remote host, want 1", n)
	}
}
