package monitor

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"time"
)

// Monitor observes the statements and transactions of one or more engines.
// Its methods are called synchronously on the goroutine that ran the
// statement, possibly from many goroutines at once: they must be safe for
// concurrent use and quick, and must not keep the events' Args.
type Monitor interface {
	// Query is called after every statement, BEGIN, COMMIT and ROLLBACK
	// sent to the database.
	Query(ctx context.Context, e QueryEvent)
	// Tx is called when a transaction scope begins, ends or is retried.
	Tx(ctx context.Context, e TxEvent)
}

// Op is the kind of a statement.
type Op string

// The operations a QueryEvent reports.
const (
	OpExec     Op = "exec"     // a statement run for its effect
	OpQuery    Op = "query"    // a statement that returns rows
	OpPrepare  Op = "prepare"  // preparing a statement
	OpBegin    Op = "begin"    // BEGIN
	OpCommit   Op = "commit"   // COMMIT
	OpRollback Op = "rollback" // ROLLBACK
)

// QueryEvent describes one statement sent to the database.
type QueryEvent struct {
	DB       string              // the engine's name
	Op       Op                  // what kind of statement
	SQL      string              // its text ("" for begin, commit and rollback)
	Args     []driver.NamedValue // its arguments: valid during the call only; never log them by default
	Duration time.Duration       // from sending it until its result (for a query: its first rows) came back
	Rows     int64               // rows affected by an exec; -1 when not known
	Err      error               // what the driver returned
	Slow     bool                // Duration reached the slow-query threshold
}

// TxKind is what happened to a transaction.
type TxKind string

// The kinds of TxEvent.
const (
	TxBegin    TxKind = "begin"    // the transaction began (or failed to)
	TxCommit   TxKind = "commit"   // it was committed (Err: the commit failed)
	TxRollback TxKind = "rollback" // it was rolled back
	TxRetry    TxKind = "retry"    // a failed attempt is to be run again
)

// TxEvent describes a transaction scope that owns its transaction.
type TxEvent struct {
	DB      string // the engine's name
	Label   string // the scope's label (session.Label), "" when unnamed
	Kind    TxKind
	Attempt int // 1 for the first run, 2 for the first retry...
	// Duration is BEGIN's for begin, the whole attempt's (from BEGIN) for
	// commit and rollback, and zero for retry.
	Duration time.Duration
	Err      error // begin, commit or rollback failed; for retry, why the attempt failed
}

// QueryStart describes a statement about to be sent.
type QueryStart struct {
	DB   string              // the engine's name
	Op   Op                  // what kind of statement
	SQL  string              // its text ("" for begin, commit and rollback)
	Args []driver.NamedValue // its arguments: valid during the call only
}

// QueryTracer is implemented by monitors that act when a statement starts,
// such as a tracer that opens a span: the ctx QueryStart returns is the
// one the Query call that ends the statement receives, so what it opened
// is closed there without a map or a lock.
type QueryTracer interface {
	Monitor
	QueryStart(ctx context.Context, e QueryStart) context.Context
}

// TxStart describes a transaction scope about to begin a transaction.
type TxStart struct {
	DB      string // the engine's name
	Label   string // the scope's label (session.Label), "" when unnamed
	Attempt int    // 1 for the first run, 2 for the first retry...
}

// TxTracer is implemented by monitors that act when a transaction scope
// begins an attempt: the ctx TxStart returns is the ctx of the attempt,
// so its statements' QueryStart calls see what TxStart put there (a
// parent span), and it is the ctx of the Tx call that reports the
// attempt's commit or rollback.
type TxTracer interface {
	Monitor
	TxStart(ctx context.Context, e TxStart) context.Context
}

// PoolKind is what happened in a connection pool.
type PoolKind string

// The kinds of PoolEvent. More may be added: a monitor ignores those it
// does not know.
const (
	// PoolConnected: a connection was opened; Duration is the connect's.
	PoolConnected PoolKind = "connected"
	// PoolConnectFailed: opening a connection failed; Err says why (the
	// driver's error), Duration is the attempt's.
	PoolConnectFailed PoolKind = "connect_failed"
	// PoolAcquireTimeout: a caller waited AcquireTimeout for a connection
	// in vain; Duration is the wait (zero when it failed at once, the
	// enclosing scopes holding every connection the pool may open).
	PoolAcquireTimeout PoolKind = "acquire_timeout"
	// PoolDeadConn: a pooled connection was found dead when taken from
	// the pool and discarded before the caller sent anything on it (the
	// caller got another); Err says why it was judged dead, Duration is
	// the liveness check's, or zero.
	PoolDeadConn PoolKind = "dead_conn"
	// PoolCancel: a statement whose ctx ended was stopped on the server
	// by enginekit (MySQL's KILL QUERY; PostgreSQL's cancel request,
	// which lib/pq sends itself, is not reported); Err is set when the
	// cancel itself failed or was not attempted for safety (the statement
	// may still be running), Duration is the cancel's.
	PoolCancel PoolKind = "cancel"
)

