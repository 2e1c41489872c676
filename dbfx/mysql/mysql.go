// Package mysql is enginekit's MySQL and MariaDB driver, on
// go-sql-driver/mysql. Put Module in the Fx graph beside dbfx.Module, or
// give Driver() to dbfx.Open:
//
//	fx.New(fx.Supply(cfg), dbfx.Module, mysql.Module, ...)
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(mysql.Driver()))
//
// A pool opened by hand takes its error classification and retries with
// session.New(db, session.WithDriver(mysql.Driver())).
//
// DSNs: the driver's own form (user:pw@tcp(host:3306)/db?params) and
// mysql://user:pw@host:3306/db?params URLs. The engine sets parseTime and
// clientFoundRows (a DSN that turns either off is a config error),
// interpolateParams (see dbfx's package documentation) and, unless the DSN
// sets one, a connect timeout of Config.ConnectTimeout. The driver's own
// log lines go to the engine's logger at debug level.
//
// Errors: deadlocks (1213) and lock wait timeouts (1205) are retried and
// abort the transaction, 1062 is a unique violation, 1451 and 1452 a
// foreign key, 1048 and 1364 a not-null, 3819 and 4025 a check violation,
// 3572 a locked row, 3024, 1969 and 1317 a canceled statement, 1792, 1836
// and 1290 (--read-only) a refused write, 1053, 1927, 4031, 2006 and 2013
// a lost connection, and so is Galera's 1047 (a node outside the primary
// component refuses every statement): the connection is not used again. Package session's doc has the table of the error
// classes matched with errors.Is.
//
// Cancelled statements: MySQL and MariaDB run a statement to its end when
// its client gives up on it (the driver closes its socket when the ctx
// ends; SELECT SLEEP(20) ran on after a 500ms deadline). enginekit stops
// it with KILL QUERY, one per cancelled statement, from a connection of
// its own, within a second of the deadline (at most 8 such connections at
// once per pool), and reports each to a monitor.PoolMonitor as a
// monitor.PoolCancel (Err when it failed or was not attempted). The
// statement's connection is never used again: statements after it in its
// transaction are refused, its COMMIT rolls back, the pool discards it. A
// KILL is sent only to the statement's own server: each connection holds
// a user-level lock of a random name from its connect (GET_LOCK: one
// round trip per connection, no privilege needed), and the KILL's
// connection checks with IS_USED_LOCK that its server has the statement's
// connection holding that lock; behind a proxy or a cluster address that
// sends it to another server, or after a restart, nothing is killed.
// Where the server refuses GET_LOCK (MariaDB Galera versions that answer
// 1235 with wsrep_on, MDEV-30473), a cancelled statement runs to its end,
// as it did before. MariaDB 10.11.19 with galera-4 26.4.23 allows it, each
// node holding its own user-level locks (they are not replicated): there
// a statement is stopped on its node, and a cancel whose connection
// reached another node (after a move to one of Config.FailoverAddrs)
// kills nothing.
//
// Several servers: the mysql driver takes one address per DSN, so the
// further servers of the DSN's database (a Galera cluster's other nodes,
// a standby that may take over) are given as Config.FailoverAddrs,
// host:port each, with the DSN's user, password, database, parameters
// and TLS. A new connection tries the server that served the last one
// first and moves on, in the order given, when it is down (refused,
// reset, no answer within its share of ConnectTimeout, or 1040/1053); a
// server that answers with another error (access denied) is not down.
// The pool stays on the server that answered until that one is down in
// turn. The connector's documentation (failover.go) has the details. Behind ProxySQL, a connection that took a lock is
// no longer multiplexed: each keeps a server connection of its own. The
// connector's documentation (cancel.go) says why a lock rather than server
// variables identifies the server.
package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
)

// Module puts the driver in the Fx graph, where dbfx.Module and dbfx.Named
// find it.
var Module fx.Option = dbfx.DriverModule(Driver)

// Driver returns the MySQL and MariaDB driver.
func Driver() dbfx.Driver { return newDriver(nil) }

// newDriver is Driver whose cancels ask their server about the lock name
// askFor returns (nil: the statement's own; see connector).
func newDriver(askFor func(lock string) string) *drv.Driver {
	return &drv.Driver{
		Name:    "mysql",
		Package: "github.com/enginekit/enginekit/dbfx/mysql",
		SQL:     dialect.New(dialect.MySQL, classify),
		Resolve: func(dsn string, o drv.Options) (*drv.Target, error) {
			return resolve(dsn, o, askFor)
		},
		Permanent:    permanent,
		ConnectHooks: true,
		Failover:     true,
	}
}

