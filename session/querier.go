package session

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/internal/dialect"
)

// Querier runs statements. Q returns one for the scope in a context: its
// transaction, its pinned connection, or the pool outside any scope.
type Querier interface {
	sqlx.ExtContext // QueryContext, QueryxContext, QueryRowxContext, ExecContext, DriverName, Rebind, BindNamed
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
	NamedExecContext(ctx context.Context, query string, arg any) (sql.Result, error)
}

// target is what a scope's statements run on: *sqlx.Tx or *sqlx.Conn.
type target interface {
	sqlx.QueryerContext
	sqlx.ExecerContext
}

var (
	_ Querier = (*scopeQuerier)(nil)
	_ Querier = (*poolQuerier)(nil)
	_ target  = (*sqlx.Tx)(nil)
	_ target  = (*sqlx.Conn)(nil)
)

// binder gives the placeholder helpers every Querier shares.
type binder struct {
	driver   string
	bindType int
}

func (b binder) DriverName() string { return b.driver }
func (b binder) Rebind(query string) string {
	return sqlx.Rebind(b.bindType, query)
}
func (b binder) BindNamed(query string, arg any) (string, []any, error) {
	return sqlx.BindNamed(b.bindType, query, arg)
}

// scopeQuerier runs statements in a scope: it refuses them once the scope
// has ended or its transaction is aborted, and observes every error. With
// prep, a statement with arguments in a transaction runs as a cached
// prepared statement (see runPrepared).
type scopeQuerier struct {
	binder
	s    *scope
	prep bool
}

func (q *scopeQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t, err := q.s.target()
	if err != nil {
		return nil, err
	}
	var res sql.Result
	if ran, err := q.runPrepared(ctx, query, len(args), func(st *sqlx.Stmt) (err error) {
		res, err = st.ExecContext(ctx, args...)
		return err
	}); ran {
		if err != nil {
			return nil, q.s.observe(err)
		}
		return res, nil
	}
	res, err = t.ExecContext(ctx, query, args...)
	if err != nil {
		return nil, q.s.observe(err)
	}
	return res, nil
}

func (q *scopeQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t, err := q.s.target()
	if err != nil {
		return nil, err
	}
	var rows *sql.Rows
	ran, err := q.runPrepared(ctx, query, len(args), func(st *sqlx.Stmt) (err error) {
		rows, err = st.QueryContext(ctx, args...)
		return err
	})
	if !ran {
		rows, err = t.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, q.s.observe(err)
	}
	return rows, nil
}

func (q *scopeQuerier) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	t, err := q.s.target()
	if err != nil {
		return nil, err
	}
	var rows *sqlx.Rows
	ran, err := q.runPrepared(ctx, query, len(args), func(st *sqlx.Stmt) (err error) {
		rows, err = st.QueryxContext(ctx, args...)
		return err
	})
	if !ran {
		rows, err = t.QueryxContext(ctx, query, args...)
	}
	if err != nil {
		return nil, q.s.observe(err)
	}
	return rows, nil
}

func (q *scopeQuerier) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	t, err := q.s.target()
	if err != nil {
		return errRow(q.s.m.w, ctx, err)
	}
	var row *sqlx.Row
	ran, err := q.runPrepared(ctx, query, len(args), func(st *sqlx.Stmt) error {
		row = st.QueryRowxContext(ctx, args...)
		return row.Err()
	})
	if !ran {
		row = t.QueryRowxContext(ctx, query, args...)
		err = row.Err()
	}
	if err != nil {
		q.s.observe(err)
		if row == nil || row.Err() != err { // a staleError, for the owning scope's retry
			row = errRow(q.s.m.w, ctx, err)
		}
	}
	return row
}

func (q *scopeQuerier) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	t, err := q.s.target()
	if err != nil {
		return err
	}
	ran, err := q.runPrepared(ctx, query, len(args), func(st *sqlx.Stmt) error {
		return st.GetContext(ctx, dest, args...)
	})
	if !ran {
		err = sqlx.GetContext(ctx, t, dest, query, args...)
	}
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return q.s.observe(err)
	}
	return nil
}

