package session

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
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
		// A Row can only be made by running a query: run it on a context
		// that is already done, which database/sql checks before it takes
		// a connection, so nothing reaches the server.
		return q.s.m.w.QueryRowxContext(failedContext{ctx, err}, query, args...)
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
			row = q.s.m.w.QueryRowxContext(failedContext{ctx, err}, query, args...)
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

// spare fails fast when the scopes in ctx hold every connection of the pool.
func (q *poolQuerier) spare(ctx context.Context) error {
	return q.m.checkSpare(ctx, q.m.current(ctx), q.db, false)
}

// conn takes a connection for one statement, under the acquire timeout.
func (q *poolQuerier) conn(ctx context.Context) (*sqlx.Conn, error) {
	return q.m.acquireFor(ctx, q.m.current(ctx), q.db, false)
}

func (q *poolQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := q.spare(ctx); err != nil {
		return nil, err
	}
	var res sql.Result
	if ran, err := q.runPrepared(ctx, query, len(args), true, func(st *sqlx.Stmt) (err error) {
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
	if ran, err := q.runPrepared(ctx, query, len(args), false, func(st *sqlx.Stmt) (err error) {
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
	if ran, err := q.runPrepared(ctx, query, len(args), false, func(st *sqlx.Stmt) (err error) {
		rows, err = st.QueryxContext(ctx, args...)
		return err
	}); ran {
		return rows, err
	}
	return q.db.QueryxContext(ctx, query, args...)
}

func (q *poolQuerier) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	if err := q.spare(ctx); err != nil {
		return q.db.QueryRowxContext(failedContext{ctx, err}, query, args...)
	}
	var row *sqlx.Row
	if ran, err := q.runPrepared(ctx, query, len(args), false, func(st *sqlx.Stmt) error {
		row = st.QueryRowxContext(ctx, args...)
		return row.Err()
	}); ran {
		if row == nil { // the preparation failed
			row = q.db.QueryRowxContext(failedContext{ctx, err}, query, args...)
		}
		return row
	}
	return q.db.QueryRowxContext(ctx, query, args...)
}

func (q *poolQuerier) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	if err := q.spare(ctx); err != nil {
		return err
	}
	if ran, err := q.runPrepared(ctx, query, len(args), true, func(st *sqlx.Stmt) error {
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
	if ran, err := q.runPrepared(ctx, query, len(args), true, func(st *sqlx.Stmt) error {
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

// failedContext is a context that is already done with a given error. It
// only ever reaches database/sql, which returns Err before doing anything.
type failedContext struct {
	context.Context
	err error
}

func (c failedContext) Done() <-chan struct{}       { return closedChan }
func (c failedContext) Err() error                  { return c.err }
func (c failedContext) Deadline() (time.Time, bool) { return time.Time{}, false }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
