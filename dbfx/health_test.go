package dbfx_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// serve sends a request to h and returns the recorded answer.
func serve(h http.Handler, method string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/health", nil))
	return rec
}

// checkMethods checks that h answers GET and HEAD with want (HEAD without
// a body) and every other method with 405 and an Allow header.
func checkMethods(t *testing.T, h http.Handler, want int) {
	t.Helper()
	get := serve(h, http.MethodGet)
	if get.Code != want || get.Header().Get("Content-Type") != "application/json" || !json.Valid(get.Body.Bytes()) {
		t.Fatalf("GET: %d %q %s", get.Code, get.Header().Get("Content-Type"), get.Body)
	}
	head := serve(h, http.MethodHead)
	if head.Code != want || head.Body.Len() != 0 || head.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("HEAD: %d %q, body %q", head.Code, head.Header().Get("Content-Type"), head.Body)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions,
		http.MethodTrace, http.MethodConnect, "PURGE"} {
		rec := serve(h, m)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q, want 405 with Allow: GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestHealthHandlerAnswersGETAndHEADOnly(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := open(t, cfg)
		checkMethods(t, dbfx.HealthHandler(e), http.StatusOK)
		var body struct {
			Status  string
			Engines map[string]map[string]any
		}
		if err := json.Unmarshal(serve(dbfx.HealthHandler(e), http.MethodGet).Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		got := body.Engines["primary"]
		if body.Status != "ok" || got["status"] != "ok" || got["latency"] == nil || got["pool"] == nil {
			t.Fatalf("health JSON %+v", body)
		}
	})
}

func TestLiveHandler(t *testing.T) {
	h := dbfx.LiveHandler() // takes no engine: it never touches a database
	checkMethods(t, h, http.StatusOK)
	if got := strings.TrimSpace(serve(h, http.MethodGet).Body.String()); got != `{"status":"ok"}` {
		t.Fatalf("GET: %s", got)
	}
}

// cut closes every connection the proxy forwards and drops new ones until
// restore is called: the database is gone, then back.
func cut(p *proxy) (restore func()) {
	p.drop.Store(1 << 30)
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	return func() { p.drop.Store(0) }
}

// TestHealthJSONShowsNoErrorOrAddress: with the database gone, the handler
// answers 503 with the status, the reason in enginekit's words, the
// latency and the pool's figures, and no driver's error text or address; the engine's log has them, once until the
// database answers again. Check returns ErrDown without the driver's text.
func TestHealthJSONShowsNoErrorOrAddress(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg, p := viaProxy(t, cfg, 0)
		core, logs := observer.New(zap.InfoLevel)
		e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithLogger(zap.New(core)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close(context.Background()) })
		restore := cut(p)
		host, port, _ := net.SplitHostPort(p.Addr())
		for i := 0; i < 3; i++ {
			rec := serve(dbfx.HealthHandler(e), http.MethodGet)
			body := rec.Body.String()
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"down","reason":"the database does not answer"`) ||
				!strings.Contains(body, `"latency":`) || !strings.Contains(body, `"pool":`) {
				t.Fatalf("handler: %d %s", rec.Code, body)
			}
			for _, leak := range []string{p.Addr(), host, ":" + port, "error", "dial", "refused", "EOF", "pq:", "driver", "connection"} {
				if strings.Contains(body, leak) {
					t.Fatalf("the health JSON shows %q: %s", leak, body)
				}
			}
		}
		// Logged once, and again only when the error changes.
		down := logs.FilterMessage("health check: the database does not answer").All()
		if len(down) == 0 {
			t.Fatalf("no warning for three failed checks: %v", logs.All())
		}
		for i, l := range down {
			f := l.ContextMap()
			if l.Level != zap.WarnLevel || f["error"] == "" || !strings.Contains(f["host"].(string), port) || f["engine"] != "primary" {
				t.Fatalf("the warning lacks the error or the host: %s %v", l.Level, f)
			}
			if i > 0 && f["error"] == down[i-1].ContextMap()["error"] {
				t.Fatalf("the same error logged twice in a row: %v", down)
			}
		}

		err = e.Check(testContext(t))
		if !errors.Is(err, dbfx.ErrDown) || !strings.Contains(err.Error(), `engine "primary"`) {
			t.Fatalf("Check = %v, want ErrDown naming the engine", err)
		}
		if msg := err.Error(); strings.Contains(msg, host) || strings.Contains(msg, ":"+port) || strings.Contains(msg, down[0].ContextMap()["error"].(string)) {
			t.Fatalf("Check's error shows the driver's error: %s", msg)
		}

		restore()
		deadline := time.Now().Add(10 * time.Second)
		for e.Health(testContext(t)).Status != dbfx.StatusOK {
			if time.Now().After(deadline) {
				t.Fatal("the engine did not come back")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := logs.FilterMessage("health check: the database answers again").Len(); n != 1 {
			t.Fatalf("%d lines say the database answers again, want 1", n)
		}
		if err := e.Check(testContext(t)); err != nil {
			t.Fatalf("Check once the database is back: %v", err)
		}
	})
}

// TestHealthWriterExhausted: the writer pool held, with three callers
// waiting for it, is degraded on every database: on SQLite too, whose
// single writer's figures were summed with its readers' (1 in use of 16
// read as room to spare).
func TestHealthWriterExhausted(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		if cfg.Driver != "sqlite3" {
			cfg.MaxOpenConns = 1 // SQLite's writer is one connection whatever MaxOpenConns says
		}
		e := open(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		if err := e.Check(ctx); err != nil {
			t.Fatalf("Check on an idle engine: %v", err)
		}
		held, release := make(chan struct{}), make(chan struct{})
		errs := make(chan error, 4)
		go func() {
			errs <- m.Tx(ctx, func(context.Context) error {
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		for i := 0; i < 3; i++ {
			go func() { errs <- m.Tx(ctx, func(context.Context) error { return nil }) }()
		}
		for e.Stats().Waiting < 3 {
			time.Sleep(time.Millisecond)
		}
		h := e.Health(ctx)
		if h.Status != dbfx.StatusDegraded || h.Pool.Waiting != 3 {
			t.Fatalf("health with the writer held and 3 callers waiting: %+v", h)
		}
		rec := serve(dbfx.HealthHandler(e), http.MethodGet)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"degraded"`) {
			t.Fatalf("handler: %d %s", rec.Code, rec.Body)
		}
		if err := e.Check(ctx); err != nil {
			t.Fatalf("Check when degraded: %v, want nil", err)
		}
		close(release)
		for i := 0; i < 4; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if h := e.Health(ctx); h.Status != dbfx.StatusOK {
			t.Fatalf("health once the writer is free: %+v", h)
		}
	})
}

