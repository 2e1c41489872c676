// Package connwrap is the connection wrapper under every pool an engine
// opens. It sits between database/sql and the driver, on every path
// (sqlx, raw database/sql, session scopes, repositories), and does there
// what only the driver level can see:
//
//   - statements, transactions and connect failures are reported to the
//     engine's monitor.Monitor, with a start hook for monitors that trace
//     (monitor.QueryTracer);
//   - driver errors of a class the driver's dialect knows are returned as
//     *dialect.Error, so that their class travels with them
//     (session.IsRetryable);
//   - in a transaction, an error that aborts it (a deadlock, any
//     PostgreSQL error, one met while rows were read and then dropped by
//     the caller) makes the connection refuse every further statement but
//     a ROLLBACK, and COMMIT roll back and return that error, so that
//     nothing after it can run outside the transaction the database rolled
//     back (MySQL) and nothing partial is committed;
//   - pool policy: each connection has a jittered lifetime, and one held
//     past the leak threshold is reported with the stack that took it;
//   - deadlines: a call whose ctx ended and whose server does not answer
//     has its connection cut (see watch), and a statement whose ctx ended
//     while it ran is stopped on the server when the driver's connector is
//     a drv.Canceller (MySQL's KILL QUERY; see conn.cancel).
//
// It forwards every optional driver interface with the behaviour and
// errors of the driver: database/sql changes course on the mere presence
// of some (SessionResetter, ExecerContext, QueryerContext,
// ColumnConverter), so those are claimed only when the driver has them;
// the others are always claimed and answered, for a driver without them,
// as database/sql would have.
//
// The wrapper is always on, so it is kept cheap: without a monitor it
// reads no clock per statement, and a statement that succeeds outside a
// transaction allocates nothing more than the driver's own call does.
package connwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
	"github.com/enginekit/enginekit/internal/netdial"
	"github.com/enginekit/enginekit/monitor"
)

// Options says what a wrapped connector observes and enforces.
type Options struct {
	DB      string           // the engine's name, in every event
	Dialect *dialect.Dialect // classifies the driver's errors (required)
	Monitor monitor.Monitor  // receives a QueryEvent per statement; nil or Nop: none
	// SlowQuery marks statements that took at least this long as Slow
	// (0: none).
	SlowQuery time.Duration
	// LeakThreshold reports a connection checked out for longer, once per
	// checkout, with the stack that took it, to a Monitor that is a
	// LeakMonitor; and counts it (0: off, and no stack is captured).
	LeakThreshold time.Duration
	// MaxLifetime gives each connection its own maximum age: MaxLifetime
	// less a random 0-10%, so that connections opened together do not all
	// expire together. A connection past its age is discarded when it is
	// taken from the pool or given back (0: off). Keep the pool's own
	// ConnMaxLifetime at MaxLifetime as a backstop for idle connections.
	MaxLifetime time.Duration
	// IdleCheck is how long a connection may sit idle in the pool before
	// it is checked, when taken out, for a peer that closed it (a restart,
	// a failover, pg_terminate_backend, an idle timeout): a dead one is
	// discarded and database/sql takes another, so no caller meets it.
	// The check reads the socket without blocking (no round trip); a
	// connection used within the window is not checked, so a busy pool
	// pays nothing. 0: DefaultIdleCheck; < 0: never checked.
	IdleCheck time.Duration
	// Gate, when set, is asked before each connection is opened: an error
	// it returns fails the Connect, so that nothing reaches the database
	// (an engine not started yet refuses so).
	Gate func() error

	// afterFunc starts the timer of a connection's lifetime: time.AfterFunc
	// unless a test ages connections by hand (export_test.go).
	afterFunc func(d time.Duration, f func()) stopper
}

// stopper is a timer that can be stopped.
type stopper interface{ Stop() bool }

// DefaultIdleCheck is Options.IdleCheck's default.
const DefaultIdleCheck = time.Second

// CancelWithin bounds a server-side cancel (drv.Canceller), from the end
// of the statement's ctx: the wait for a free cancel slot, the cancel's
// connection, its check of the server and its KILL. A cancel not done by
// then is reported as failed.
const CancelWithin = time.Second

