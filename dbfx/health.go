package dbfx

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// Status is an engine's health.
type Status string

const (
	StatusOK       Status = "ok"       // the database answers and the pool has room
	StatusDegraded Status = "degraded" // the database answers, but callers queue for a connection (a replica may be down)
	StatusDown     Status = "down"     // the database does not answer
	// StatusStarting: the engine has not started yet (before its OnStart,
	// or while its start connects and runs its startup steps such as
	// migrations); it is not ready, and does not touch the database.
	StatusStarting Status = "starting"
)

// ErrDown: Check found the engine down, or not started yet. Matched with
// errors.Is.
var ErrDown = errors.New("dbfx: database down")

// Health is the result of one health check. Its JSON (what HealthHandler
// serves) holds the status, the reason, the latency, the pool's figures
// and the replicas' status and lag: never a driver's error text or an
// address, which whoever can reach the handler could read. Those go to
// the engine's log.
type Health struct {
	Status Status `json:"status"`
	// Reason says why it is down or starting, in enginekit's words:
	// "engine not started", "engine starting", "engine failed to start",
	// "engine closed" or "the database does not answer".
	Reason  string        `json:"reason,omitempty"`
	Latency time.Duration `json:"-"`
	// Error says why it is down as the driver said it (the password
	// redacted); Reason before the start and after the close. Not in the
	// JSON: a failed check is logged with it (at warn, once until it
	// changes or the database answers again).
	Error string `json:"-"`
	Pool  Stats  `json:"pool"`
	// Replicas, in the order of Config.Replicas, as their last background
	// check found them. A replica down makes the engine degraded: the
	// primary serves its reads.
	Replicas []ReplicaHealth `json:"replicas,omitempty"`
}

// ReplicaHealth is the state of one read replica.
type ReplicaHealth struct {
	Host   string        `json:"-"`      // where it is (never its password); not in the JSON
	Status Status        `json:"status"` // degraded: lagging
	Lag    time.Duration `json:"-"`      // how far it is behind the primary (see Config.MaxReplicaLag)
	// Lagging: its lag exceeds Config.MaxReplicaLag, so it serves no reads
	// (status degraded) until a check finds it caught up.
	Lagging bool   `json:"lagging,omitempty"`
	Error   string `json:"-"` // why it is down or lagging; not in the JSON (the engine's log has it)
}

// MarshalJSON writes Lag as a Go duration string ("1.5s").
func (h ReplicaHealth) MarshalJSON() ([]byte, error) {
	type plain ReplicaHealth
	return json.Marshal(struct {
		plain
		Lag string `json:"lag"`
	}{plain(h), h.Lag.String()})
}

// MarshalJSON writes Latency as a Go duration string ("1.2ms").
func (h Health) MarshalJSON() ([]byte, error) {
	type plain Health
	return json.Marshal(struct {
		plain
		Latency string `json:"latency"`
	}{plain(h), h.Latency.String()})
}

// Stats are the figures of an engine's pools (the writer and, on SQLite,
// the readers) and scopes.
type Stats = monitor.PoolStats

// Stats returns the engine's figures. It never blocks on the pool.
func (e *Engine) Stats() Stats {
	var s Stats
	for _, db := range []*sqlx.DB{e.db, e.reader} {
		if db != nil {
			s.AddPool(db.Stats())
		}
	}
	m := e.sessions.Stats()
	s.Waiting, s.AcquireTimeouts, s.Scopes = m.Waiting, m.AcquireTimeouts, m.Active
	for _, w := range e.wrapped {
		ws := w.Stats()
		s.Leaks += ws.Leaks
		s.MaxLifetimeClosed += ws.Expired
	}
	return s
}

// HealthTimeout bounds a health check whose ctx has no deadline.
const HealthTimeout = 5 * time.Second

// Health checks that the database answers and reports the pool's figures.
// It answers within ctx (HealthTimeout when ctx has no deadline) even when
// every pool connection is busy: the check runs on a connection of its own,
// kept apart from the pool. (For SQLite in memory, where one connection is
// the whole database, it pings through the pool; a ping that cannot get the
// busy connection reports degraded, not down.) Before the engine's start,
// and after a start that failed, it reports down without connecting.
//
// The status is degraded when callers wait for a connection of a pool that
// has none free: the pool of a PostgreSQL or MySQL engine, SQLite's single
// writer or its readers (each pool on its own: a writer held with callers
// waiting is degraded however many readers are free), or when a replica
// is down or lags past Config.MaxReplicaLag. A check that finds the database down logs the driver's error
// at warn on the engine's logger, once until the error changes or the
// database answers again (logged at info).
func (e *Engine) Health(ctx context.Context) Health {
	h, _ := e.check(ctx)
	return h
}

// Check is Health for probe libraries: nil when the engine is ok or
// degraded (it answers; degraded must not fail a readiness probe under
// load), an error matching ErrDown when it is down or starting (then
// session.ErrNotStarted too). The error's text names
// the engine and says why, without the driver's error (a probe library
// may show it to whoever reaches its endpoint): that is in the engine's
// log, and errors.Is and errors.As find it in the error.
func (e *Engine) Check(ctx context.Context) error {
	h, cause := e.check(ctx)
	switch h.Status {
	case StatusOK, StatusDegraded:
		return nil
	case StatusStarting:
		cause = session.ErrNotStarted
	}
	reason := h.Reason
	if cause != nil && h.Status == StatusDown {
		reason += " (the engine's log has the driver's error)"
	}
	return &downError{msg: fmt.Sprintf("%v: engine %q: %s", ErrDown, e.Name(), reason), cause: cause}
}