func classify(err error) dialect.Class {
	if errors.Is(err, mysql.ErrInvalidConn) {
		return dialect.ConnLost | dialect.Aborting
	}
	var e *mysql.MySQLError
	if !errors.As(err, &e) {
		return 0
	}
	switch e.Number {
	case 1213: // ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back
		return dialect.Retryable | dialect.Aborting
	case 1205: // ER_LOCK_WAIT_TIMEOUT: only the statement is rolled back, but a partial
		// transaction must not be committed: enginekit rolls it back and retries.
		// MariaDB returns it for a NOWAIT read of a locked row too.
		return dialect.Retryable | dialect.Aborting | dialect.Locked
	case 3572: // ER_LOCK_NOWAIT (MySQL 8): a NOWAIT read met a locked row
		return dialect.Locked
	case 1062: // ER_DUP_ENTRY
		return dialect.Unique
	case 1451, 1452, 1216, 1217: // ER_ROW_IS_REFERENCED_2, ER_NO_REFERENCED_ROW_2 (and their older forms)
		return dialect.ForeignKey
	case 1048, 1364: // ER_BAD_NULL_ERROR, ER_NO_DEFAULT_FOR_FIELD (strict mode)
		return dialect.NotNull
	case 3819, 4025: // ER_CHECK_CONSTRAINT_VIOLATED (MySQL 8), ER_CONSTRAINT_FAILED (MariaDB)
		return dialect.Check
	case 3024, 1969, 1317: // ER_QUERY_TIMEOUT (MySQL 8), ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_INTERRUPTED
		return dialect.Canceled
	case 1792, 1836: // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_READ_ONLY_MODE
		return dialect.ReadOnly
	case 1290: // ER_OPTION_PREVENTS_STATEMENT: read-only only when the option is --read-only or --super-read-only
		if strings.Contains(e.Message, "read-only") || strings.Contains(e.Message, "read_only") {
			return dialect.ReadOnly
		}
	case 1053, 1927, 4031, 2006, 2013: // server shutdown, connection killed (MariaDB), idle disconnect (MySQL 8),
		// server gone, lost during query (the client library's codes, which a proxy may send)
		return dialect.ConnLost | dialect.Aborting
	case 1047: // a Galera node outside the primary component ("WSREP has not yet prepared node for
		// application use"): it refuses every statement until it is back, so the connection is as good as lost
		return dialect.ConnLost | dialect.Aborting
	case 1243, 1615: // ER_UNKNOWN_STMT_HANDLER, ER_NEED_REPREPARE
		return dialect.Stale
	}
	return 0
}

// permanent: the server answered and refused (access denied, unknown
// database...): waiting will not change its mind.
func permanent(err error) (bool, bool) {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return true, true
	}
	return false, false
}

func resolve(dsn string, o drv.Options, askFor func(string) string) (*drv.Target, error) {
	mc, err := parse(dsn, o)
	if err != nil {
		return nil, err
	}
	t := &drv.Target{Password: mc.Passwd, Host: mc.Addr + "/" + mc.DBName, Database: mc.DBName, Server: mc.Addr}
	if host, port, err := net.SplitHostPort(mc.Addr); err == nil && mc.Net == "tcp" {
		t.Server = host
		t.Port, _ = strconv.Atoi(port)
	}
	t.TLSOff = mc.Net != "unix" && o.TLS == nil && (mc.TLSConfig == "" || mc.TLSConfig == "false" || mc.TLSConfig == "preferred")
	if len(o.FailoverAddrs) > 0 {
		f, err := newFailover(mc, o.FailoverAddrs, o.Log)
		if err != nil {
			return nil, err
		}
		// One failover connector per Target: its pool and cancels share
		// the current server.
		t.Writer = func() (driver.Connector, error) { return &connector{Connector: f, askFor: askFor}, nil }
		return t, nil
	}
	t.Writer = func() (driver.Connector, error) {
		c, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, err
		}
		if o.TransactionPooling {
			// A pooler that multiplexes connections: a KILL QUERY by
			// connection id could stop another client's statement, and
			// the user-level lock that proves the id would pin each
			// connection to a server connection of its own. No
			// server-side cancel: a statement runs on after its ctx.
			return c, nil
		}
		return &connector{Connector: c, askFor: askFor}, nil
	}
	return t, nil
}

