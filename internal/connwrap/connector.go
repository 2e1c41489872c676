package monitor

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ConnectorOptions says what a wrapped connector observes and enforces.
type ConnectorOptions struct {
	DB      string  // the engine's name, in every event
	Monitor Monitor // receives a QueryEvent per statement; nil or Nop: none
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
}

// needed reports whether the options ask the wrapper for anything.
func (o ConnectorOptions) needed() bool {
	return !IsNop(o.Monitor) || o.LeakThreshold > 0 || o.MaxLifetime > 0
}

// Connector is a driver.Connector that observes the statements of the one
// it wraps and forwards every optional driver interface of its
// connections and statements with the same behaviour and errors. Open a
// pool on it with sql.OpenDB; give sqlx the real driver name.
type Connector struct {
	c       driver.Connector
	o       ConnectorOptions
	mon     Monitor     // nil when the options' monitor is Nop
	leakMon LeakMonitor // nil when it takes no leak reports

	leaks   atomic.Int64
	expired atomic.Int64
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// WrapConnector returns c wrapped per o, or c itself when o asks for
// nothing (a Nop monitor, no leak threshold, no lifetime).
func WrapConnector(c driver.Connector, o ConnectorOptions) driver.Connector {
	if !o.needed() {
		return c
	}
	w := &Connector{c: c, o: o}
	if !IsNop(o.Monitor) {
		w.mon = o.Monitor
		w.leakMon, _ = o.Monitor.(LeakMonitor)
	}
	return w
}

// ConnectorStats are a wrapped connector's own figures.
type ConnectorStats struct {
	Leaks   int64 // connections reported as leaked
	Expired int64 // connections discarded at the end of their jittered lifetime
}

// Stats returns the connector's figures.
func (w *Connector) Stats() ConnectorStats {
	return ConnectorStats{Leaks: w.leaks.Load(), Expired: w.expired.Load()}
}

// Connect opens a connection with the wrapped connector.
func (w *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := w.c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	wc := &conn{c: c, w: w}
	if w.o.MaxLifetime > 0 {
		life := w.o.MaxLifetime - rand.N(w.o.MaxLifetime/10+1)
		wc.deadline = time.Now().Add(life)
	}
	if w.o.LeakThreshold > 0 {
		wc.lk = &leakState{}
	}
	return wrapConn(wc), nil
}

// Driver returns the wrapped connector's driver.
func (w *Connector) Driver() driver.Driver { return w.c.Driver() }

// Close closes the wrapped connector when it is an io.Closer, as sql.DB's
// Close would have.
func (w *Connector) Close() error {
	if c, ok := w.c.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// observe reports a statement to the monitor.
func (w *Connector) observe(ctx context.Context, op Op, query string, args []driver.NamedValue, begun time.Time, rows int64, err error) {
	d := time.Since(begun)
	w.mon.Query(ctx, QueryEvent{
		DB: w.o.DB, Op: op, SQL: query, Args: args, Duration: d, Rows: rows, Err: err,
		Slow: w.o.SlowQuery > 0 && d >= w.o.SlowQuery,
	})
}

// DSNConnector returns a connector that opens dsn with d: d's own when d
// is a driver.DriverContext, else one that calls d.Open(dsn), as sql.Open
// does. It serves drivers without a connector of their own (sqlite3).
func DSNConnector(d driver.Driver, dsn string) (driver.Connector, error) {
	if dc, ok := d.(driver.DriverContext); ok {
		return dc.OpenConnector(dsn)
	}
	return dsnConnector{d: d, dsn: dsn}, nil
}

type dsnConnector struct {
	d   driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.d }

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
		c.w.leakMon.Leak(LeakEvent{DB: c.w.o.DB, Held: held, Stack: stack})
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

const thisPackage = "github.com/enginekit/enginekit/monitor."

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
