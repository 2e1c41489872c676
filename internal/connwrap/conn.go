package connwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/netdial"
	"github.com/enginekit/enginekit/monitor"
)

// conn wraps a driver connection. It claims the optional interfaces that
// database/sql looks for on a connection; where the wrapped connection
// lacks one, it answers as database/sql would have without it (ErrSkip,
// nil, true, or database/sql's own fallback), so behaviour and errors stay
// the same. Two exceptions are claimed only by the types that embed conn,
// chosen to match the wrapped connection: SessionResetter, whose mere
// presence changes what database/sql does (it keeps the connection of a
// transaction rolled back by its ctx), and ExecerContext with
// QueryerContext, without which database/sql prepares every statement
// (and does so before it checks the arguments). database/sql serialises
// the calls on one connection, except the leak timer's, which leakState
// guards.
type conn struct {
	c        driver.Conn
	w        *Connector
	nc       net.Conn      // the network connection, when enginekit's dialer made it
	broken   atomic.Bool   // cut under a call whose ctx ended (see watch): never used again
	idleAt   time.Duration // when it went back to the pool, after w.clock
	lost     int64         // w.lost when it was last known alive
	deadline time.Time     // end of the jittered lifetime; zero: none
	aging    stopper       // sets old at deadline; nil without a lifetime
	old      atomic.Bool   // past deadline
	expired  bool          // past deadline and counted
	lk       *leakState    // nil without a leak threshold

	// cid is what the driver's drv.Canceller needs to stop a statement of
	// this connection on the server (nil: the driver has none); killed is
	// set once it was asked to (see cancel).
	cid    any
	killed atomic.Bool

	// The transaction in progress, which connTx (this conn under another
	// type, so that BeginTx allocates nothing) commits or rolls back, and
	// the error that aborted it, if one did: until a ROLLBACK, statements
	// are refused with it, and COMMIT rolls back and returns it.
	tx      driver.Tx
	txCtx   context.Context
	txWatch *watch // bounds the transaction by its ctx until it ends
	aborted error

	skipped skipped // see skip
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ExecerContext      = connEQ{}
	_ driver.QueryerContext     = connEQ{}
	_ driver.SessionResetter    = connEQR{}
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.Tx                 = (*connTx)(nil)
)

// use starts the leak clock at a connection's first use after it was
// opened or given back, when ResetSession has not: database/sql calls that
// only on connections that have it, and not on a new one (which the pool
// may have opened for a caller that gave up waiting, and left idle).
func (c *conn) use() {
	if c.lk != nil && !c.lk.out {
		c.checkout()
	}
}

// pastAge reports (and counts, once) a connection past its lifetime. A
// timer marks it at its deadline, so that the check on every checkout and
// checkin reads no clock.
func (c *conn) pastAge() bool {
	if !c.old.Load() {
		return false
	}
	if !c.expired {
		c.expired = true
		c.w.expired.Add(1)
	}
	return true
}

// alive checks a connection taken from the pool when it sat idle longer
// than the IdleCheck window, or a connection was lost since it was last
// known alive: one whose peer closed it, wrote to it or reset it is
// discarded (driver.ErrBadConn: database/sql then takes another, before
// the caller sent anything).
func (c *conn) alive(ctx context.Context) error {
	if c.nc == nil || c.w.o.IdleCheck < 0 {
		return nil
	}
	lost := c.w.lost.Load()
	if c.lost == lost && time.Since(c.w.clock)-c.idleAt < c.w.o.IdleCheck {
		return nil
	}
	err := netdial.Check(c.nc)
	if err == nil {
		c.lost = lost
		return nil
	}
	c.w.dead.Add(1)
	if c.w.poolMon != nil {
		c.w.poolMon.Pool(ctx, monitor.PoolEvent{DB: c.w.o.DB, Kind: monitor.PoolDeadConn, Err: err})
	}
	return driver.ErrBadConn
}

