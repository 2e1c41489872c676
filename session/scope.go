package session

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/monitor"
)

// scope is one scope in a context: a pinned connection, the transaction
// begun on it, or a savepoint in that transaction. Scopes that join a
// transaction (Required, Mandatory, Supports) reuse the scope they join.
type scope struct {
	m         *Manager
	parent    *scope     // the enclosing scope of the same Manager
	conn      *sqlx.Conn // nil in a suspended scope (NotSupported)
	pool      *sqlx.DB   // conn's pool
	side      poolSide   // onReader: conn is from the reader pool or a replica
	ownsConn  bool
	tx        *txn   // nil outside a transaction
	savepoint string // set in a Nested scope
	access    access
	q, pq     scopeQuerier // statements as they are; prepared (Manager.Prepared)
	ended     atomic.Bool
	watch     txWatch // the owner's transaction, for monitor events

	own txn      // the transaction this scope begins, when it begins one (tx points here)
	ctx scopeCtx // the context its fn gets, when it owns its connection

	mu          sync.Mutex
	aborted     error // a Nested scope: a statement error aborted its savepoint
	failure     error // an inner scope failed: roll back (rollback-only)
	afterCommit []func(context.Context)
}

// txn is a physical transaction, shared by the scopes in it.
type txn struct {
	tx      *sqlx.Tx
	aborted atomic.Pointer[error] // the error that aborted the whole transaction
	seq     atomic.Int64          // savepoint names
	stmts   txStmts               // cached statements bound to it
}

func (t *txn) abort(err error) { t.aborted.CompareAndSwap(nil, &err) }

// scopeKey is the context key of one Manager's scopes: a scope of one
// database is never seen by another's Manager.
type scopeKey struct{ m *Manager }

// innermostTxKey finds the innermost transaction scope of any Manager.
type innermostTxKey struct{}

// scopeCtx carries a scope; one allocation answers both keys.
type scopeCtx struct {
	context.Context
	s *scope
}

func (c *scopeCtx) Value(key any) any {
	switch k := key.(type) {
	case scopeKey:
		if k.m == c.s.m {
			return c.s
		}
	case innermostTxKey:
		if c.s.tx != nil {
			return c.s
		}
		if c.s.conn == nil { // suspended: no transaction here
			return nil
		}
	}
	return c.Context.Value(key)
}

// current returns this Manager's innermost scope in ctx, or nil.
func (m *Manager) current(ctx context.Context) *scope {
	s, _ := ctx.Value(m.key).(*scope)
	return s
}

var errPanicked = errors.New("session: an inner scope panicked")

// access is what a scope may do: read and write (Tx), or only read
// (ReadOnly).
type access uint8

const (
	readWrite access = iota
	readOnly
)

// Tx runs fn in a transaction scope: by default it joins the transaction in
// ctx or begins one, commits when fn returns nil and rolls back otherwise.
// A transaction Tx begins is retried on retryable failures (see Retry).
// A panic in fn rolls back and goes on with the original value. When ctx is
// cancelled, the transaction rolls back and Tx returns the ctx error.
func (m *Manager) Tx(ctx context.Context, fn func(ctx context.Context) error, opts ...TxOption) error {
	return m.scope(ctx, fn, readWrite, opts)
}

// ReadOnly is Tx for a read-only transaction: a write in it fails with
// ErrReadOnly. Inside a write transaction it joins that transaction and
// sees its writes. On SQLite it runs on the query-only reader pool.
func (m *Manager) ReadOnly(ctx context.Context, fn func(ctx context.Context) error, opts ...TxOption) error {
	return m.scope(ctx, fn, readOnly, opts)
}

