package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/monitor"
)

// Manager opens session and transaction scopes on one database and carries
// them through context.Context. It is safe for use by many goroutines.
type Manager struct {
	w, r  *sqlx.DB // writer pool; reader pool for read-only scopes (nil: the writer)
	d     *dialect.Dialect
	cfg   config
	pool  poolQuerier // runs statements as they are
	ppool poolQuerier // runs statements prepared (the statement cache)
	stmts *stmtCache  // nil when off
	bind  binder
	key   scopeKey
	kill  context.Context // cancelled when Close gives up waiting
	abort context.CancelCauseFunc

	tracer  monitor.TxTracer    // the monitor, when it traces scopes
	poolMon monitor.PoolMonitor // the monitor, when it takes pool events

	mu     sync.Mutex
	closed bool
	active int           // scopes in flight
	idle   chan struct{} // closed once closed and active == 0

	waiting  atomic.Int64
	timeouts atomic.Int64
}

// errClosing is the cause of a scope cut short by Close.
var errClosing = fmt.Errorf("%w while the scope ran: %w", ErrClosed, context.Canceled)

// New returns a Manager over db, the writer pool, whose driver WithDriver
// names: New(db, session.WithDriver(postgres.Driver())). db's driver name
// (which sqlx reads for its placeholders) must be the real one: postgres,
// mysql or sqlite3. dbfx.Engine.Sessions needs none of this.
//
// The Manager is started: its scopes and statements reach the pool from
// the start (unless WithGate holds them back, as an engine's Manager is
// held back with ErrNotStarted until the engine starts).
//
// A pool opened by hand lacks the connection wrapper that dbfx puts under
// its pools: errors met while rows are read (rows.Err, a Row's Scan) are
// then seen by the scope only when the database itself refuses what
// follows, as PostgreSQL does. On MySQL, a deadlock met that way and
// dropped by fn is not seen.
func New(db *sqlx.DB, opts ...Option) (*Manager, error) {
	if db == nil {
		return nil, errors.New("session: New needs a *sqlx.DB")
	}
	cfg := config{retry: DefaultRetryPolicy()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.driver == nil || cfg.driver.Dialect() == nil {
		return nil, errors.New("session: New needs WithDriver naming the pool's driver, e.g. WithDriver(postgres.Driver()) from github.com/enginekit/enginekit/dbfx/postgres")
	}
	d := cfg.driver.Dialect()
	if want := bindTypeOf(d); sqlx.BindType(db.DriverName()) != want {
		return nil, fmt.Errorf("session: the pool's driver name %q does not match the %s driver given: open it with sqlx.NewDb(db, %q)", db.DriverName(), d, d.Name())
	}
	m := &Manager{w: db, r: cfg.reader, d: d, cfg: cfg, idle: make(chan struct{})}
	m.tracer, _ = cfg.mon.(monitor.TxTracer)
	m.poolMon, _ = cfg.mon.(monitor.PoolMonitor)
	m.bind = binder{driver: db.DriverName(), bindType: sqlx.BindType(db.DriverName())}
	m.pool = poolQuerier{binder: m.bind, m: m, db: db, reader: cfg.reader}
	m.ppool = poolQuerier{binder: m.bind, m: m, db: db, reader: cfg.reader, prep: true}
	switch size := cfg.stmtCache; {
	case size == 0:
		m.stmts = newStmtCache(DefaultStatementCache)
	case size > 0:
		m.stmts = newStmtCache(size)
	}
	if m.stmts == nil {
		m.cfg.prepareQ = false
	}
	m.key = scopeKey{m}
	m.kill, m.abort = context.WithCancelCause(context.Background())
	return m, nil
}

// bindTypeOf is the sqlx bind type of d's placeholders.
func bindTypeOf(d *dialect.Dialect) int {
	if d.Placeholder(1) == "?" {
		return sqlx.QUESTION
	}
	return sqlx.DOLLAR
}

// Dialect is the dialect of the Manager's driver (for repo).
func (m *Manager) Dialect() *dialect.Dialect { return m.d }

// DriverName is the database/sql driver name of the Manager's pools.
func (m *Manager) DriverName() string { return m.bind.driver }

// Rebind turns a query written with ? placeholders into the driver's
// form ($1, $2 ... on PostgreSQL), so that SQL text can be prepared once.
func (m *Manager) Rebind(query string) string { return m.bind.Rebind(query) }

// Q returns the Querier of the scope in ctx (its transaction or pinned
// connection), or the pool outside any scope of this Manager. Through the
// context of a scope that has ended, every statement fails with
// ErrScopeEnded: it never falls back to the pool. Its statements are sent
// as they are, unless the Manager has WithPreparedQueries: then they run
// as Prepared's do.
func (m *Manager) Q(ctx context.Context) Querier {
	if m.cfg.prepareQ {
		return m.Prepared(ctx)
	}
	if s := m.current(ctx); s != nil && (s.conn != nil || s.ended.Load()) {
		return &s.q
	}
	return &m.pool
}

// Prepared is Q for SQL whose text is fixed, such as the statements a
// repository builds once: a statement with arguments runs as a prepared
// statement, prepared once per text and kept in the Manager's statement
// cache (see WithStatementCache), which saves a round trip on PostgreSQL
// and MySQL and the parsing on SQLite. The first caller of a text prepares
// it while concurrent ones wait for it; database/sql prepares it again, as
// needed, on each connection that runs it.
//
// Outside any scope it runs on the pool. database/sql takes the connection
// of a prepared statement itself, so with an acquire timeout Exec, Get and
// Select run prepared while the pool has a connection free or room to open
// one, and otherwise wait for a connection under the timeout and run the
// statement as it is. In a transaction it is bound to
// the transaction's connection (Tx.StmtContext), so it sees the
// transaction's writes. In a Conn scope without a transaction, statements
// are sent as they are: database/sql binds prepared statements to
// transactions, not to pinned connections. A statement without arguments,
// or with more than one statement in its text, is always sent as it is.
//
// A prepared statement that the database says is gone or stale (a DDL
// changed its result's columns; PostgreSQL 26000 and 0A000 "cached plan
// must not change result type", MySQL 1243 and 1615) is dropped from the
// cache and prepared anew: outside a transaction, and in a MySQL one, the
// statement runs again at once; a PostgreSQL transaction it aborted is run
// again by its owning scope, like a retryable failure (see Retry). With
// the cache off (WithStatementCache(-1)) Prepared is Q.
func (m *Manager) Prepared(ctx context.Context) Querier {
	if s := m.current(ctx); s != nil && (s.conn != nil || s.ended.Load()) {
		if m.stmts == nil {
			return &s.q
		}
		return &s.pq
	}
	if m.stmts == nil {
		return &m.pool
	}
	return &m.ppool
}

// InTx reports whether ctx carries a live transaction of this Manager.
func (m *Manager) InTx(ctx context.Context) bool {
	s := m.current(ctx)
	return s != nil && s.tx != nil && !s.ended.Load()
}

// InWriteTx reports whether ctx carries a live read-write transaction of
// this Manager: InTx, and not in a ReadOnly scope of its own (a ReadOnly
// scope that joined a write transaction is in one).
func (m *Manager) InWriteTx(ctx context.Context) bool {
	s := m.current(ctx)
	return s != nil && s.tx != nil && !s.ended.Load() && s.access == readWrite
}

// Stats are the Manager's own figures; the pools' are in sql.DBStats.
type Stats struct {
	Active          int   // scopes in flight
	Waiting         int64 // callers taking a connection from a pool right now
	AcquireTimeouts int64 // ErrAcquireTimeout returned so far
	Statements      int   // prepared statements in the statement cache
}

// Stats returns the Manager's figures.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	active := m.active
	m.mu.Unlock()
	st := Stats{Active: active, Waiting: m.waiting.Load(), AcquireTimeouts: m.timeouts.Load()}
	if m.stmts != nil {
		st.Statements = m.stmts.len()
	}
	return st
}