// refuse returns the error that aborted the transaction in progress, for
// any statement but a ROLLBACK (TO SAVEPOINT), which may recover it. On a
// connection whose statement is being stopped on the server, every
// statement is refused: the stop must reach nothing else.
func (c *conn) refuse(query string) error {
	if c.cid != nil && c.killed.Load() {
		if c.tx != nil {
			return &dialect.Refused{Cause: errKilled}
		}
		return errKilled
	}
	if c.aborted == nil || isRollback(query) {
		return nil
	}
	return &dialect.Refused{Cause: c.aborted}
}

// errKilled is why a connection refuses statements once a statement of
// it, whose ctx ended, was being stopped on the server.
var errKilled = errors.New("a statement on this connection was cancelled by its ctx and stopped on the server: " +
	"the connection is not used again")

// cancel has the statement running on c, whose ctx ended, stopped on the
// server by the driver's drv.Canceller, on a goroutine of its own: at most
// once per connection (false: it was already). The connection is marked
// first, so that nothing else ever runs on it: statements after it (in
// its transaction, on its pinned connection) are refused, a COMMIT rolls
// back, and the pool discards it. The caller holds its watch's lock, with
// the call still running: the connection cannot serve anything else yet.
func (c *conn) cancel(ctx context.Context) bool {
	if !c.killed.CompareAndSwap(false, true) {
		return false
	}
	c.markBroken()
	c.w.cancelOnServer(ctx, c.cid)
	return true
}

// settle tags a statement's error and, in a transaction, remembers one
// that aborts it. A ROLLBACK TO SAVEPOINT that succeeds recovers the
// transaction (PostgreSQL; after a MySQL deadlock it fails: the
// savepoints are gone). BEGIN, COMMIT, ROLLBACK and pings settle their
// errors too (query ""): a connection lost there was lost all the same.
func (c *conn) settle(query string, err error) error {
	if err == nil {
		if c.aborted != nil && isRollback(query) {
			c.aborted = nil
		}
		return nil
	}
	err = c.w.tag(err)
	class := c.w.d.Classify(err)
	if class.Has(dialect.ConnLost) {
		c.w.lost.Add(1) // the others may be gone too: check them at checkout
		// Never handed out again, though its socket may still be open
		// (a Galera node outside the primary component answers 1047).
		c.markBroken()
	}
	if c.tx != nil && c.aborted == nil && class.Has(dialect.Aborting) {
		c.aborted = err
	}
	return err
}

// canceledBy is err, for a statement that the server canceled because its
// ctx ended (lib/pq and pgx send PostgreSQL's cancel request themselves,
// and report the server's 57014), wrapped in the ctx's error: the caller
// sees that its deadline or cancel ended the call, as when the wrapper
// cuts a connection, and the server's error stays reachable.
func (c *conn) canceledBy(ctx context.Context, err error) error {
	if err == nil || ctx == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) || !c.w.d.Classify(err).Has(dialect.Canceled) {
		return err
	}
	return fmt.Errorf("%w (%w)", ctx.Err(), err)
}

// isRollback reports whether query is a ROLLBACK statement.
func isRollback(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	return len(q) >= len("ROLLBACK") && strings.EqualFold(q[:len("ROLLBACK")], "ROLLBACK")
}

// The wrappers of connections that have ExecerContext or QueryerContext
// (or their legacy forms: E, Q), a SessionResetter (R), or both.
type (
	connR   struct{ *conn }
	connEQ  struct{ *conn }
	connEQR struct{ connEQ }
)

// wrapConn returns the wrapper of c that claims what c has.
func wrapConn(wc *conn) driver.Conn {
	_, r := wc.c.(driver.SessionResetter)
	eq := hasExecOrQuery(wc.c)
	switch {
	case r && eq:
		return connEQR{connEQ{wc}}
	case r:
		return connR{wc}
	case eq:
		return connEQ{wc}
	}
	return wc
}

func hasExecOrQuery(c driver.Conn) bool {
	switch c.(type) {
	case driver.ExecerContext, driver.QueryerContext, driver.Execer, driver.Queryer: //nolint:staticcheck // legacy forms count
		return true
	}
	return false
}

