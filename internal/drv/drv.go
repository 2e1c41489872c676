// Package drv is the contract between enginekit's core and its driver
// packages (dbfx/postgres, dbfx/mysql, dbfx/sqlite3): what a driver offers
// beyond a database/sql connector. The core imports no driver; each driver
// package fills in a Driver, and dbfx.Driver carries it. What a driver
// offers is asked here, in one place, never by a type switch on the
// driver's name elsewhere.
//
// Offered today: Resolve (reading, checking and redacting a DSN, the
// parameters enginekit relies on, the connectors to open), SQL (the SQL
// family and the classification of the driver's errors, which the
// connection wrapper tags errors with and session retries by), Permanent
// (which connect errors waiting cannot cure), and Canceller (stopping on
// the server a statement whose ctx ended, where the server does not stop
// it when its client gives up: MySQL's KILL QUERY).
//
// Canceller is an optional interface of the driver.Connector that a
// Target's Writer or Reader returns, rather than a field of Driver: a
// cancel opens a connection of its own, with the address, credentials,
// TLS and dialer of the pool whose statement it stops, which only that
// pool's connector knows. The connection wrapper finds it when it wraps
// the connector. A driver whose server cancels on its own leaves it out:
// lib/pq sends PostgreSQL's cancel request itself when a ctx ends, and
// SQLite runs in the caller's process (go-sqlite3 interrupts it).
//
// Where the capabilities that the next features need go, so that each is
// settled once:
//
//   - Liveness of a pooled connection before it is handed out: a field
//     Alive func(ctx context.Context, c driver.Conn) error, which the
//     connection wrapper calls in ResetSession for a connection idle past
//     a threshold, answering driver.ErrBadConn for a dead one (database/sql
//     then takes another). nil: the driver checks for itself (mysql does).
//   - Bulk load: CopyFrom, given the driver's own connection, which
//     session finds under the wrapper (sql.Conn.Raw) and offers to repo;
//     the core names no driver type.
//   - Statement-cache policy: CachesStatements, for a driver that caches
//     statements itself (pgx); off behind PgBouncer in transaction mode.
//
// The connection wrapper (internal/connwrap) sits on every connector a
// Target opens.
package drv

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/netdial"
)

// Driver is what the core knows of one database driver. A *Driver is
// what dbfx.Driver and session.Driver hold: its methods Spec and Dialect
// are theirs.
type Driver struct {
	// Name is the name Config.Driver takes: postgres, pgx, mysql or
	// sqlite3.
	Name string
	// Form is the DSN form the driver reads, when it is another driver's
	// name: pgx reads postgres DSNs. A DSN of that form picks the driver
	// of its own name first, then this one.
	Form string
	// Package is the import path of the driver package, for messages.
	Package string
	// SQL is the driver's SQL family and error classification.
	SQL *dialect.Dialect
	// Resolve parses and checks dsn, adds the parameters enginekit relies
	// on, and says what to open. Its errors never quote the DSN.
	Resolve func(dsn string, o Options) (*Target, error)
	// ConnectHooks: Resolve honours Options.Password and Options.TLS
	// (dbfx.WithPassword, dbfx.WithTLS); dbfx refuses both for a driver
	// without it rather than ignore them.
	ConnectHooks bool
	// Permanent tells, for a connect error the driver knows, whether
	// waiting cannot cure it (a wrong password, an unknown database):
	// known is false for an error it does not know.
	Permanent func(err error) (permanent, known bool)
	// CachesStatements: the driver prepares and caches statements itself
	// (pgx), so session keeps no statement cache on its pools.
	CachesStatements bool
	// Failover: Resolve takes Options.FailoverAddrs (dbfx.Config's),
	// further servers of the DSN's database that a new connection moves
	// on to when the current one is down. Without it they are refused.
	Failover bool
	// CopyFrom loads rows into table's columns over conn, a connection of
	// the driver (the one under the connection wrapper) in a transaction:
	// PostgreSQL's COPY FROM STDIN. row fills dst with the values of row
	// i, n rows in all. It returns the rows loaded. nil: the driver has no
	// bulk path (repo sends multi-row INSERTs).
	CopyFrom func(ctx context.Context, conn any, table string, columns []string, n int, row func(i int, dst []any)) (int64, error)
}

// Spec returns d: it is how dbfx reads a dbfx.Driver.
func (d *Driver) Spec() *Driver { return d }

// Dialect is the driver's SQL family and error classification: it is how
// session reads a session.Driver.
func (d *Driver) Dialect() *dialect.Dialect { return d.SQL }