func (q *scopeQuerier) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	t, err := q.s.target()
	if err != nil {
		return err
	}
	ran, err := q.runPrepared(ctx, query, len(args), func(st *sqlx.Stmt) error {
		return st.SelectContext(ctx, dest, args...)
	})
	if !ran {
		err = sqlx.SelectContext(ctx, t, dest, query, args...)
	}
	if err != nil {
		return q.s.observe(err)
	}
	return nil
}

func (q *scopeQuerier) NamedExecContext(ctx context.Context, query string, arg any) (sql.Result, error) {
	return sqlx.NamedExecContext(ctx, q, query, arg)
}

// runPrepared runs op on the cached statement of query bound to the
// scope's transaction: ran is false when it is to run as it is instead
// (no transaction: database/sql binds a statement to a transaction, not to
// a pinned connection). A statement the database says is gone or stale is
// dropped from the cache; on MySQL it runs once more, prepared anew, in
// the same transaction. On PostgreSQL the error has aborted the
// transaction: it comes back as a staleError, which makes the owning scope
// run the transaction again.
func (q *scopeQuerier) runPrepared(ctx context.Context, query string, nargs int, op func(*sqlx.Stmt) error) (ran bool, err error) {
	s := q.s
	if !q.prep || s.tx == nil || s.m.stmts == nil || !preparable(query, nargs) {
		return false, nil
	}
	for retried := false; ; retried = true {
		ts, ok := s.txStmt(ctx, query)
		if !ok {
			return false, nil
		}
		err := op(ts.st)
		c := s.m.d.Classify(err)
		if err == nil || !c.Has(dialect.Stale) || retried {
			return true, err
		}
		s.tx.stmts.forget(query)
		s.m.stmts.invalidate(ts.e)
		if c.Has(dialect.Aborting) {
			return true, &staleError{err}
		}
	}
}

// txStmt returns the cached statement of query bound to the scope's
// transaction. It prepares one on the pool only when the pool has an idle
// connection: the transaction holds its own, and waiting for another (on
// SQLite's single writer, for itself) could last until its ctx ends. A
// text it could not prepare that way is prepared after the transaction.
func (s *scope) txStmt(ctx context.Context, query string) (txStmt, bool) {
	t := s.tx
	if ts, ok := t.stmts.lookup(query); ok {
		return ts, true
	}
	e, present := s.m.stmts.peek(s.pool, query)
	if e == nil {
		if present { // being prepared by another caller, which may need this very connection
			return txStmt{}, false
		}
		if !hasIdle(s.pool) {
			t.stmts.miss(query)
			return txStmt{}, false
		}
		if e = s.m.prepareBounded(ctx, s.pool, query); e == nil {
			return txStmt{}, false
		}
	}
	ts := txStmt{st: t.tx.StmtxContext(ctx, e.stmt), e: e}
	e.release() // the transaction's statement keeps what it needs of e's
	t.stmts.store(query, ts)
	return ts, true
}

// prepareMissed prepares, on the pool, the statements the transaction of
// s ran as they were for want of a free connection; it runs once the
// transaction has given its connection back.
func (m *Manager) prepareMissed(ctx context.Context, s *scope) {
	if s.tx == nil || m.stmts == nil {
		return
	}
	for _, query := range s.tx.stmts.takeMissed() {
		if ctx.Err() != nil || !hasIdle(s.pool) {
			return
		}
		if e := m.prepareBounded(ctx, s.pool, query); e != nil {
			e.release()
		}
	}
}

// prepareBounded is the statement cache's get, waiting for a connection
// at most the acquire timeout: for preparations nothing waits on but a
// speed-up.
func (m *Manager) prepareBounded(ctx context.Context, db *sqlx.DB, query string) *stmtEntry {
	if d := m.cfg.acquireTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	e, _ := m.stmts.get(ctx, db, query) // on error the statement runs as it is, and says what is wrong
	return e
}