// parse reads and checks a DSN and sets what enginekit relies on.
func parse(dsn string, o drv.Options) (*mysql.Config, error) {
	if strings.HasPrefix(dsn, "mysql://") {
		var err error
		if dsn, err = urlToDSN(dsn); err != nil {
			return nil, err
		}
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("not a valid mysql DSN: %v", strings.TrimPrefix(err.Error(), "invalid DSN: "))
	}
	// enginekit relies on these: DATETIME scans into time.Time, and an
	// UPDATE that changes nothing still counts the row it matched.
	for param, on := range map[string]bool{"parseTime": mc.ParseTime, "clientFoundRows": mc.ClientFoundRows} {
		if !on && strings.Contains(dsn, param+"=") {
			return nil, fmt.Errorf("%s must be true (enginekit relies on it)", param)
		}
	}
	mc.ParseTime, mc.ClientFoundRows = true, true
	// A statement with arguments sent as it is takes one round trip instead
	// of a server-side prepare, execute and close: the driver writes the
	// values into the SQL text (escaped, outside strings and comments) and
	// falls back to a prepare for a value it cannot write. Only where the
	// DSN says nothing (false stays false), and never with a character set
	// that can hide a backslash in a multibyte character (dbfx's package
	// documentation says what it changes).
	if !strings.Contains(dsn, "interpolateParams=") && interpolationSafe(dsn, mc) {
		mc.InterpolateParams = true
	}
	if mc.Timeout == 0 {
		mc.Timeout = o.ConnectTimeout
	}
	if o.Dialer != nil && mc.DialFunc == nil && (mc.Net == "tcp" || mc.Net == "tcp4" || mc.Net == "tcp6" || mc.Net == "unix") {
		mc.DialFunc = o.Dialer.DialContext
	}
	if o.TLS != nil {
		// dbfx.WithTLS: the driver's TLS field, no registration by name;
		// it takes the place of the DSN's tls= and never falls back to
		// plain text. The driver sets ServerName from the address when
		// the config has none (unless it skips verification).
		mc.TLS = o.TLS.Clone()
		mc.TLSConfig = ""
		mc.AllowFallbackToPlaintext = false
		if mc.TLS.ServerName == "" && !mc.TLS.InsecureSkipVerify {
			if host, _, err := net.SplitHostPort(mc.Addr); err == nil {
				mc.TLS.ServerName = host
			}
		}
	}
	if o.Password != nil {
		// dbfx.WithPassword: the driver calls this on a copy of mc before
		// each connection it opens, the cancels' included.
		hook := o.Password
		if err := mc.Apply(mysql.BeforeConnect(func(ctx context.Context, c *mysql.Config) error {
			pw, err := hook(ctx)
			if err != nil {
				return err
			}
			c.Passwd = pw
			return nil
		})); err != nil {
			return nil, err
		}
	}
	if o.Log != nil {
		// The driver's own log lines go to the engine's logger, not stderr.
		mc.Logger = logger{o.Log}
	}
	return mc, nil
}

// interpolationSafe reports whether the mysql driver may write values into
// SQL text on connections of dsn: not when its character set or collation
// (a charset or collation parameter, or a system variable set in the DSN)
// is one whose multibyte characters may end in the byte of a backslash,
// which escaping cannot tell apart.
func interpolationSafe(dsn string, mc *mysql.Config) bool {
	params := strings.ToLower(mc.Collation + " " + dsn[strings.LastIndex(dsn, "/")+1:])
	for _, cs := range []string{"big5", "cp932", "gb2312", "gbk", "gb18030", "sjis"} {
		if strings.Contains(params, cs) {
			return false
		}
	}
	return true
}

// urlToDSN turns mysql://user:pass@host:port/db?params into the
// go-sql-driver form user:pass@tcp(host:port)/db?params.
func urlToDSN(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("not a valid mysql URL: %v", err)
	}
	mc := mysql.NewConfig()
	mc.User = u.User.Username()
	mc.Passwd, _ = u.User.Password()
	mc.Net, mc.Addr = "tcp", u.Host
	if u.Port() == "" {
		mc.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	mc.DBName = strings.TrimPrefix(u.Path, "/")
	dsn := mc.FormatDSN()
	if u.RawQuery != "" {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + u.RawQuery
	}
	return dsn, nil
}

// logger passes the mysql driver's log lines to zap at debug level: they
// report connections the pool then replaces.
type logger struct{ l *zap.Logger }

func (m logger) Print(v ...any) { m.l.Debug("mysql driver: " + fmt.Sprint(v...)) }