// String is the driver's name.
func (d *Driver) String() string { return d.Name }

// Options are the engine's settings that shape a Target.
type Options struct {
	ConnectTimeout time.Duration // bounds a connection's setup
	Log            *zap.Logger   // for the driver's own log lines
	// Dialer opens the driver's network connections (nil: the driver's
	// own way): keepalive, a user timeout, a setup deadline, and the
	// connection handed to the connection wrapper for its liveness check.
	Dialer *netdial.Dialer
	// Password, when set, gives the password of each new connection in
	// place of the DSN's (dbfx.WithPassword): called at every connect, the
	// server-side cancel's too. Its errors match dbfx.ErrCredentials.
	Password func(ctx context.Context) (string, error)
	// TLS, when set, is the TLS configuration of every network connection,
	// cloned for each, in place of the DSN's TLS settings (dbfx.WithTLS):
	// the connection fails when the server does not offer TLS.
	TLS *tls.Config
	// FailoverAddrs are further servers of the DSN's database, host:port
	// each, checked by dbfx (Config.FailoverAddrs; set for the primary DSN
	// only, never for a replica's).
	FailoverAddrs []string
	// TransactionPooling: a pooler in transaction pooling mode (PgBouncer)
	// stands between the pools and the server (dbfx.Config.TransactionPooling),
	// so that each transaction, and each statement outside one, may run on
	// another server connection: the driver keeps nothing on a connection
	// past a transaction (no named prepared statements, no session
	// settings, no server-side cancel by connection id) and sends a
	// statement with arguments outside a transaction in one exchange that
	// the pooler keeps on one server connection (lib/pq: binary_parameters;
	// pgx: the exec or simple protocol).
	TransactionPooling bool
}

// Target is a resolved DSN: the connectors to open and what may be said
// of it.
type Target struct {
	Writer func() (driver.Connector, error) // the primary pool's connections
	// Reader opens the connections of a separate read-only pool (SQLite's
	// query-only readers); nil when the writer serves reads too.
	Reader func() (driver.Connector, error)
	// Memory: a database that lives in its one connection (SQLite
	// :memory:), which must never close.
	Memory   bool
	Host     string // where the database is, for messages: never the password
	File     string // the database file (SQLite), for a lock beside it; "" otherwise
	Password string // scrubbed from any error text
	TLSOff   bool   // a network connection without TLS
	// Database, Server and Port name the database for monitors
	// (monitor.EngineInfo): its name on the server, or SQLite's file; the
	// server's host, IP address or socket; its port, 0 when none.
	Database string
	Server   string
	Port     int
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

// Canceller stops on the server a statement whose ctx ended, for a driver
// whose server goes on running a statement its client gave up on (MySQL
// and MariaDB run it to its end: the driver only closes its socket). It is
// an optional interface of the driver.Connector a Target returns; the
// connection wrapper (internal/connwrap) calls it:
//
//   - Identify on each connection the connector opens, before any other
//     use of it;
//   - Cancel when the ctx of a statement (an exec, a query, the reading of
//     its rows) ends while the statement is still running, at most once
//     per connection, on a goroutine of its own, bounded by ctx. Before it
//     calls Cancel, the wrapper marks the connection so that nothing else
//     ever runs on it (later statements are refused, the pool discards
//     it): a cancel can then only reach the statement it was meant for,
//     or nothing.
type Canceller interface {
	// Identify returns what Cancel needs to find, from another connection,
	// the statements of c on its server (MySQL: c's connection id and the
	// proof of which server c is on). It is kept with the connection. An
	// error fails the connect (c is closed); a connection that cannot be
	// cancelled safely is not an error: Cancel then says why it did
	// nothing.
	Identify(ctx context.Context, c driver.Conn) (any, error)
	// Cancel stops the statement running on the connection that Identify
	// described, from a connection of its own, and only when it finds that
	// connection on the server it reached. nil: the statement is no longer
	// running (it was stopped, or it had ended); an error: it may still be
	// running (the cancel failed, or was not attempted for safety).
	Cancel(ctx context.Context, identity any) error
}

// PermanentSQLState is Driver.Permanent for PostgreSQL, whichever driver
// returned the error (one with a SQLState method): a server that answered
// refuses for good (a wrong password, an unknown database), unless it is
// starting up (57P03, cannot_connect_now).
func PermanentSQLState(err error) (permanent, known bool) {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		return pe.SQLState() != "57P03", true
	}
	return false, false
}