// staleError is the error of a cached statement that the database found
// gone or stale, and that aborted its transaction (PostgreSQL). The
// statement has left the cache: a transaction that fails with it is run
// again (see txConfig.retryable) and prepares it anew.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// poolQuerier runs statements outside any scope. With an acquire timeout,
// Exec, Get and Select take their connection under it; the row-streaming
// calls hand the connection to the returned rows and are bounded by their
// ctx alone. Inside a NotSupported scope whose suspended transaction holds
// every connection of the pool (SQLite's single writer), every statement
// fails at once with ErrAcquireTimeout instead of waiting for it.
//
// With prep, a statement with arguments runs as a cached prepared
// statement. database/sql takes the connection of a prepared statement
// itself, bounded by the ctx alone, so with an acquire timeout Exec, Get
// and Select run prepared only while the pool has an idle connection or
// room to open one; when it has neither they take their connection under
// the timeout as above and run as they are. (A connection seen idle and
// taken by another caller in between is waited for within the ctx.)
type poolQuerier struct {
	binder
	m    *Manager
	db   *sqlx.DB
	prep bool
}

// connWait is how a statement run outside any scope waits for its
// connection: under the acquire timeout (Exec, Get and Select), or within
// its ctx alone (the row-streaming calls, whose rows keep the connection).
type connWait uint8

const (
	withinCtx connWait = iota
	underAcquireTimeout
)

// spare fails fast when the gate is closed (see WithGate), or when the
// scopes in ctx hold every connection of the pool. Every statement outside
// a scope asks it first.
func (q *poolQuerier) spare(ctx context.Context) error {
	if err := q.m.opened(); err != nil {
		return err
	}
	return q.m.checkSpare(ctx, q.m.current(ctx), q.db, onWriter)
}

// conn takes a connection for one statement, under the acquire timeout.
func (q *poolQuerier) conn(ctx context.Context) (*sqlx.Conn, error) {
	return q.m.acquireFor(ctx, q.m.current(ctx), q.db, onWriter)
}

func (q *poolQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := q.spare(ctx); err != nil {
		return nil, err
	}
	var res sql.Result
	if ran, err := q.runPrepared(ctx, query, len(args), underAcquireTimeout, func(st *sqlx.Stmt) (err error) {
		res, err = st.ExecContext(ctx, args...)
		return err
	}); ran {
		return res, err
	}
	if q.m.cfg.acquireTimeout <= 0 {
		return q.db.ExecContext(ctx, query, args...)
	}
	c, err := q.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ExecContext(ctx, query, args...)
}

func (q *poolQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := q.spare(ctx); err != nil {
		return nil, err
	}
	var rows *sql.Rows
	if ran, err := q.runPrepared(ctx, query, len(args), withinCtx, func(st *sqlx.Stmt) (err error) {
		rows, err = st.QueryContext(ctx, args...)
		return err
	}); ran {
		return rows, err
	}
	return q.db.QueryContext(ctx, query, args...)
}

func (q *poolQuerier) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	if err := q.spare(ctx); err != nil {
		return nil, err
	}
	var rows *sqlx.Rows
	if ran, err := q.runPrepared(ctx, query, len(args), withinCtx, func(st *sqlx.Stmt) (err error) {
		rows, err = st.QueryxContext(ctx, args...)
		return err
	}); ran {
		return rows, err
	}
	return q.db.QueryxContext(ctx, query, args...)
}

func (q *poolQuerier) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	if err := q.spare(ctx); err != nil {
		return errRow(q.db, ctx, err)
	}
	var row *sqlx.Row
	if ran, err := q.runPrepared(ctx, query, len(args), withinCtx, func(st *sqlx.Stmt) error {
		row = st.QueryRowxContext(ctx, args...)
		return row.Err()
	}); ran {
		if row == nil { // the preparation failed
			row = errRow(q.db, ctx, err)
		}
		return row
	}
	return q.db.QueryRowxContext(ctx, query, args...)
}