func (c connR) ResetSession(ctx context.Context) error   { return c.resetSession(ctx) }
func (c connEQR) ResetSession(ctx context.Context) error { return c.resetSession(ctx) }

func (c connEQ) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.execContext(ctx, query, args)
}

func (c connEQ) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.queryContext(ctx, query, args)
}

// resetSession is called when the pool hands the connection out again
// (a connection without it starts its leak clock at its first use).
func (c *conn) resetSession(ctx context.Context) error {
	c.aborted, c.skipped = nil, skipped0
	if c.pastAge() || c.broken.Load() {
		return driver.ErrBadConn
	}
	if err := c.alive(ctx); err != nil {
		return err
	}
	if c.lk != nil {
		c.checkout()
	}
	return c.c.(driver.SessionResetter).ResetSession(ctx)
}

// IsValid is called when the connection goes back to the pool. Past its
// age, the connection is closed rather than kept.
func (c *conn) IsValid() bool {
	if c.lk != nil {
		c.checkin()
	}
	if c.broken.Load() {
		return false
	}
	if c.nc != nil && c.w.o.IdleCheck > 0 {
		c.idleAt = time.Since(c.w.clock)
	}
	if c.pastAge() {
		return false
	}
	if v, ok := c.c.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) Close() error {
	if c.lk != nil {
		c.checkin()
	}
	if c.aging != nil {
		c.aging.Stop()
	}
	err := c.c.Close()
	if err != nil && (c.nc != nil || errors.Is(err, driver.ErrBadConn) || c.w.d.Classify(c.w.tag(err)).Has(dialect.ConnLost)) {
		// Closing a network connection only says goodbye to the server:
		// a failure means it was gone already (its server or host died,
		// a watch cut it; MySQL's driver then says "bad connection" in
		// an error of its own). Nothing is left to fail, and Engine.Close
		// must not report it. SQLite's close errors (statements still
		// open) are kept.
		return nil
	}
	return err
}

func (c *conn) Ping(ctx context.Context) error {
	c.use()
	if p, ok := c.c.(driver.Pinger); ok {
		wt := c.watch(ctx)
		return c.settle("", wt.end(p.Ping(ctx)))
	}
	return nil
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.c.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *conn) execContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.use()
	if err := c.refuse(query); err != nil {
		return nil, err
	}
	var res driver.Result
	var err error
	// What database/sql refuses before the statement is sent is refused
	// before it starts: no QueryStart without its Query.
	ec, _ := c.c.(driver.ExecerContext)
	var dargs []driver.Value
	if ec == nil {
		if _, ok := c.c.(driver.Execer); !ok { //nolint:staticcheck // the legacy interface, as database/sql still accepts it
			return nil, driver.ErrSkip
		}
		if dargs, err = namedValueToValue(args); err != nil {
			return nil, err
		}
		if err = ctx.Err(); err != nil {
			return nil, err
		}
	}
	octx, begun := c.w.start(ctx, monitor.OpExec, query, args)
	wt := c.watchStmt(ctx)
	if ec != nil {
		res, err = ec.ExecContext(ctx, query, args)
	} else {
		res, err = c.c.(driver.Execer).Exec(query, dargs) //nolint:staticcheck // the legacy interface
	}
	err = wt.end(err)
	if err == driver.ErrSkip { //nolint:errorlint // database/sql compares ErrSkip so
		c.skip(octx, begun, monitor.OpExec, query)
		return nil, err
	}
	err = c.canceledBy(ctx, c.settle(query, err))
	if c.w.mon != nil {
		c.w.observe(octx, monitor.OpExec, query, args, begun, rowsAffected(res, err), err)
	}
	return res, err
}

