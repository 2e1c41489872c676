package dbfx

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/monitor"
)

// Status is an engine's health.
type Status string

const (
	StatusOK       Status = "ok"       // the database answers and the pool has room
	StatusDegraded Status = "degraded" // the database answers, but callers queue for a connection
	StatusDown     Status = "down"     // the database does not answer
)

// Health is the result of one health check.
type Health struct {
	Status  Status        `json:"status"`
	Latency time.Duration `json:"-"`
	Error   string        `json:"error,omitempty"` // why it is down; never a password
	Pool    Stats         `json:"pool"`
	// Replicas, by host, as their last background check found them. A
	// replica down makes the engine degraded: the primary serves its reads.
	Replicas map[string]ReplicaHealth `json:"replicas,omitempty"`
}

// ReplicaHealth is the state of one read replica.
type ReplicaHealth struct {
	Status Status        `json:"status"`
	Lag    time.Duration `json:"-"` // how far it is behind the primary
	Error  string        `json:"error,omitempty"`
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
func (e *Engine) Health(ctx context.Context) Health {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, HealthTimeout)
		defer cancel()
	}
	h := Health{Pool: e.Stats()}
	select {
	case <-e.closed:
		h.Status, h.Error = StatusDown, "engine closed"
		return h
	default:
	}
	switch e.state.Load() {
	case stateNew:
		h.Status, h.Error = StatusDown, "engine not started"
		return h
	case stateFailed:
		h.Status, h.Error = StatusDown, "engine failed to start"
		return h
	}
	pinger := e.health
	if pinger == nil {
		pinger = e.db.DB
	}
	begun := time.Now()
	err := pinger.PingContext(ctx)
	h.Latency = time.Since(begun)
	exhausted := h.Pool.InUse >= h.Pool.MaxOpen && h.Pool.Waiting > 0
	switch {
	case err == nil && exhausted, err != nil && e.health == nil && h.Pool.InUse >= h.Pool.MaxOpen:
		h.Status = StatusDegraded
	case err == nil:
		h.Status = StatusOK
	default:
		h.Status, h.Error = StatusDown, e.r.redact(err.Error())
	}
	if e.replicas != nil {
		h.Replicas = e.replicas.health()
		for _, r := range h.Replicas {
			if r.Status != StatusOK && h.Status == StatusOK {
				h.Status = StatusDegraded
			}
		}
	}
	return h
}

// HealthHandler serves the health of the engines as JSON:
// {"status": ..., "engines": {name: Health}}. The status is the worst of
// the engines'. It answers 503 only when an engine cannot reach its
// database: an exhausted pool is "degraded" and still 200, so readiness
// does not flap under load.
func HealthHandler(engines ...*Engine) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
				if h.Status == StatusDown || (h.Status == StatusDegraded && res.Status == StatusOK) {
					res.Status = h.Status
				}
			}()
		}
		wg.Wait()
		code := http.StatusOK
		if res.Status == StatusDown {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(res)
	})
}