// Close refuses new scopes (they return ErrClosed) and waits for those in
// flight; scopes these open inside them may still start, so that they can
// finish their work. If ctx ends first, it cancels their contexts, so they
// roll back, and returns the ctx error (nil when nothing was in flight).
// Then it closes the statement cache's prepared statements (each once no
// statement runs on it); statements sent afterwards run unprepared. It
// does not close the pools: their owner does. Close may be called more
// than once.
func (m *Manager) Close(ctx context.Context) error {
	if m.stmts != nil {
		defer m.stmts.close()
	}
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		if m.active == 0 {
			close(m.idle)
		}
	}
	m.mu.Unlock()
	select {
	case <-m.idle: // nothing in flight: done, even when ctx has ended
		return nil
	default:
	}
	select {
	case <-m.idle:
		return nil
	case <-ctx.Done():
		m.abort(errClosing)
		return ctx.Err()
	}
}

// enter counts in a scope that takes a connection of its own, opened
// inside parent (nil: an outermost one). After Close only an inner one may
// start: one opened inside a scope still in flight, which Close lets
// finish. An outermost one is refused by the gate (WithGate) as well.
func (m *Manager) enter(parent *scope) error {
	var shut error
	if parent == nil {
		shut = m.opened() // outside the lock: the gate is the caller's code
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if parent == nil {
		if m.closed {
			return ErrClosed
		}
		if shut != nil {
			return shut
		}
	}
	m.active++
	return nil
}

// opened asks the gate (WithGate), if any, whether the Manager's database
// may be reached yet.
func (m *Manager) opened() error {
	if m.cfg.gate == nil {
		return nil
	}
	return m.cfg.gate()
}

func (m *Manager) leave() {
	m.mu.Lock()
	m.active--
	if m.closed && m.active == 0 {
		close(m.idle)
	}
	m.mu.Unlock()
}
