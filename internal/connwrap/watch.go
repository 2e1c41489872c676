package connwrap

import (
	"context"
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
type watch struct {
	nc   func() net.Conn // the connection to cut, or nil: not dialed yet
	cuts func()          // called when it is cut
	ctx  context.Context
	stop func() bool

	mu    sync.Mutex
	over  bool        // the call returned
	timer *time.Timer // runs cut, CutGrace after the ctx ended
	cut   bool        // the connection was cut under the call
}

// watch starts watching a call on c under ctx; nil when there is nothing
// to watch.
func (c *conn) watch(ctx context.Context) *watch {
	if c.nc == nil || ctx.Done() == nil {
		return nil
	}
	return startWatch(ctx, c.netConn, c.markBroken)
}

// watchConnect watches a driver's Connect under ctx: a server that
// accepts and does not answer the handshake holds it no longer than the
// caller's ctx allows (lib/pq bounds it by connect_timeout alone).
func watchConnect(ctx context.Context, slot *netdial.Slot) *watch {
	if ctx.Done() == nil {
		return nil
	}
	return startWatch(ctx, slot.Conn, func() {})
}

func startWatch(ctx context.Context, nc func() net.Conn, cuts func()) *watch {
	w := &watch{nc: nc, cuts: cuts, ctx: ctx}
	w.stop = context.AfterFunc(ctx, w.expired)
	return w
}

func (c *conn) netConn() net.Conn { return c.nc }
func (c *conn) markBroken()       { c.broken.Store(true) }

// expired runs when the call's ctx ended.
func (w *watch) expired() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.over {
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
func (w *watch) end(err error) error {
	if w == nil {
		return err
	}
	w.stop()
	w.mu.Lock()
	w.over = true
	if w.timer != nil {
		w.timer.Stop()
	}
	cut := w.cut
	w.mu.Unlock()
	if cut && err != nil {
		return cutError(w.ctx, err)
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