// TestCheckBeforeStartAndAfterClose: Check is ErrDown, saying why, before
// the engine's start and after its close.
func TestCheckBeforeStartAndAfterClose(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var e *dbfx.Engine
		app := fxtest.New(t, fx.Supply(cfg), fx.Populate(&e))
		ctx := testContext(t)
		if err := e.Check(ctx); !errors.Is(err, dbfx.ErrDown) || !errors.Is(err, session.ErrNotStarted) ||
			!strings.Contains(err.Error(), "engine not started") {
			t.Fatalf("Check before the start = %v", err)
		}
		checkMethods(t, dbfx.HealthHandler(e), http.StatusServiceUnavailable)
		if body := serve(dbfx.HealthHandler(e), http.MethodGet).Body.String(); !strings.Contains(body, `"reason":"engine not started"`) {
			t.Fatalf("the JSON does not say why: %s", body)
		}
		app.RequireStart()
		if err := e.Check(ctx); err != nil {
			t.Fatalf("Check once started: %v", err)
		}
		app.RequireStop()
		if err := e.Check(ctx); !errors.Is(err, dbfx.ErrDown) || !strings.Contains(err.Error(), "engine closed") {
			t.Fatalf("Check after the close = %v", err)
		}
	})
}

// TestHealthJSONOfReplicas: a replica's host and error stay out of the
// JSON; its status and lag are in it, in the order of Config.Replicas.
func TestHealthJSONOfReplicas(t *testing.T) {
	h := dbfx.Health{Status: dbfx.StatusDegraded, Error: "pq: password authentication failed for user app at db:5432",
		Replicas: []dbfx.ReplicaHealth{
			{Host: "replica-1.internal:5432/app", Status: dbfx.StatusOK, Lag: 1500 * time.Millisecond},
			{Host: "replica-2.internal:5432/app", Status: dbfx.StatusDown, Error: "dial tcp 10.0.0.7:5432: connect: connection refused"},
		}}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"internal", "5432", "10.0.0.7", "refused", "password", "error", "host"} {
		if strings.Contains(string(b), leak) {
			t.Fatalf("the JSON shows %q: %s", leak, b)
		}
	}
	if !strings.Contains(string(b), `"replicas":[{"status":"ok","lag":"1.5s"},{"status":"down","lag":"0s"}]`) {
		t.Fatalf("replicas: %s", b)
	}
}