func (q *poolQuerier) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	if err := q.spare(ctx); err != nil {
		return err
	}
	if ran, err := q.runPrepared(ctx, query, len(args), underAcquireTimeout, func(st *sqlx.Stmt) error {
		return st.GetContext(ctx, dest, args...)
	}); ran {
		return err
	}
	if q.m.cfg.acquireTimeout <= 0 {
		return q.db.GetContext(ctx, dest, query, args...)
	}
	c, err := q.conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.GetContext(ctx, dest, query, args...)
}

func (q *poolQuerier) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	if err := q.spare(ctx); err != nil {
		return err
	}
	if ran, err := q.runPrepared(ctx, query, len(args), underAcquireTimeout, func(st *sqlx.Stmt) error {
		return st.SelectContext(ctx, dest, args...)
	}); ran {
		return err
	}
	if q.m.cfg.acquireTimeout <= 0 {
		return q.db.SelectContext(ctx, dest, query, args...)
	}
	c, err := q.conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SelectContext(ctx, dest, query, args...)
}

func (q *poolQuerier) NamedExecContext(ctx context.Context, query string, arg any) (sql.Result, error) {
	return sqlx.NamedExecContext(ctx, q, query, arg)
}

// runPrepared runs op on the cached statement of query, for a statement
// outside any scope: ran is false when it is to run as it is instead (the
// Querier does not prepare, the cache is off or closed, the statement is
// not preparable, or its call waits under the acquire timeout and the pool
// has no connection to spare, see poolQuerier). A statement the database
// says is gone or stale is dropped from the cache and run once more,
// prepared anew.
func (q *poolQuerier) runPrepared(ctx context.Context, query string, nargs int, wait connWait, op func(*sqlx.Stmt) error) (ran bool, err error) {
	m := q.m
	if !q.prep || m.stmts == nil || !preparable(query, nargs) {
		return false, nil
	}
	if wait == underAcquireTimeout && m.cfg.acquireTimeout > 0 && !idleOrRoom(q.db) {
		return false, nil
	}
	for retried := false; ; retried = true {
		e, err := m.stmts.get(ctx, q.db, query)
		if e == nil {
			return err != nil, err
		}
		err = op(e.stmt)
		if err != nil && !retried && m.d.Classify(err).Has(dialect.Stale) {
			m.stmts.invalidate(e)
			e.release()
			continue
		}
		e.release()
		return true, err
	}
}

// preparable reports whether a statement is run prepared: only one with
// arguments (without, it takes one round trip as it is, and its text may
// hold several statements, which a prepared statement cannot), and only a
// single statement: a semicolon that is not trailing sends it as it is
// (also when it sits in a string literal, which is only a missed chance).
func preparable(query string, nargs int) bool {
	if nargs == 0 {
		return false
	}
	i := strings.IndexByte(query, ';')
	return i < 0 || strings.TrimRight(query[i:], "; \t\r\n") == ""
}

// hasIdle reports whether db has an idle connection.
func hasIdle(db *sqlx.DB) bool { return db.Stats().Idle > 0 }

// idleOrRoom reports whether db has an idle connection or room to open
// one: whether taking one now is unlikely to wait.
func idleOrRoom(db *sqlx.DB) bool {
	st := db.Stats()
	return st.Idle > 0 || st.MaxOpenConnections <= 0 || st.OpenConnections < st.MaxOpenConnections
}

// errRow returns a *sqlx.Row whose Err (and Scan) is err. It is the one
// place where a Row is made to carry an error of enginekit's: sqlx and
// database/sql make a Row only by running a query, so errRow runs one on a
// context already done with err, which database/sql checks before it
// takes a connection: nothing reaches the server, and the Row's error is
// err itself.
func errRow(db *sqlx.DB, ctx context.Context, err error) *sqlx.Row {
	return db.QueryRowxContext(failedContext{ctx, err}, "")
}

// failedContext is a context that is already done with a given error. It
// only ever reaches database/sql, through errRow.
type failedContext struct {
	context.Context
	err error
}

func (c failedContext) Done() <-chan struct{}       { return closedChan }
func (c failedContext) Err() error                  { return c.err }
func (c failedContext) Deadline() (time.Time, bool) { return time.Time{}, false }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