func (c *conn) queryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.use()
	if err := c.refuse(query); err != nil {
		return nil, err
	}
	var rows driver.Rows
	var err error
	qc, _ := c.c.(driver.QueryerContext)
	var dargs []driver.Value
	if qc == nil {
		if _, ok := c.c.(driver.Queryer); !ok { //nolint:staticcheck // the legacy interface, as database/sql still accepts it
			return nil, driver.ErrSkip
		}
		if dargs, err = namedValueToValue(args); err != nil {
			return nil, err
		}
		if err = ctx.Err(); err != nil {
			return nil, err
		}
	}
	octx, begun := c.w.start(ctx, monitor.OpQuery, query, args)
	wt := c.watchStmt(ctx)
	if qc != nil {
		rows, err = qc.QueryContext(ctx, query, args)
	} else {
		rows, err = c.c.(driver.Queryer).Query(query, dargs) //nolint:staticcheck // the legacy interface
	}
	if err != nil {
		err = wt.end(err)
	}
	if err == driver.ErrSkip { //nolint:errorlint // database/sql compares ErrSkip so
		c.skip(octx, begun, monitor.OpQuery, query)
		return nil, err
	}
	err = c.canceledBy(ctx, c.settle(query, err))
	if c.w.mon != nil {
		c.w.observe(octx, monitor.OpQuery, query, args, begun, -1, err)
	}
	return c.wrapRows(rows, wt), err
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.use()
	if err := c.refuse(query); err != nil {
		return nil, err
	}
	skipped := c.skipped
	c.skipped = skipped0
	if skipped.query != query {
		skipped = skipped0
	}
	octx, begun := c.w.start(ctx, monitor.OpPrepare, query, nil)
	var s driver.Stmt
	var err error
	if p, ok := c.c.(driver.ConnPrepareContext); ok {
		wt := c.watch(ctx)
		s, err = p.PrepareContext(ctx, query)
		err = wt.end(err)
	} else {
		// database/sql's fallback: prepare, then honour a ctx that ended.
		s, err = c.c.Prepare(query)
		if err == nil && ctx.Err() != nil {
			s.Close()
			s, err = nil, ctx.Err()
		}
	}
	err = c.canceledBy(ctx, c.settle(query, err))
	if c.w.mon != nil {
		c.w.observe(octx, monitor.OpPrepare, query, nil, begun, -1, err)
	}
	if err != nil {
		if skipped.ctx != nil { // the statement failed
			c.w.observe(skipped.ctx, skipped.op, query, nil, skipped.begun, -1, err)
		}
		return nil, err
	}
	return wrapStmt(s, c, query, skipped), nil
}

// skipped is a statement the driver declined (driver.ErrSkip) after its
// QueryStart: database/sql prepares it next on the same connection and
// runs the prepared statement, whose Query call ends it. Kept for a
// tracing monitor only (for others, QueryStart is not called).
type skipped struct {
	ctx   context.Context // the ctx QueryStart returned
	begun time.Time
	op    monitor.Op
	query string
}

var skipped0 skipped

// skip keeps a statement the driver declined for the statement
// database/sql prepares for it.
func (c *conn) skip(octx context.Context, begun time.Time, op monitor.Op, query string) {
	if c.w.tracer != nil {
		c.skipped = skipped{ctx: octx, begun: begun, op: op, query: query}
	}
}

// errNotRun ends a statement the driver declined and database/sql then
// did not run: it refused its arguments for the prepared statement.
var errNotRun = errors.New("statement not run: database/sql refused its arguments")

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

var (
	errIsolation = errors.New("sql: driver does not support non-default isolation level")
	errReadOnly  = errors.New("sql: driver does not support read-only transactions")
)

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.use()
	b, ok := c.c.(driver.ConnBeginTx)
	if !ok {
		// database/sql's fallback for drivers with Begin alone refuses
		// these before BEGIN is sent.
		switch {
		case opts.Isolation != driver.IsolationLevel(0):
			return nil, errIsolation
		case opts.ReadOnly:
			return nil, errReadOnly
		}
	}
	octx, begun := c.w.start(ctx, monitor.OpBegin, "", nil)
	var tx driver.Tx
	var err error
	wt := c.watch(ctx) // until the transaction ends: its COMMIT too
	if ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.c.Begin() //nolint:staticcheck // the fallback itself
		if err == nil && ctx.Err() != nil {
			tx.Rollback()
			tx, err = nil, ctx.Err()
		}
	}
	if err != nil {
		err = wt.end(err)
	}
	err = c.settle("", err)
	if c.w.mon != nil {
		c.w.observe(octx, monitor.OpBegin, "", nil, begun, -1, err)
	}
	if err != nil {
		return nil, err
	}
	c.tx, c.txCtx, c.txWatch, c.aborted = tx, ctx, wt, nil
	return (*connTx)(c), nil
}

