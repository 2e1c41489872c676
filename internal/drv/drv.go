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
// connection wrapper tags errors with and session retries by), and
// Permanent (which connect errors waiting cannot cure).
//
// Where the capabilities that the next features need go, so that each is
// settled once:
//
//   - Liveness of a pooled connection before it is handed out: a field
//     Alive func(ctx context.Context, c driver.Conn) error, which the
//     connection wrapper calls in ResetSession for a connection idle past
//     a threshold, answering driver.ErrBadConn for a dead one (database/sql
//     then takes another). nil: the driver checks for itself (mysql does).
//   - Server-side cancel of a statement whose ctx ended: a field Cancel,
//     called by the wrapper with the connection the statement ran on, which
//     may open a connection of its own (MySQL's KILL QUERY); nil: the
//     driver cancels on its own (PostgreSQL's cancel request).
//   - Bulk load: an optional interface on the driver's connection, found
//     through the wrapper by session (as sql.Conn.Raw does) and offered to
//     repo; the core names no driver type.
//   - Statement-cache policy: a field that tells session whether to keep
//     prepared statements of its own for this driver and Target (off behind
//     PgBouncer in transaction mode; left to a driver that caches itself).
//
// The connection wrapper (internal/connwrap) sits on every connector a
// Target opens.
package drv

import (
	"context"
	"database/sql/driver"
	"time"

	"go.uber.org/zap"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/netdial"
)

// Driver is what the core knows of one database driver. A *Driver is
// what dbfx.Driver and session.Driver hold: its methods Spec and Dialect
// are theirs.
type Driver struct {
	// Name is the name Config.Driver takes: postgres, mysql or sqlite3.
	Name string
	// Package is the import path of the driver package, for messages.
	Package string
	// SQL is the driver's SQL family and error classification.
	SQL *dialect.Dialect
	// Resolve parses and checks dsn, adds the parameters enginekit relies
	// on, and says what to open. Its errors never quote the DSN.
	Resolve func(dsn string, o Options) (*Target, error)
	// Permanent tells, for a connect error the driver knows, whether
	// waiting cannot cure it (a wrong password, an unknown database):
	// known is false for an error it does not know.
	Permanent func(err error) (permanent, known bool)
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
