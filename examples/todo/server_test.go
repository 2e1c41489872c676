package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/fx"
	fxfxtest "go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// TestStopFinishesRequestsInFlight stops the app while a request is half
// read: the server stops accepting, the request finishes and commits (the
// engine is still open), and only then does the app stop.
func TestStopFinishesRequestsInFlight(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		entered := make(chan struct{}, 1)
		var srv *http.Server
		app := fxtest.New(t, fx.Supply(cfg, ServerConfig{Addr: "127.0.0.1:0"}), Module(), Listener(),
			// Tell the test when the handler of the slow request has begun.
			fx.Decorate(func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost && r.URL.Path == "/todos" {
						entered <- struct{}{}
					}
					h.ServeHTTP(w, r)
				})
			}),
			fx.Populate(&srv))
		app.RequireStart()
		ctx := testContext(t)
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		base := "http://" + srv.Addr

		res, err := client.Post(base+"/lists", "application/json", strings.NewReader(`{"name": "home"}`))
		if err != nil {
			t.Fatal(err)
		}
		var home List
		if err := json.NewDecoder(res.Body).Decode(&home); err != nil || res.StatusCode != http.StatusCreated {
			t.Fatalf("create list: %d %v", res.StatusCode, err)
		}
		res.Body.Close()

		// A request whose body comes in two parts.
		body, more := io.Pipe()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/todos", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		type result struct {
			res  *http.Response
			todo Todo
			err  error
		}
		done := make(chan result, 1)
		go func() {
			var r result
			r.res, r.err = client.Do(req)
			if r.err == nil {
				r.err = json.NewDecoder(r.res.Body).Decode(&r.todo)
				r.res.Body.Close()
			}
			done <- r
		}()
		if _, err := fmt.Fprintf(more, `{"list_id": %d, `, home.ID); err != nil {
			t.Fatal(err)
		}
		<-entered

		// Stop while the handler waits for the rest of its body.
		shutting := make(chan struct{})
		srv.RegisterOnShutdown(func() { close(shutting) })
		stopped := make(chan error, 1)
		go func() { stopped <- app.Stop(ctx) }()
		<-shutting // the listener is closed before this runs
		if c, err := net.Dial("tcp", srv.Addr); err == nil {
			c.Close()
			t.Fatal("the server accepts connections while stopping")
		}
		select {
		case err := <-stopped:
			t.Fatalf("the app stopped (%v) with a request in flight", err)
		default:
		}

		if _, err := io.WriteString(more, `"title": "finished while stopping"}`); err != nil {
			t.Fatal(err)
		}
		more.Close()
		r := <-done
		if r.err != nil || r.res.StatusCode != http.StatusCreated || r.todo.Title != "finished while stopping" {
			t.Fatalf("the request in flight: %v %v %+v", r.res, r.err, r.todo)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("stop: %v", err)
		}

		// It was committed before the engine closed.
		e, err := dbfx.Open(ctx, cfg, fxtest.WithDrivers())
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
		var n int
		if err := e.DB().GetContext(ctx, &n, e.DB().Rebind("SELECT COUNT(*) FROM todos WHERE id = ?"), r.todo.ID); err != nil || n != 1 {
			t.Fatalf("the todo created while stopping: %d rows, %v", n, err)
		}
	})
}

func TestStartFailsWhenTheAddressIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	app := fxtest.New(t, fx.Supply(ServerConfig{Addr: taken.Addr().String()}), Module(), Listener())
	if err := app.Start(testContext(t)); err == nil || !strings.Contains(err.Error(), "listen on "+taken.Addr().String()) {
		t.Fatalf("start = %v, want the listen error", err)
	}
}

// TestMainApp runs the app of main as main does, but for its logger and
// a free port: the default database is a new SQLite file, removed once the
// engine has closed.
func TestMainApp(t *testing.T) {
	t.Setenv("ENGINEKIT_DSN", "")
	t.Setenv("ENGINEKIT_ADDR", "127.0.0.1:0")
	var (
		srv *http.Server
		cfg dbfx.Config
	)
	app := fxfxtest.New(t, app(), fx.Replace(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))), fx.Populate(&srv, &cfg))
	app.RequireStart()
	if !strings.HasPrefix(cfg.DSN, os.TempDir()) {
		t.Fatalf("the default database %s is not under %s", cfg.DSN, os.TempDir())
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	res, err := client.Get("http://" + srv.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz %d", res.StatusCode)
	}
	app.RequireStop()
	if _, err := os.Stat(filepath.Dir(cfg.DSN)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the database's directory is still there: %v", err)
	}
}