// connTx is the transaction in progress on a conn.
type connTx conn

func (t *connTx) Commit() error   { return (*conn)(t).end(monitor.OpCommit) }
func (t *connTx) Rollback() error { return (*conn)(t).end(monitor.OpRollback) }

// end commits or rolls back the transaction in progress. A transaction an
// error aborted is rolled back instead of committed, and its COMMIT
// returns that error: nothing after the error may be committed.
func (c *conn) end(op monitor.Op) error {
	tx, ctx, wt, aborted := c.tx, c.txCtx, c.txWatch, c.aborted
	c.tx, c.txCtx, c.txWatch, c.aborted = nil, nil, nil, nil
	if tx == nil {
		return driver.ErrBadConn // ended twice: database/sql never does
	}
	commit := op == monitor.OpCommit
	if commit && aborted == nil && c.cid != nil && c.killed.Load() {
		aborted = errKilled // a statement of the transaction was stopped on the server
	}
	if commit && aborted != nil {
		op = monitor.OpRollback
	}
	octx, begun := c.w.start(ctx, op, "", nil)
	var err error
	if op == monitor.OpCommit {
		err = c.settle("", wt.end(tx.Commit()))
	} else {
		err = c.settle("", wt.end(tx.Rollback()))
	}
	if c.w.mon != nil {
		c.w.observe(octx, op, "", nil, begun, -1, err)
	}
	if commit && aborted != nil {
		return fmt.Errorf("transaction rolled back instead of committed: an earlier error aborted it: %w", aborted)
	}
	return err
}

// rowsAffected is what an exec's result says, or -1.
func rowsAffected(res driver.Result, err error) int64 {
	if err != nil || res == nil {
		return -1
	}
	n, err := res.RowsAffected()
	if err != nil {
		return -1
	}
	return n
}

// stmt wraps a prepared statement. Like conn it answers as database/sql
// would for what the wrapped statement lacks; ColumnConverter, which
// changes how database/sql converts arguments, is claimed only by stmtCC,
// for statements that have it.
type stmt struct {
	s       driver.Stmt
	c       *conn
	query   string
	skipped skipped // the statement the driver declined, which this one runs
}

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
	_ driver.ColumnConverter   = stmtCC{} //nolint:staticcheck // forwarded for drivers that have it
)

type stmtCC struct{ *stmt }

func (s stmtCC) ColumnConverter(idx int) driver.ValueConverter {
	return s.s.(driver.ColumnConverter).ColumnConverter(idx) //nolint:staticcheck // forwarded
}

func wrapStmt(s driver.Stmt, c *conn, query string, skipped skipped) driver.Stmt {
	ws := &stmt{s: s, c: c, query: query, skipped: skipped}
	if _, ok := s.(driver.ColumnConverter); ok { //nolint:staticcheck // forwarded
		return stmtCC{ws}
	}
	return ws
}

func (s *stmt) Close() error {
	if s.skipped.ctx != nil {
		s.c.w.observe(s.skipped.ctx, s.skipped.op, s.query, nil, s.skipped.begun, -1, errNotRun)
		s.skipped = skipped0
	}
	return s.s.Close()
}

// start starts the statement's exec or query, or takes over the start of
// the one the driver declined.
func (s *stmt) start(ctx context.Context, op monitor.Op, args []driver.NamedValue) (context.Context, time.Time) {
	if s.skipped.ctx != nil && s.skipped.op == op {
		octx := s.skipped.ctx
		s.skipped = skipped0
		return octx, time.Now()
	}
	return s.c.w.start(ctx, op, s.query, args)
}

func (s *stmt) NumInput() int { return s.s.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.s.Exec(args) //nolint:staticcheck // forwarded legacy call
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.s.Query(args) //nolint:staticcheck // forwarded legacy call
}