// Tx is Manager.Tx for a fn that returns a value.
func Tx[T any](ctx context.Context, m *Manager, fn func(ctx context.Context) (T, error), opts ...TxOption) (T, error) {
	var out T
	err := m.Tx(ctx, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	}, opts...)
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// ReadOnly is Manager.ReadOnly for a fn that returns a value.
func ReadOnly[T any](ctx context.Context, m *Manager, fn func(ctx context.Context) (T, error), opts ...TxOption) (T, error) {
	var out T
	err := m.ReadOnly(ctx, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	}, opts...)
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// AfterCommit registers fn to run once after the innermost transaction in
// ctx (of any Manager) commits for good, with the context its scope was
// opened with. It is dropped when that transaction rolls back. Outside any
// transaction fn runs at once.
func AfterCommit(ctx context.Context, fn func(ctx context.Context)) {
	s, _ := ctx.Value(innermostTxKey{}).(*scope)
	if s == nil || s.ended.Load() {
		fn(ctx)
		return
	}
	s.mu.Lock()
	s.afterCommit = append(s.afterCommit, fn)
	s.mu.Unlock()
}

// Conn runs fn with a connection pinned for its duration, without a
// transaction: session state (temporary tables, SET) holds across fn's
// statements. Inside another scope of this Manager it reuses its connection.
func (m *Manager) Conn(ctx context.Context, fn func(ctx context.Context) error) error {
	cur := m.current(ctx)
	if cur != nil && cur.ended.Load() {
		return ErrScopeEnded
	}
	if cur != nil && cur.conn != nil {
		return fn(ctx)
	}
	if err := m.enter(cur); err != nil {
		return err
	}
	defer m.leave()
	sctx, done := m.scopeContext(ctx, 0)
	defer done.end()
	conn, err := m.acquireFor(sctx, cur, m.w, onWriter)
	if err != nil {
		return ctxErr(sctx, err)
	}
	defer conn.Close()
	s := m.newScope(cur, conn)
	s.pool, s.ownsConn = m.w, true
	defer s.ended.Store(true)
	if err := fn(&scopeCtx{sctx, s}); err != nil {
		return ctxErr(sctx, err)
	}
	return nil
}

func (m *Manager) newScope(parent *scope, conn *sqlx.Conn) *scope {
	s := &scope{m: m, parent: parent, conn: conn}
	s.q = scopeQuerier{binder: m.bind, s: s}
	s.pq = scopeQuerier{binder: m.bind, s: s, prep: true}
	if parent != nil {
		s.pool = parent.pool
	}
	return s
}

// scopeContext derives the context of a scope that owns a connection: it
// ends with the scope (scopeEnd.end), after timeout, or when Close gives
// up waiting.
func (m *Manager) scopeContext(ctx context.Context, timeout time.Duration) (context.Context, scopeEnd) {
	sctx, cancel := context.WithCancelCause(ctx)
	e := scopeEnd{cancel: cancel, stop: context.AfterFunc(m.kill, func() { cancel(errClosing) })}
	if timeout <= 0 {
		return sctx, e
	}
	tctx, cancelTimeout := context.WithTimeout(sctx, timeout)
	e.cancelTimeout = cancelTimeout
	return tctx, e
}

// scopeEnd ends the context of a scope (see scopeContext).
type scopeEnd struct {
	cancel        context.CancelCauseFunc
	stop          func() bool
	cancelTimeout context.CancelFunc // nil: no timeout
}

func (e scopeEnd) end() {
	if e.cancelTimeout != nil {
		e.cancelTimeout()
	}
	e.stop()
	e.cancel(nil)
}

// ctxErr returns the cause of ctx's end when it has ended (not the
// sql.ErrTxDone or driver error its end provoked), else err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func (m *Manager) scope(ctx context.Context, fn func(context.Context) error, acc access, opts []TxOption) error {
	c := txConfig{retry: m.cfg.retry}
	if len(opts) > 0 {
		c = m.txConfig(opts) // apart: options escape what they are given
	}
	if err := m.d.CheckIsolation(c.isolation); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	cur := m.current(ctx)
	if cur != nil && cur.ended.Load() {
		return ErrScopeEnded
	}
	inTx := cur != nil && cur.tx != nil
	if c.timeout > 0 && cur != nil && !begins(c.mode, inTx) {
		// A scope that joins, nests in or suspends the current one has no
		// context of its own to bound: its deadline is set here.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	switch c.mode {
	case Required:
		if inTx {
			return cur.join(ctx, fn, acc)
		}
	case RequiresNew:
	case Nested:
		if inTx {
			return cur.nested(ctx, fn, acc)
		}
	case Mandatory:
		if !inTx {
			return ErrNoTransaction
		}
		return cur.join(ctx, fn, acc)
	case Supports:
		if inTx {
			return cur.join(ctx, fn, acc)
		}
		return m.plain(ctx, cur, fn, &c)
	case NotSupported:
		if !inTx {
			return m.plain(ctx, cur, fn, &c)
		}
		s := m.newScope(cur, nil) // suspends cur: Q(ctx) is the pool again
		defer s.ended.Store(true)
		return fn(&scopeCtx{ctx, s})
	case Never:
		if inTx {
			return ErrTransactionExists
		}
		return m.plain(ctx, cur, fn, &c)
	default:
		return fmt.Errorf("session: unknown propagation mode %d", c.mode)
	}
	return m.begin(ctx, cur, fn, acc, &c)
}

