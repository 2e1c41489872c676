package connwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/netdial"
)

// CutGrace is how long a call whose ctx ended may still wait for the
// server before its connection is cut: long enough for a driver's own
// cancel to be answered (PostgreSQL's cancel request; MySQL's driver
// closes the connection itself), short enough that the call returns
// within about a second of its deadline when the server or the network
// hangs (a stopped backend, a partition), where lib/pq would wait for ever.
const CutGrace = 500 * time.Millisecond

// watch bounds one call on a connection (a statement, a prepare, a ping,
// the reading of rows, a transaction until its end) by the call's ctx:
// CutGrace after the ctx ends, it cuts the network connection under the
// driver (a deadline in the past fails its blocked reads and writes at
// once), and the connection is then never used again. Only connections
// enginekit's dialer made can be cut, and only calls whose ctx can end
// are watched: a call on a background ctx costs nothing.
//
// The watch of a statement on a connection whose driver stops statements
// on the server (drv.Canceller: MySQL) also has it stopped there when its
// ctx ends while it runs: see conn.cancel.
type watch struct {
	nc   func() net.Conn // the connection to cut, or nil: not dialed yet
	cuts func()          // called when it is cut
	ctx  context.Context
	stop func() bool
	stmt *conn // the connection of a statement to stop on the server; nil: none

	mu     sync.Mutex
	timer  *time.Timer // runs cut, CutGrace after the ctx ended
	over   bool        // the call returned
	cut    bool        // the connection was cut under the call
	killed bool        // this watch had the statement stopped on the server
}

// watch starts watching a call on c under ctx; nil when there is nothing
// to watch.
func (c *conn) watch(ctx context.Context) *watch {
	if c.nc == nil || ctx.Done() == nil {
		return nil
	}
	return startWatch(ctx, c.netConn, c.markBroken, nil)
}

// watchStmt is watch for a statement (an exec or a query, and the
// reading of its rows): on a connection that can be cancelled, the
// statement is also stopped on the server when its ctx ends while it
// runs. A statement whose ctx had ended before it started is not: the
// driver sends nothing then.
func (c *conn) watchStmt(ctx context.Context) *watch {
	if c.cid == nil {
		return c.watch(ctx)
	}
	if ctx.Done() == nil {
		return nil
	}
	stmt := c
	if ctx.Err() != nil {
		stmt = nil
	}
	return startWatch(ctx, c.netConn, c.markBroken, stmt)
}

// watchConnect watches a driver's Connect under ctx: a server that
// accepts and does not answer the handshake holds it no longer than the
// caller's ctx allows (lib/pq bounds it by connect_timeout alone).
func watchConnect(ctx context.Context, slot *netdial.Slot) *watch {
	if ctx.Done() == nil {
		return nil
	}
	return startWatch(ctx, slot.Conn, func() {}, nil)
}

func startWatch(ctx context.Context, nc func() net.Conn, cuts func(), stmt *conn) *watch {
	w := &watch{nc: nc, cuts: cuts, ctx: ctx, stmt: stmt}
	w.stop = context.AfterFunc(ctx, w.expired)
	return w
}

func (c *conn) netConn() net.Conn { return c.nc }
func (c *conn) markBroken()       { c.broken.Store(true) }

// expired runs when the call's ctx ended. A statement still running is
// stopped on the server (when its connection can be), and its
// connection is cut CutGrace later if the call has not returned by then.
func (w *watch) expired() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.over {
		if w.stmt != nil {
			w.killed = w.stmt.cancel(w.ctx)
		}
		w.timer = time.AfterFunc(CutGrace, w.cutNow)
	}
}

// cutNow cuts the connection of a call still running CutGrace after its
// ctx ended.
func (w *watch) cutNow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over {
		return
	}
	nc := w.nc()
	if nc == nil {
		return // not dialed yet: the dial itself is bounded by the ctx
	}
	w.cut = true
	w.cuts()
	_ = nc.SetDeadline(time.Now())
}

// end ends the watch of a call that returned err. When the watch cut the
// connection under the call, the error is the ctx's, wrapping the
// driver's: the caller sees that its deadline ended the call, and the
// driver's network error classifies the connection as lost.
//
// A statement that failed once its ctx had ended, before expired ran
// (MySQL's driver closes its socket when the ctx ends, and returns at
// once), may still run on the server: it is stopped there now, before the
// call returns, so before its connection could serve anything else. One
// that succeeded is never stopped: its ctx ending later finds the watch
// over.
func (w *watch) end(err error) error {
	return w.endAs(err, err != nil)
}

// endAs is end for a call that failed (the reading of rows that met an
// error, whose Close returned err) or not.
func (w *watch) endAs(err error, failed bool) error {
	if w == nil {
		return err
	}
	w.stop()
	w.mu.Lock()
	w.over = true
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.stmt != nil && !w.killed && failed && err != driver.ErrSkip && w.ctx.Err() != nil { //nolint:errorlint // database/sql's signal, compared so
		w.killed = w.stmt.cancel(w.ctx)
	}
	cut, killed := w.cut, w.killed
	w.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case cut:
		return cutError(w.ctx, err)
	case killed && err != driver.ErrSkip && !errors.Is(err, w.ctx.Err()): //nolint:errorlint // as above
		// The server's answer to the stop (MySQL's 1317 "query execution
		// was interrupted") reached the driver: the call ended by its ctx.
		return fmt.Errorf("%w (%w)", w.ctx.Err(), err)
	}
	return err
}

// cutError is the error of a call whose connection a watch cut: the ctx's
// error, dialect.ErrCut (a lost connection), and the driver's.
func cutError(ctx context.Context, err error) error {
	return fmt.Errorf("%w: %w (%w)", ctx.Err(), dialect.ErrCut, err)
}

// cutUnder reports whether the watch cut the connection.
func (w *watch) cutUnder() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cut
}
