package main

import (
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/migrate"
	"github.com/enginekit/enginekit/monitor/prommon"
)

// embedded holds the goose migrations, one directory per dialect
// (postgres, mysql, sqlite3), as migrate.Module reads them.
//
//go:embed migrations
var embedded embed.FS

// Module is the whole service but its configuration, its database engine
// (dbfx.Module) and its listener (Listener): the repositories, the
// migrations, the Prometheus registry and the engine's monitor on it
// (prommon.Module), the Service, the handlers and the http.Handler that
// routes to them. main adds the rest; tests build it with fxtest.New,
// which adds dbfx.Module on a private database, and serve the
// http.Handler with httptest.
func Module() fx.Option {
	migrations, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return fx.Error(err)
	}
	return fx.Module("todo",
		migrate.Module(migrations), // applied at start
		dbfx.ProvideRepository[Todo, int64](),
		dbfx.ProvideRepository[List, int64](),
		// The engine's monitor: its metrics on the registry below.
		prommon.Module,
		fx.Provide(
			// One registry for the engine's metrics (prommon.Module takes
			// the *prometheus.Registry), the HTTP metrics and the Go
			// runtime's; /metrics serves it (the Gatherer).
			fx.Annotate(newRegistry, fx.As(fx.Self()), fx.As(new(prometheus.Gatherer))),
			NewService,
			NewHandlers,
			routes,
		),
	)
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// routes maps the API onto the handlers, with /healthz (readiness: the
// database answers), /livez (liveness: the process answers) and /metrics.
func routes(h *Handlers, engine *dbfx.Engine, reg *prometheus.Registry) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /lists", h.createList)
	mux.HandleFunc("GET /lists", h.listLists)
	mux.HandleFunc("GET /lists/{id}", h.getList)
	mux.HandleFunc("POST /todos", h.createTodo)
	mux.HandleFunc("GET /todos", h.listTodos)
	mux.HandleFunc("GET /todos/{id}", h.getTodo)
	mux.HandleFunc("PUT /todos/{id}", h.updateTodo)
	mux.HandleFunc("DELETE /todos/{id}", h.deleteTodo)
	mux.HandleFunc("POST /todos/{id}/move", h.moveTodo)
	mux.Handle("GET /healthz", dbfx.HealthHandler(engine))
	mux.Handle("GET /livez", dbfx.LiveHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return instrument(reg, mux)
}

// instrument times every request into
// http_server_request_duration_seconds{method,route,code}; route is the
// ServeMux pattern that matched, so the label has few values.
func instrument(reg prometheus.Registerer, next *http.ServeMux) (http.Handler, error) {
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP requests, by route pattern and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route", "code"})
	if err := reg.Register(hist); err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begun := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r) // sets r.Pattern
		method, route := r.Method, r.Pattern
		if route == "" { // the method is the client's: keep it out of the labels
			method, route = "other", "unmatched"
		}
		hist.WithLabelValues(method, route, strconv.Itoa(sw.code)).Observe(time.Since(begun).Seconds())
	}), nil
}

// statusWriter records the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