// CancelSlots is how many server-side cancels of one connector run at
// once: a burst of deadlines (a slow server) opens no more connections
// than this for cancels; the others wait for a slot within CancelWithin.
const CancelSlots = 8

// Connector is a driver.Connector that wraps every connection of the one
// it wraps. Open a pool on it with sql.OpenDB; give sqlx the real driver
// name.
type Connector struct {
	c       driver.Connector
	o       Options
	d       *dialect.Dialect
	mon     monitor.Monitor     // nil when the options' monitor is Nop
	tracer  monitor.QueryTracer // nil when mon does not trace
	leakMon monitor.LeakMonitor // nil when it takes no leak reports
	poolMon monitor.PoolMonitor // nil when it takes no pool events

	leaks   atomic.Int64
	expired atomic.Int64
	dead    atomic.Int64 // idle connections found dead and discarded

	cancelDone   atomic.Int64 // statements stopped on the server (or found ended there)
	cancelFailed atomic.Int64 // server-side cancels that failed or were not attempted

	// clock is the time the connector was made: connections keep their
	// idle time as a monotonic offset from it (one clock read at checkin
	// and one at checkout, and only with IdleCheck on).
	clock time.Time
	// lost counts the lost connections seen: a connection that last
	// checked before the latest loss is checked at its next checkout,
	// however briefly it was idle (a restart kills them all at once).
	lost atomic.Int64

	// The driver's server-side cancel (nil: none), the slots that bound
	// the cancels running at once, and those running, which Close waits
	// for (none starts once closed).
	canceller drv.Canceller
	slots     chan struct{}
	cancelMu  sync.Mutex
	closed    bool
	cancels   sync.WaitGroup
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// Wrap returns c wrapped per o.
func Wrap(c driver.Connector, o Options) *Connector {
	w := &Connector{c: c, o: o, d: o.Dialect, clock: time.Now()}
	if w.o.IdleCheck == 0 {
		w.o.IdleCheck = DefaultIdleCheck
	}
	if w.d == nil {
		w.d = dialect.New(0, nil)
	}
	if cc, ok := c.(drv.Canceller); ok {
		w.canceller, w.slots = cc, make(chan struct{}, CancelSlots)
	}
	if !monitor.IsNop(o.Monitor) {
		w.mon = o.Monitor
		w.tracer, _ = o.Monitor.(monitor.QueryTracer)
		w.leakMon, _ = o.Monitor.(monitor.LeakMonitor)
		w.poolMon, _ = o.Monitor.(monitor.PoolMonitor)
	}
	return w
}

// Stats are a wrapped connector's own figures.
type Stats struct {
	Leaks   int64 // connections reported as leaked
	Expired int64 // connections discarded at the end of their jittered lifetime
	Dead    int64 // idle connections found dead when taken out, and discarded
	// Cancels counts the statements whose ctx ended while they ran that
	// were stopped on the server (drv.Canceller), CancelsFailed those
	// whose server-side cancel failed or was not attempted.
	Cancels, CancelsFailed int64
}

// Stats returns the connector's figures.
func (w *Connector) Stats() Stats {
	return Stats{Leaks: w.leaks.Load(), Expired: w.expired.Load(), Dead: w.dead.Load(),
		Cancels: w.cancelDone.Load(), CancelsFailed: w.cancelFailed.Load()}
}

// Connect opens a connection with the wrapped connector.
func (w *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if w.o.Gate != nil {
		if err := w.o.Gate(); err != nil {
			return nil, err
		}
	}
	var begun time.Time
	if w.poolMon != nil {
		begun = time.Now()
	}
	var slot netdial.Slot
	cw := watchConnect(ctx, &slot)
	c, err := w.c.Connect(netdial.WithSlot(ctx, &slot))
	var cid any
	if err == nil && w.canceller != nil {
		// Part of the connect: under its watch and the dialer's setup
		// deadline.
		if cid, err = w.canceller.Identify(ctx, c); err != nil {
			c.Close()
		}
	}
	err = cw.end(err)
	nc := slot.Conn()
	if err == nil && nc != nil {
		// The dialer's deadline bounded the setup; the driver's own
		// deadlines, or none, hold from here.
		if err = nc.SetDeadline(time.Time{}); err != nil {
			c.Close()
		}
	}
	if err != nil {
		err = w.tag(err)
		if w.poolMon != nil {
			w.poolMon.Pool(ctx, monitor.PoolEvent{DB: w.o.DB, Kind: monitor.PoolConnectFailed,
				Duration: time.Since(begun), Err: err})
		}
		return nil, err
	}
	if w.poolMon != nil {
		w.poolMon.Pool(ctx, monitor.PoolEvent{DB: w.o.DB, Kind: monitor.PoolConnected, Duration: time.Since(begun)})
	}
	wc := &conn{c: c, w: w, nc: nc, lost: w.lost.Load(), cid: cid}
	if wc.nc != nil && w.o.IdleCheck > 0 {
		wc.idleAt = time.Since(w.clock)
	}
	if w.o.MaxLifetime > 0 {
		life := w.o.MaxLifetime - rand.N(w.o.MaxLifetime/10+1)
		wc.deadline = time.Now().Add(life)
		age := func() { wc.old.Store(true) }
		if w.o.afterFunc != nil {
			wc.aging = w.o.afterFunc(life, age)
		} else {
			wc.aging = time.AfterFunc(life, age)
		}
	}
	if w.o.LeakThreshold > 0 {
		wc.lk = &leakState{}
	}
	return wrapConn(wc), nil
}

// Driver returns the wrapped connector's driver.
func (w *Connector) Driver() driver.Driver { return w.c.Driver() }

// Close closes the wrapped connector when it is an io.Closer, as sql.DB's
// Close would have, once the server-side cancels under way are done (at
// most CancelWithin): none outlives the pool.
func (w *Connector) Close() error {
	w.cancelMu.Lock()
	w.closed = true
	w.cancelMu.Unlock()
	w.cancels.Wait()
	if c, ok := w.c.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// errCancelClosed is why a cancel was not attempted: its pool was closed.
var errCancelClosed = errors.New("server-side cancel not attempted: the pool is closed")

// cancelOnServer stops, on a goroutine of its own, the statement of the
// connection that cid identifies, whose ctx ended, and reports it to the
// monitor (monitor.PoolCancel; Err when the cancel failed, or was not
// attempted). It never blocks: its caller holds a watch's lock.
func (w *Connector) cancelOnServer(ctx context.Context, cid any) {
	ctx = context.WithoutCancel(ctx) // for the monitor: the statement's values, not its end
	begun := time.Now()
	w.cancelMu.Lock()
	if w.closed {
		w.cancelMu.Unlock()
		w.cancelled(ctx, begun, errCancelClosed)
		return
	}
	w.cancels.Add(1)
	w.cancelMu.Unlock()
	go func() {
		defer w.cancels.Done()
		cctx, stop := context.WithTimeout(ctx, CancelWithin)
		defer stop()
		var err error
		select {
		case w.slots <- struct{}{}:
			err = w.canceller.Cancel(cctx, cid)
			<-w.slots
		case <-cctx.Done():
			err = fmt.Errorf("server-side cancel not attempted within %s: %d cancels of this pool under way", CancelWithin, CancelSlots)
		}
		w.cancelled(ctx, begun, err)
	}()
}

// cancelled reports a server-side cancel.
func (w *Connector) cancelled(ctx context.Context, begun time.Time, err error) {
	if err != nil {
		w.cancelFailed.Add(1)
	} else {
		w.cancelDone.Add(1)
	}
	if w.poolMon != nil {
		w.poolMon.Pool(ctx, monitor.PoolEvent{DB: w.o.DB, Kind: monitor.PoolCancel, Duration: time.Since(begun), Err: err})
	}
}

// tag returns err as a *dialect.Error when the driver's dialect knows its
// class. database/sql's own signals (ErrSkip, ErrBadConn, io.EOF) and ctx
// errors pass as they are: database/sql compares some of them by identity.
func (w *Connector) tag(err error) error {
	switch err {
	case nil, driver.ErrSkip, driver.ErrBadConn, io.EOF, context.Canceled, context.DeadlineExceeded: //nolint:errorlint // identities database/sql compares
		return err
	}
	return w.d.Tag(err)
}

// start begins the observation of a statement: the ctx a tracing monitor
// returns, and the time it was sent (zero without a monitor).
func (w *Connector) start(ctx context.Context, op monitor.Op, query string, args []driver.NamedValue) (context.Context, time.Time) {
	if w.mon == nil {
		return ctx, time.Time{}
	}
	if w.tracer != nil {
		ctx = w.tracer.QueryStart(ctx, monitor.QueryStart{DB: w.o.DB, Op: op, SQL: query, Args: args})
	}
	return ctx, time.Now()
}

// observe reports a statement to the monitor.
func (w *Connector) observe(ctx context.Context, op monitor.Op, query string, args []driver.NamedValue, begun time.Time, rows int64, err error) {
	d := time.Since(begun)
	w.mon.Query(ctx, monitor.QueryEvent{
		DB: w.o.DB, Op: op, SQL: query, Args: args, Duration: d, Rows: rows, Err: err,
		Slow: w.o.SlowQuery > 0 && d >= w.o.SlowQuery,
	})
}

// Unwrap returns the driver's own connection inside a connection of a
// wrapped connector (as sql.Conn.Raw hands it), or c itself.
func Unwrap(c any) any {
	switch wc := c.(type) {
	case *conn:
		return wc.c
	case connR:
		return wc.c
	case connEQ:
		return wc.c
	case connEQR:
		return wc.c
	}
	return c
}

// leakState tracks one connection's checkout for leak detection. The
// timer's goroutine reads it, hence the mutex.
type leakState struct {
	mu       sync.Mutex
	out      bool // checked out
	since    time.Time
	reported bool
	timer    *time.Timer
	pcs      [48]uintptr
	npc      int
}

// checkout starts the clock of a connection taken from the pool.
func (c *conn) checkout() {
	lk := c.lk
	lk.mu.Lock()
	lk.out, lk.reported, lk.since = true, false, time.Now()
	lk.npc = runtime.Callers(3, lk.pcs[:])
	if lk.timer == nil {
		lk.timer = time.AfterFunc(c.w.o.LeakThreshold, c.leaked)
	} else {
		lk.timer.Reset(c.w.o.LeakThreshold)
	}
	lk.mu.Unlock()
}

// checkin stops the clock of a connection given back or closed.
func (c *conn) checkin() {
	lk := c.lk
	lk.mu.Lock()
	lk.out = false
	if lk.timer != nil {
		lk.timer.Stop()
	}
	lk.mu.Unlock()
}

// leaked runs on the timer's goroutine when a checkout lasts too long.
func (c *conn) leaked() {
	lk := c.lk
	lk.mu.Lock()
	held := time.Since(lk.since)
	if !lk.out || lk.reported || held < c.w.o.LeakThreshold {
		lk.mu.Unlock()
		return
	}
	lk.reported = true
	stack := formatStack(lk.pcs[:lk.npc])
	lk.mu.Unlock()
	c.w.leaks.Add(1)
	if c.w.leakMon != nil {
		c.w.leakMon.Leak(monitor.LeakEvent{DB: c.w.o.DB, Held: held, Stack: stack})
	}
}

// formatStack writes frames as runtime/debug.Stack does, leaving out the
// frames of database/sql and of this package, which say nothing about who
// took the connection.
func formatStack(pcs []uintptr) string {
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "database/sql.") && !strings.HasPrefix(f.Function, thisPackage) {
			b.WriteString(f.Function)
			b.WriteString("\n\t")
			b.WriteString(f.File)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(f.Line))
			b.WriteByte('\n')
		}
		if !more {
			return b.String()
		}
	}
}

const thisPackage = "github.com/enginekit/enginekit/internal/connwrap."

// errNamedParams is database/sql's error for a driver without
// NamedValueChecker given named arguments.
var errNamedParams = errors.New("sql: driver does not support the use of Named Parameters")

// namedValueToValue converts arguments for the legacy driver interfaces,
// as database/sql does.
func namedValueToValue(named []driver.NamedValue) ([]driver.Value, error) {
	dargs := make([]driver.Value, len(named))
	for n, param := range named {
		if len(param.Name) > 0 {
			return nil, errNamedParams
		}
		dargs[n] = param.Value
	}
	return dargs, nil
}
