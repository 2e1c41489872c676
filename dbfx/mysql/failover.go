package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
)

// failover is the connector of a DSN given further servers of its
// database (dbfx.Config.FailoverAddrs): the mysql driver takes one
// address per DSN, so there is one driver connector per server, the
// DSN's first, each with the DSN's user, database, parameters and TLS.
//
// A new connection tries the current server, the one that answered
// last, and moves on to the next (in the order given, wrapping around)
// when it is down: the connection was refused, reset or timed out, the
// server said it is shutting down (1053) or full (1040), or it is a
// Galera node not ready for statements (wsrep_ready OFF, asked once per
// new connection; see ready). A server that answers with any other
// error (a wrong password, an unknown database) is not down: its error
// is returned at once, since the others hold the same users and
// databases. The server that answers becomes the
// current one, for every later connection of the pool and of its
// cancels: the pool stays on it until it is down in turn (it never moves
// back by itself, which suits a Galera cluster, whose nodes all take
// writes, and a primary whose standby took over).
//
// The whole connect is bounded by the driver's connect timeout
// (Config.ConnectTimeout unless the DSN sets timeout=) and by ctx: each
// server is given an equal share of the time left, so that one that
// never answers (a silent host) leaves time for the others; one that
// refuses costs nothing.
//
// Connections already open stay where they are: those on a server that
// went down fail (the pool's liveness check discards the idle ones) and
// are replaced by connections to the current server.
type failover struct {
	addrs   []string
	conns   []driver.Connector // conns[i] opens addrs[i]
	timeout time.Duration      // bounds a whole connect (0: ctx alone)
	log     *zap.Logger
	current atomic.Int32 // index of the server that answered last
}

// newFailover returns the connector over mc's server and addrs.
func newFailover(mc *mysql.Config, addrs []string, log *zap.Logger) (*failover, error) {
	if mc.Net != "tcp" && mc.Net != "tcp4" && mc.Net != "tcp6" {
		return nil, fmt.Errorf("FailoverAddrs are host:port addresses: the DSN must be tcp(host:port), not %s", mc.Net)
	}
	host0, _, _ := net.SplitHostPort(mc.Addr)
	f := &failover{addrs: append([]string{mc.Addr}, addrs...), timeout: mc.Timeout, log: log}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	for i, addr := range f.addrs {
		c := mc
		if i > 0 {
			c = mc.Clone()
			c.Addr = addr
			// A server name taken from the DSN's address (tls=true,
			// WithTLS) is each server's own.
			if host, _, err := net.SplitHostPort(addr); err == nil && c.TLS != nil && c.TLS.ServerName == host0 {
				c.TLS = c.TLS.Clone()
				c.TLS.ServerName = host
			}
		}
		conn, err := mysql.NewConnector(c)
		if err != nil {
			return nil, err
		}
		f.conns = append(f.conns, conn)
	}
	return f, nil
}

// Connect opens a connection to the current server, else to the next
// one that is up.
func (f *failover) Connect(ctx context.Context) (driver.Conn, error) {
	caller := ctx
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	n := len(f.conns)
	first := int(f.current.Load())
	var errs []error
	for k := range n {
		i := (first + k) % n
		c, err := f.connect(caller, ctx, i, n-k)
		if err == nil {
			if i != first && f.current.CompareAndSwap(int32(first), int32(i)) {
				f.log.Warn("mysql: a server is down; new connections go to the next",
					zap.String("down", f.addrs[first]), zap.String("now", f.addrs[i]))
			}
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || !down(err) {
			break // no time left, or the server answered
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, &allDown{errs: errs}
}

// connect opens a connection to server i within ctx (the caller's,
// bounded by the connect timeout), given its share of the time left
// (left servers remain to be tried, i's included).
func (f *failover) connect(caller, ctx context.Context, i, left int) (driver.Conn, error) {
	actx := ctx
	if dl, ok := ctx.Deadline(); ok && left > 1 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(left))
		defer cancel()
	}
	begun := time.Now()
	c, err := f.conns[i].Connect(actx)
	if err == nil {
		if err = ready(actx, c); err == nil {
			return c, nil
		}
		_ = c.Close()
	}
	if actx.Err() != nil && caller.Err() == nil {
		// Its share or the connect timeout ran out, not the caller's
		// time: the server did not answer, which is no ctx error of the
		// caller.
		return nil, &noAnswer{addr: f.addrs[i], after: time.Since(begun)}
	}
	if len(f.conns) > 1 && !strings.Contains(err.Error(), f.addrs[i]) {
		err = fmt.Errorf("%s: %w", f.addrs[i], err)
	}
	return nil, err
}

// ready returns nil when the server of c takes statements, and a
// *notReady when it is a Galera node outside the cluster's primary
// component (cut off from the others, or joining): such a node accepts
// connections but refuses every statement with 1047 until it is back,
// so a connection to it is worth nothing. Galera runs where a wsrep
// provider is loaded; a MariaDB without one reports wsrep_ready OFF too,
// and MySQL nothing: both are ready.
func ready(ctx context.Context, c driver.Conn) error {
	q, ok := c.(driver.QueryerContext)
	if !ok {
		return nil
	}
	rows, err := q.QueryContext(ctx, "SHOW STATUS WHERE Variable_name IN ('wsrep_provider_name', 'wsrep_ready')", nil)
	if err != nil {
		return err
	}
	defer rows.Close()
	status := map[string]string{}
	v := make([]driver.Value, len(rows.Columns()))
	for len(v) == 2 && rows.Next(v) == nil {
		status[text(v[0])] = text(v[1])
	}
	if status["wsrep_provider_name"] == "" || strings.EqualFold(status["wsrep_ready"], "ON") {
		return nil
	}
	return &notReady{state: status["wsrep_ready"]}
}

// text is a text column's value as the driver gives it.
func text(v driver.Value) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	}
	return ""
}

// notReady: a Galera node that is not ready for statements (ready).
type notReady struct{ state string }

func (e *notReady) Error() string {
	return "a Galera node not ready for statements (wsrep_ready " + e.state + "): not in the cluster's primary component"
}

// Driver is the mysql driver.
func (f *failover) Driver() driver.Driver { return f.conns[0].Driver() }

// down reports whether a connect error says that its server cannot take
// connections now (rather than that it refused this one).
func down(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, and the 1047 of a
		// Galera node not ready for statements.
		return me.Number == 1040 || me.Number == 1053 || me.Number == 1047
	}
	return true
}

// noAnswer: a server did not answer within its share of the connect
// timeout. It is a net.Error that timed out, as a dial's timeout is.
type noAnswer struct {
	addr  string
	after time.Duration
}

func (e *noAnswer) Error() string {
	return fmt.Sprintf("%s: no answer within %s", e.addr, e.after.Round(time.Millisecond))
}
func (e *noAnswer) Timeout() bool   { return true }
func (e *noAnswer) Temporary() bool { return true }

var _ net.Error = (*noAnswer)(nil)

// allDown: no server took the connection; it holds each server's error.
type allDown struct{ errs []error }

func (e *allDown) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return "mysql: no server took the connection: " + strings.Join(msgs, "; ")
}

func (e *allDown) Unwrap() []error { return e.errs }