// downError is Check's error: it matches ErrDown and the driver's error,
// whose text it does not show.
type downError struct {
	msg   string
	cause error
}

func (e *downError) Error() string { return e.msg }
func (e *downError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrDown}
	}
	return []error{ErrDown, e.cause}
}

// check is Health, with the error of the ping when the database did not
// answer.
func (e *Engine) check(ctx context.Context) (Health, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, HealthTimeout)
		defer cancel()
	}
	h := Health{Pool: e.Stats()}
	select {
	case <-e.closed:
		h.Status, h.Reason = StatusDown, "engine closed"
		h.Error = h.Reason
		return h, nil
	default:
	}
	switch e.state.Load() {
	case stateNew:
		h.Status, h.Reason = StatusStarting, "engine not started"
		h.Error = h.Reason
		return h, nil
	case stateStarting:
		h.Status, h.Reason = StatusStarting, "engine starting"
		h.Error = h.Reason
		return h, nil
	case stateFailed:
		h.Status, h.Reason = StatusDown, "engine failed to start"
		h.Error = h.Reason
		return h, nil
	}
	pinger := e.health
	if pinger == nil {
		pinger = e.db.DB
	}
	begun := time.Now()
	err := pinger.PingContext(ctx)
	h.Latency = time.Since(begun)
	// Each pool on its own: the figures of SQLite's writer summed with its
	// readers' hide a writer that is the only one and held.
	writerFull := full(e.db.Stats())
	exhausted := (writerFull || e.reader != nil && full(e.reader.Stats())) && h.Pool.Waiting > 0
	switch {
	case err == nil && exhausted, err != nil && e.health == nil && writerFull:
		h.Status = StatusDegraded
		err = nil
	case err == nil:
		h.Status = StatusOK
	default:
		h.Status, h.Reason, h.Error = StatusDown, "the database does not answer", e.r.redact(err.Error())
	}
	e.logHealth(err, h.Error)
	if e.replicas != nil {
		h.Replicas = e.replicas.health()
		for _, r := range h.Replicas {
			if r.Status != StatusOK && h.Status == StatusOK {
				h.Status = StatusDegraded
			}
		}
	}
	return h, err
}

// full reports whether every connection a pool may open is in use.
func full(s sql.DBStats) bool {
	return s.MaxOpenConnections > 0 && s.InUse >= s.MaxOpenConnections
}

// healthLog is what the engine's health checks last logged: the error of
// a database found down, nil when it answers.
type healthLog struct{ down atomic.Pointer[string] }

// logHealth logs a database found down (err, its text redacted in msg) at
// warn, unless the last check logged the same, and one that answers again
// at info.
func (e *Engine) logHealth(err error, msg string) {
	if err == nil {
		if e.healthLog.down.Swap(nil) != nil {
			e.log.Info("health check: the database answers again", zap.String("driver", e.Driver()),
				zap.String("host", e.r.Host))
		}
		return
	}
	if prev := e.healthLog.down.Swap(&msg); prev == nil || *prev != msg {
		e.log.Warn("health check: the database does not answer", zap.String("driver", e.Driver()),
			zap.String("host", e.r.Host), zap.String("error", msg))
	}
}

// HealthHandler serves the health of the engines as JSON to GET and HEAD
// (other methods get 405 with an Allow header):
// {"status": ..., "engines": {name: Health}}. The status is the worst of
// the engines' (down, then starting, then degraded, then ok). It answers
// 503 when an engine cannot reach its database, and "starting" with 503
// before an engine's start has completed (before the app's OnStart hooks
// ran, and while its start connects and migrates): an exhausted pool is
// "degraded" and still 200, so readiness does not flap under load. The JSON shows statuses, reasons in
// enginekit's words, latencies and pool figures, never a driver's error
// text or an address: a check that fails logs them on its engine's logger. It checks the database: for a liveness
// probe, which must not fail when the database does, use LiveHandler.
func HealthHandler(engines ...*Engine) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !getOrHead(w, r) {
			return
		}
		res := struct {
			Status  Status            `json:"status"`
			Engines map[string]Health `json:"engines"`
		}{Status: StatusOK, Engines: make(map[string]Health, len(engines))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, e := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := e.Health(r.Context())
				mu.Lock()
				defer mu.Unlock()
				res.Engines[e.Name()] = h
				if severity[h.Status] > severity[res.Status] {
					res.Status = h.Status
				}
			}()
		}
		wg.Wait()
		code := http.StatusOK
		if res.Status == StatusDown || res.Status == StatusStarting {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, r, code, res)
	})
}

// severity orders the statuses for HealthHandler: the worst wins.
var severity = map[Status]int{StatusOK: 0, StatusDegraded: 1, StatusStarting: 2, StatusDown: 3}

// LiveHandler serves a liveness probe: 200 {"status":"ok"} to GET and
// HEAD (other methods get 405 with an Allow header), without touching any
// database. A database that is down must not get the process restarted:
// readiness (HealthHandler) takes it out of service instead.
func LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if getOrHead(w, r) {
			writeJSON(w, r, http.StatusOK, struct {
				Status Status `json:"status"`
			}{StatusOK})
		}
	})
}

// getOrHead answers 405 with an Allow header to a request whose method is
// neither GET nor HEAD, and reports whether it was one of them.
func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed: GET or HEAD", http.StatusMethodNotAllowed)
	return false
}

// writeJSON answers v as JSON with code; to HEAD, the headers only.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(v)
	}
}