// PoolEvent describes something that happened in an engine's pools.
type PoolEvent struct {
	DB       string // the engine's name
	Kind     PoolKind
	Duration time.Duration // how long the connect, the wait, the liveness check or the cancel took
	Err      error         // why a connect failed, why a connection was judged dead, why a cancel failed
}

// PoolMonitor is implemented by monitors that want pool events.
type PoolMonitor interface {
	Pool(ctx context.Context, e PoolEvent)
}

// LeakEvent reports a connection held longer than the leak threshold.
type LeakEvent struct {
	DB    string        // the engine's name
	Held  time.Duration // how long it had been held when reported
	Stack string        // the goroutine stack that took the connection
}

// LeakMonitor is implemented by monitors that want leak reports. A leak is
// reported once, from a goroutine of its own, while the connection is
// still held.
type LeakMonitor interface {
	Leak(e LeakEvent)
}

// PoolStats are the figures of an engine's connection pools and scopes at
// one moment (dbfx.Stats is this type). A figure is added here, and in
// the one function of dbfx that fills them in.
type PoolStats struct {
	MaxOpen           int           `json:"max_open"`             // connections the pools may open (0: unlimited)
	Open              int           `json:"open"`                 // connections open, in use or idle
	InUse             int           `json:"in_use"`               // connections checked out
	Idle              int           `json:"idle"`                 // connections open and free
	Waiting           int64         `json:"waiting"`              // callers waiting for a connection right now
	WaitCount         int64         `json:"wait_count"`           // waits for a connection so far
	WaitDuration      time.Duration `json:"wait_duration_ns"`     // their total time
	AcquireTimeouts   int64         `json:"acquire_timeouts"`     // waits that ended in an acquire timeout so far
	MaxIdleClosed     int64         `json:"max_idle_closed"`      // connections closed because the idle pool was full
	MaxIdleTimeClosed int64         `json:"max_idle_time_closed"` // connections closed after ConnMaxIdleTime unused
	MaxLifetimeClosed int64         `json:"max_lifetime_closed"`  // connections closed at the end of their lifetime
	Leaks             int64         `json:"leaks"`                // connections reported as leaked so far
	Scopes            int           `json:"scopes"`               // session scopes in flight
}

// AddPool adds the figures of one database/sql pool to p.
func (p *PoolStats) AddPool(s sql.DBStats) {
	p.MaxOpen += s.MaxOpenConnections
	p.Open += s.OpenConnections
	p.InUse += s.InUse
	p.Idle += s.Idle
	p.WaitCount += s.WaitCount
	p.WaitDuration += s.WaitDuration
	p.MaxIdleClosed += s.MaxIdleClosed
	p.MaxIdleTimeClosed += s.MaxIdleTimeClosed
	p.MaxLifetimeClosed += s.MaxLifetimeClosed
}

// Add adds the figures of o to p.
func (p *PoolStats) Add(o PoolStats) {
	p.MaxOpen += o.MaxOpen
	p.Open += o.Open
	p.InUse += o.InUse
	p.Idle += o.Idle
	p.Waiting += o.Waiting
	p.WaitCount += o.WaitCount
	p.WaitDuration += o.WaitDuration
	p.AcquireTimeouts += o.AcquireTimeouts
	p.MaxIdleClosed += o.MaxIdleClosed
	p.MaxIdleTimeClosed += o.MaxIdleTimeClosed
	p.MaxLifetimeClosed += o.MaxLifetimeClosed
	p.Leaks += o.Leaks
	p.Scopes += o.Scopes
}

// StatsSources keeps the figure functions a StatsSink is handed, for it to
// read when it publishes: AddStatsSource is Add. The zero value is ready;
// it is safe for use by many goroutines.
type StatsSources struct {
	mu      sync.Mutex
	sources map[*statsSource]struct{}
}

type statsSource struct {
	name  string
	stats func() PoolStats
}

// Add keeps stats under name until remove is called (more than once is
// fine).
func (s *StatsSources) Add(name string, stats func() PoolStats) (remove func()) {
	src := &statsSource{name: name, stats: stats}
	s.mu.Lock()
	if s.sources == nil {
		s.sources = map[*statsSource]struct{}{}
	}
	s.sources[src] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.sources, src)
		s.mu.Unlock()
	}
}

// Sum reads every source and returns their figures summed by name (an
// engine with replicas, or two engines of one name, count once).
func (s *StatsSources) Sum() map[string]PoolStats {
	s.mu.Lock()
	srcs := make([]*statsSource, 0, len(s.sources))
	for src := range s.sources {
		srcs = append(srcs, src)
	}
	s.mu.Unlock()
	byName := make(map[string]PoolStats, len(srcs))
	for _, src := range srcs {
		st := src.stats() // outside the lock: it may take the pool's
		t := byName[src.name]
		t.Add(st)
		byName[src.name] = t
	}
	return byName
}