// CheckNamedValue is the statement's checker, else the connection's (as
// database/sql picks), else ErrSkip.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := s.s.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return s.c.CheckNamedValue(nv)
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	c := s.c
	if err := c.refuse(s.query); err != nil {
		return nil, err
	}
	var res driver.Result
	var err error
	e, ok := s.s.(driver.StmtExecContext)
	var dargs []driver.Value
	if !ok {
		if dargs, err = namedValueToValue(args); err != nil {
			return nil, err
		}
		if err = ctx.Err(); err != nil {
			return nil, err
		}
	}
	octx, begun := s.start(ctx, monitor.OpExec, args)
	wt := c.watchStmt(ctx)
	if ok {
		res, err = e.ExecContext(ctx, args)
	} else {
		res, err = s.s.Exec(dargs) //nolint:staticcheck // database/sql's fallback
	}
	err = wt.end(err)
	err = c.canceledBy(ctx, c.settle(s.query, err))
	if c.w.mon != nil {
		c.w.observe(octx, monitor.OpExec, s.query, args, begun, rowsAffected(res, err), err)
	}
	return res, err
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	c := s.c
	if err := c.refuse(s.query); err != nil {
		return nil, err
	}
	var rows driver.Rows
	var err error
	q, ok := s.s.(driver.StmtQueryContext)
	var dargs []driver.Value
	if !ok {
		if dargs, err = namedValueToValue(args); err != nil {
			return nil, err
		}
		if err = ctx.Err(); err != nil {
			return nil, err
		}
	}
	octx, begun := s.start(ctx, monitor.OpQuery, args)
	wt := c.watchStmt(ctx)
	if ok {
		rows, err = q.QueryContext(ctx, args)
	} else {
		rows, err = s.s.Query(dargs) //nolint:staticcheck // database/sql's fallback
	}
	if err != nil {
		err = wt.end(err)
	}
	err = c.canceledBy(ctx, c.settle(s.query, err))
	if c.w.mon != nil {
		c.w.observe(octx, monitor.OpQuery, s.query, args, begun, -1, err)
	}
	return c.wrapRows(rows, wt), err
}

// wrapRows wraps the rows of a query run in a transaction, so that an
// error met while they are read is seen (see settle), and those of a query
// whose watch goes on while they are read (wt, ended when they close);
// otherwise the driver's rows are returned as they are.
func (c *conn) wrapRows(r driver.Rows, wt *watch) driver.Rows {
	if r == nil || (c.tx == nil && wt == nil) {
		return r
	}
	return &rows{Rows: r, c: c, wt: wt}
}

// rows wraps a result set read in a transaction. It claims the optional
// interfaces of driver.Rows, answering as database/sql does for those the
// driver's rows lack. database/sql calls it under the connection's lock,
// as it calls the connection.
type rows struct {
	driver.Rows
	c      *conn
	wt     *watch // the query's, until the rows close; nil: none
	failed bool   // their reading met an error
}

func (r *rows) Close() error {
	err := r.Rows.Close()
	return r.wt.endAs(err, err != nil || r.failed)
}

var (
	_ driver.RowsNextResultSet              = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypeNullable         = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
)

func (r *rows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && err != io.EOF { //nolint:errorlint // the driver's end of rows, compared so by database/sql
		r.failed = true
		if r.wt != nil && r.wt.cutUnder() {
			err = cutError(r.wt.ctx, err)
		}
		err = r.c.settle("", err)
		if r.wt != nil {
			err = r.c.canceledBy(r.wt.ctx, err)
		}
	}
	return err
}

func (r *rows) HasNextResultSet() bool {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

func (r *rows) NextResultSet() error {
	n, ok := r.Rows.(driver.RowsNextResultSet)
	if !ok {
		return io.EOF
	}
	err := n.NextResultSet()
	if err != nil && err != io.EOF { //nolint:errorlint // as in Next
		r.failed = true
		err = r.c.settle("", err)
	}
	return err
}

var anyType = reflect.TypeFor[any]()

func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return anyType
}

func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *rows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *rows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