// txConfig is the configuration opts make.
func (m *Manager) txConfig(opts []TxOption) txConfig {
	c := txConfig{retry: m.cfg.retry}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// begins reports whether a scope of the given mode begins a transaction
// of its own, when the current scope has one (inTx) or not.
func begins(mode Mode, inTx bool) bool {
	return mode == RequiresNew || !inTx && (mode == Required || mode == Nested)
}

// plain runs fn without a transaction (Supports, NotSupported and Never
// outside one). An outermost one is a scope like any other: refused after
// Close, waited for and then cancelled by it, bounded by its Timeout.
func (m *Manager) plain(ctx context.Context, cur *scope, fn func(context.Context) error, c *txConfig) error {
	if cur != nil {
		return fn(ctx)
	}
	if err := m.enter(nil); err != nil {
		return err
	}
	defer m.leave()
	sctx, done := m.scopeContext(ctx, c.timeout)
	defer done.end()
	if err := fn(sctx); err != nil {
		return ctxErr(sctx, err)
	}
	return nil
}

// begin runs fn in a transaction of its own, retrying it per c.retry.
func (m *Manager) begin(ctx context.Context, parent *scope, fn func(context.Context) error, acc access, c *txConfig) error {
	if err := m.enter(parent); err != nil {
		return err
	}
	defer m.leave()
	for attempt := 1; ; attempt++ {
		callbacks, err := m.attempt(ctx, parent, fn, acc, c, attempt)
		if err == nil {
			for _, f := range callbacks {
				f(ctx)
			}
			return nil
		}
		if ctx.Err() != nil || !c.retryable(m.d, err, acc) {
			return err
		}
		if attempt >= c.retry.MaxAttempts {
			if attempt == 1 {
				return err
			}
			return &RetryError{Attempts: attempt, Err: err}
		}
		m.retried(ctx, c.label, attempt, err)
		if werr := m.backoff(ctx, c.retry, attempt); werr != nil {
			return fmt.Errorf("%w (after %d attempts, the last failed with: %w)", werr, attempt, err)
		}
	}
}

// maxBadBegins is how many times a scope takes another connection when
// BEGIN finds the one it took dead.
// The first such error gets the pool's older connections checked at
// checkout (see internal/connwrap), so one more is enough in practice.
const maxBadBegins = 2

// attempt runs fn once in a new transaction. It returns the callbacks
// registered with AfterCommit when the transaction committed.
func (m *Manager) attempt(ctx context.Context, parent *scope, fn func(context.Context) error, acc access, c *txConfig, attempt int) ([]func(context.Context), error) {
	sctx, done := m.scopeContext(ctx, c.timeout)
	defer done.end()
	if m.tracer != nil {
		sctx = m.tracer.TxStart(sctx, monitor.TxStart{DB: m.cfg.db, Label: c.label, Attempt: attempt})
	}
	s := m.newScope(parent, nil)
	s.access = acc
	if parent != nil && parent.conn != nil && c.mode != RequiresNew {
		s.conn, s.side = parent.conn, parent.side
	} else {
		pool := m.w
		if acc == readOnly {
			if r := m.readPool(ctx, c.isolation); r != nil {
				pool, s.side = r, onReader
			}
		}
		conn, err := m.acquireFor(sctx, parent, pool, s.side)
		if err != nil && s.side == onReader && m.r == nil && sctx.Err() == nil {
			// A replica that went down since its last check: the
			// primary serves this scope.
			pool, s.side = m.w, onWriter
			conn, err = m.acquireFor(sctx, parent, pool, onWriter)
		}
		if err != nil {
			return nil, ctxErr(sctx, err)
		}
		defer m.prepareMissed(ctx, s)     // after the connection is back in the pool
		defer func() { s.conn.Close() }() // the last one taken
		s.conn, s.pool, s.ownsConn = conn, pool, true
	}
	begun := time.Now()
	opts := &sql.TxOptions{Isolation: c.isolation, ReadOnly: acc == readOnly}
	tx, err := m.beginTx(sctx, s.conn, opts)
	for bad := 0; bad < maxBadBegins && s.ownsConn && err != nil && m.d.Classify(err).Has(dialect.ConnLost) && sctx.Err() == nil; bad++ {
		// BEGIN met a connection that died in the pool unseen (its server
		// restarted a moment ago). A BEGIN leaves nothing behind on a
		// connection that is gone, whether it reached the server or not:
		// another connection serves the scope, as database/sql does for
		// statements on its pool when nothing was sent. The dead one is
		// discarded.
		_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = s.conn.Close()
		conn, aerr := m.acquireFor(sctx, parent, s.pool, s.side)
		if aerr != nil {
			err = aerr
			break
		}
		s.conn = conn
		begun = time.Now()
		tx, err = m.beginTx(sctx, s.conn, opts)
	}
	s.watch = m.watchTx(sctx, c.label, attempt, begun, err)
	if err != nil {
		return nil, ctxErr(sctx, err)
	}
	defer tx.stop()
	if acc == readOnly && s.side == onWriter && m.d.Family() == dialect.SQLite {
		// SQLite has no read-only transaction: on a writer connection the
		// scope makes it query-only after BEGIN (an immediate BEGIN is a
		// write) and resets it after the transaction ends.
		defer resetQueryOnly(context.WithoutCancel(sctx), s.conn)
		if _, err := tx.ExecContext(sctx, "PRAGMA query_only = 1"); err != nil {
			_ = s.rollback(tx.Tx)
			return nil, ctxErr(sctx, err)
		}
	}
	s.own.tx = tx.Tx
	s.tx = &s.own
	finished := false
	defer func() {
		s.ended.Store(true)
		if !finished { // fn panicked
			_ = s.rollback(tx.Tx)
		}
	}()
	s.ctx = scopeCtx{sctx, s}
	err = fn(&s.ctx)
	finished = true
	return s.finish(sctx, err)
}

// watchedTx is a transaction and the stop of what watches its ctx.
type watchedTx struct {
	*sqlx.Tx
	stop func() bool
}

// beginTx begins a transaction on conn that rolls back when ctx ends.
//
// database/sql does that itself, but then discards the connection when
// the driver cannot reset a session, which sqlite3 cannot: on SQLite in
// memory that connection is the whole database, and on a file a new one
// must be opened. On SQLite the transaction is begun on a ctx that is never
// cancelled, and the scope rolls it back itself when ctx ends, keeping the
// connection. Statements in it still run on ctx, which interrupts them.
func (m *Manager) beginTx(ctx context.Context, conn *sqlx.Conn, opts *sql.TxOptions) (watchedTx, error) {
	if m.d.Family() != dialect.SQLite {
		tx, err := conn.BeginTxx(ctx, opts)
		return watchedTx{tx, func() bool { return true }}, err
	}
	if err := ctx.Err(); err != nil {
		return watchedTx{}, err
	}
	tx, err := conn.BeginTxx(context.WithoutCancel(ctx), opts)
	if err != nil {
		return watchedTx{}, err
	}
	return watchedTx{tx, context.AfterFunc(ctx, func() { _ = tx.Rollback() })}, nil
}

// resetQueryOnly turns SQLite's query_only pragma off again. A connection
// that cannot be reset is discarded rather than given back read-only.
func resetQueryOnly(ctx context.Context, conn *sqlx.Conn) {
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// finish ends the transaction of the scope that began it.
func (s *scope) finish(ctx context.Context, fnErr error) ([]func(context.Context), error) {
	tx := s.tx.tx
	if ctx.Err() != nil {
		_ = s.rollback(tx)
		return nil, context.Cause(ctx)
	}
	cause := s.rollbackCause()
	if fnErr == nil && cause == nil {
		if err := s.commit(tx); err != nil {
			return nil, s.m.commitError(ctx, err, s.access)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.afterCommit, nil
	}
	err := fnErr
	switch {
	case err == nil:
		err = fmt.Errorf("%w: %w", ErrUnexpectedRollback, cause)
	case cause != nil && !errors.Is(err, cause) && s.m.d.Classify(cause).Has(dialect.Retryable):
		// fn returned an error of its own after a retryable one aborted
		// the transaction: keep both, so that the attempt is retried.
		err = fmt.Errorf("%w (the transaction was aborted by: %w)", err, cause)
	}
	if rbErr := s.rollback(tx); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
		err = errors.Join(err, fmt.Errorf("session: rollback: %w", rbErr))
	}
	return nil, err
}

// commit commits tx, the scope's own transaction, and reports it.
func (s *scope) commit(tx *sqlx.Tx) error {
	err := tx.Commit()
	s.report(monitor.TxCommit, err)
	return err
}

// rollback rolls tx back and reports it. A transaction database/sql had
// already rolled back (its ctx ended) is reported rolled back, not failed.
func (s *scope) rollback(tx *sqlx.Tx) error {
	err := tx.Rollback()
	reported := err
	if errors.Is(err, sql.ErrTxDone) {
		reported = nil
	}
	s.report(monitor.TxRollback, reported)
	return err
}

// commitError turns a COMMIT failure into what the caller needs to know.
// A read-only transaction changed nothing, so losing its connection during
// COMMIT leaves no outcome in doubt: it is a lost connection like any
// other, and the scope retries it as it retries a read-only transaction
// that lost its connection on a statement.
func (m *Manager) commitError(ctx context.Context, err error, acc access) error {
	c := m.d.Classify(err)
	switch {
	case c.Has(dialect.ConnLost) && acc == readOnly:
		return fmt.Errorf("session: commit of a read-only transaction: %w", err)
	case c.Has(dialect.ConnLost):
		// Sent, and no answer: also when the ctx ended while the COMMIT
		// was on its way (the connection wrapper cut a connection whose
		// server did not answer; the error wraps the ctx's).
		return fmt.Errorf("%w: %w", ErrAmbiguousCommit, err)
	case ctx.Err() != nil && (errors.Is(err, sql.ErrTxDone) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return context.Cause(ctx) // rolled back by database/sql before COMMIT was sent
	case c.Has(dialect.Retryable):
		return err
	case c.Has(dialect.Aborting):
		return fmt.Errorf("%w at commit: %w", ErrUnexpectedRollback, err)
	}
	return err
}

// rollbackCause is why the scope must roll back though fn succeeded.
func (s *scope) rollbackCause() error {
	if p := s.tx.aborted.Load(); p != nil {
		return *p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted != nil {
		return s.aborted
	}
	return s.failure
}

func (s *scope) fail(err error) {
	s.mu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.mu.Unlock()
}

// join runs fn in the transaction of s. A failure marks it rollback-only.
func (s *scope) join(ctx context.Context, fn func(context.Context) error, acc access) error {
	if acc == readWrite && s.access == readOnly {
		return fmt.Errorf("%w: a read-write scope cannot join a read-only transaction", ErrReadOnly)
	}
	finished := false
	defer func() {
		if !finished {
			s.fail(errPanicked)
		}
	}()
	err := fn(ctx)
	finished = true
	if err != nil {
		s.fail(err)
	}
	return err
}

// nested runs fn in a savepoint of the transaction of s.
func (s *scope) nested(ctx context.Context, fn func(context.Context) error, acc access) error {
	if acc == readWrite && s.access == readOnly {
		return fmt.Errorf("%w: a read-write scope cannot nest in a read-only transaction", ErrReadOnly)
	}
	name := "enginekit_sp" + strconv.FormatInt(s.tx.seq.Add(1), 10)
	if _, err := s.q.ExecContext(ctx, s.m.d.Savepoint(name)); err != nil {
		return err
	}
	ns := s.m.newScope(s, s.conn)
	ns.side, ns.tx, ns.savepoint, ns.access = s.side, s.tx, name, s.access
	finished := false
	defer func() {
		ns.ended.Store(true)
		if !finished { // fn panicked
			ns.rollbackTo(ctx)
		}
	}()
	err := fn(&scopeCtx{ctx, ns})
	finished = true
	if ctx.Err() != nil {
		ns.rollbackTo(ctx)
		return context.Cause(ctx)
	}
	if err != nil {
		// fn's error may be one its connection met while rows were read,
		// which no statement of the scope returned: what it aborted is
		// known here.
		if s.m.d.Tagged(err) {
			ns.observe(err)
		}
		ns.rollbackTo(ctx)
		return err
	}
	cause := ns.rollbackCause()
	if cause == nil {
		// The connection refuses RELEASE with the error that aborted the
		// transaction, when one did that no statement of fn returned (met
		// while rows were read, and dropped).
		_, err := ns.tx.tx.ExecContext(ctx, s.m.d.ReleaseSavepoint(name))
		if err == nil {
			s.mu.Lock()
			s.afterCommit = append(s.afterCommit, ns.afterCommit...)
			s.mu.Unlock()
			return nil
		}
		cause = ns.observe(err)
	}
	ns.rollbackTo(ctx)
	return fmt.Errorf("%w to a savepoint: %w", ErrUnexpectedRollback, cause)
}

// rollbackTo undoes a Nested scope's work. When the whole transaction is
// already lost, or the savepoint cannot be restored, the owner rolls back.
func (ns *scope) rollbackTo(ctx context.Context) {
	t := ns.tx
	if t.aborted.Load() != nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, q := range []string{ns.m.d.RollbackToSavepoint(ns.savepoint), ns.m.d.ReleaseSavepoint(ns.savepoint)} {
		if _, err := t.tx.ExecContext(ctx, q); err != nil {
			t.abort(fmt.Errorf("session: %s: %w", q, err))
			return
		}
	}
}

// target is what the scope's statements run on, or why none may run.
func (s *scope) target() (target, error) {
	if s.ended.Load() {
		return nil, ErrScopeEnded
	}
	if s.tx == nil {
		return s.conn, nil
	}
	if p := s.tx.aborted.Load(); p != nil {
		return nil, fmt.Errorf("%w: %w", ErrAborted, *p)
	}
	if s.savepoint != "" {
		s.mu.Lock()
		aborted := s.aborted
		s.mu.Unlock()
		if aborted != nil {
			return nil, fmt.Errorf("%w: %w", ErrAborted, aborted)
		}
	}
	return s.tx.tx, nil
}

// observe records what a statement's error means for the scope. A
// statement the connection refused because an earlier error aborted the
// transaction (one met while rows were read, that no statement returned)
// records that error and fails with ErrAborted.
func (s *scope) observe(err error) error {
	var refused *dialect.Refused
	if errors.As(err, &refused) {
		s.observe(refused.Cause)
		return fmt.Errorf("%w: %w", ErrAborted, refused.Cause)
	}
	if !s.m.d.Tagged(err) {
		// database/sql's driver.ErrBadConn, io.EOF, which the connection
		// wrapper passes untagged (database/sql compares them): past
		// database/sql, they are tagged as lost connections, so that
		// errors.Is(err, ErrConnLost) holds.
		err = s.m.d.Tag(err)
	}
	c := s.m.d.Classify(err)
	if c.Has(dialect.ReadOnly) {
		err = fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	if s.tx == nil || !c.Has(dialect.Aborting) {
		return err
	}
	if s.savepoint != "" && !c.Has(dialect.Retryable) && !c.Has(dialect.ConnLost) {
		// PostgreSQL: the error aborts the savepoint, not the transaction.
		s.mu.Lock()
		if s.aborted == nil {
			s.aborted = err
		}
		s.mu.Unlock()
		return err
	}
	s.tx.abort(err)
	return err
}