// StatsSink is implemented by monitors that publish pool figures. An engine
// whose monitor implements it hands over, when it opens, a function that
// returns its current figures; the monitor calls it when it needs them (a
// Prometheus scrape) until remove is called, when the engine closes.
// remove may be called more than once.
type StatsSink interface {
	AddStatsSource(name string, stats func() PoolStats) (remove func())
}

// System is a database system, named as OpenTelemetry's db.system.name
// names it.
type System string

// The systems of enginekit's drivers.
const (
	PostgreSQL System = "postgresql"
	MySQL      System = "mysql" // MySQL and MariaDB
	SQLite     System = "sqlite"
)

// EngineInfo describes an engine to the monitors that observe it.
type EngineInfo struct {
	DB     string // the engine's name, as its events carry it
	System System // the database it runs on
	// Namespace is the database's name on its server (PostgreSQL's and
	// MySQL's database, SQLite's file), as OpenTelemetry's db.namespace;
	// "" when not known.
	Namespace string
	// ServerAddress and ServerPort are where the server is (a host name,
	// an IP address or a Unix socket's path; 0 when there is no port),
	// as OpenTelemetry's server.address and server.port; "" for SQLite.
	ServerAddress string
	ServerPort    int
}

// EngineMonitor is implemented by monitors that want to know the engines
// whose events they get: an engine calls AddEngine when it opens, before
// any of its events, and remove when it closes. The zap monitor reads each
// engine's SQL as its database does (NormalizeSQL). remove may be called
// more than once.
type EngineMonitor interface {
	AddEngine(e EngineInfo) (remove func())
}

// Nop returns the monitor that does nothing. An engine with it (and no
// leak threshold) runs on its driver unwrapped.
func Nop() Monitor { return nop{} }

type nop struct{}

func (nop) Query(context.Context, QueryEvent) {}
func (nop) Tx(context.Context, TxEvent)       {}

// IsNop reports whether m observes nothing: nil, Nop, or a Multi of those.
func IsNop(m Monitor) bool {
	switch m.(type) {
	case nil, nop:
		return true
	}
	return false
}

// Multi returns a monitor that hands every event to each of ms in turn.
// It forwards QueryTracer, TxTracer, PoolMonitor, LeakMonitor, StatsSink
// and EngineMonitor to those of ms that implement them (a start hook's ctx goes
// from one to the next, in order). Nil and Nop monitors are dropped; with none left it is Nop, with
// one left it is that one.
func Multi(ms ...Monitor) Monitor {
	var keep multi
	for _, m := range ms {
		switch m := m.(type) {
		case nil, nop:
		case multi:
			keep = append(keep, m...)
		default:
			keep = append(keep, m)
		}
	}
	switch len(keep) {
	case 0:
		return nop{}
	case 1:
		return keep[0]
	}
	return keep
}

type multi []Monitor

var (
	_ StatsSink     = multi(nil)
	_ LeakMonitor   = multi(nil)
	_ QueryTracer   = multi(nil)
	_ TxTracer      = multi(nil)
	_ PoolMonitor   = multi(nil)
	_ EngineMonitor = multi(nil)
)

func (ms multi) QueryStart(ctx context.Context, e QueryStart) context.Context {
	for _, m := range ms {
		if t, ok := m.(QueryTracer); ok {
			ctx = t.QueryStart(ctx, e)
		}
	}
	return ctx
}

func (ms multi) TxStart(ctx context.Context, e TxStart) context.Context {
	for _, m := range ms {
		if t, ok := m.(TxTracer); ok {
			ctx = t.TxStart(ctx, e)
		}
	}
	return ctx
}

func (ms multi) Pool(ctx context.Context, e PoolEvent) {
	for _, m := range ms {
		if p, ok := m.(PoolMonitor); ok {
			p.Pool(ctx, e)
		}
	}
}

func (ms multi) Query(ctx context.Context, e QueryEvent) {
	for _, m := range ms {
		m.Query(ctx, e)
	}
}

func (ms multi) Tx(ctx context.Context, e TxEvent) {
	for _, m := range ms {
		m.Tx(ctx, e)
	}
}

func (ms multi) Leak(e LeakEvent) {
	for _, m := range ms {
		if l, ok := m.(LeakMonitor); ok {
			l.Leak(e)
		}
	}
}

func (ms multi) AddStatsSource(name string, stats func() PoolStats) func() {
	var removes []func()
	for _, m := range ms {
		if s, ok := m.(StatsSink); ok {
			removes = append(removes, s.AddStatsSource(name, stats))
		}
	}
	return func() {
		for _, r := range removes {
			r()
		}
	}
}

func (ms multi) AddEngine(e EngineInfo) func() {
	var removes []func()
	for _, m := range ms {
		if em, ok := m.(EngineMonitor); ok {
			removes = append(removes, em.AddEngine(e))
		}
	}
	return func() {
		for _, r := range removes {
			r()
		}
	}
}
