package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"
)

// Class is a set of facts about an error, as bits.
type Class uint8

const (
	// Retryable: running the whole transaction again may succeed
	// (serialization failure, deadlock, lock wait timeout, SQLite busy).
	Retryable Class = 1 << iota
	// Aborting: the database has rolled back, or will only roll back, the
	// transaction the statement ran in. Nothing more may be sent in it.
	Aborting
	// Unique: a unique or primary key constraint was violated.
	Unique
	// ConnLost: the connection is gone; the outcome of a COMMIT sent on it
	// is unknown.
	ConnLost
	// ReadOnly: a write was refused because the transaction or connection
	// is read-only.
	ReadOnly
	// Stale: a prepared statement the server no longer has, or whose plan
	// no longer fits the schema (a DDL changed its result's columns). The
	// statement did not run; preparing it again cures it.
	Stale
)

// Has reports whether every bit of x is in c.
func (c Class) Has(x Class) bool { return c&x == x }

// sqlStater is implemented by *pq.Error and by pgx's *pgconn.PgError, so
// both PostgreSQL drivers are classified without importing pgx.
type sqlStater interface{ SQLState() string }

func classifyPostgres(err error) Class {
	if errors.Is(err, pq.ErrInFailedTransaction) { // COMMIT of an aborted transaction: lib/pq rolled it back
		return Aborting
	}
	var e sqlStater
	if !errors.As(err, &e) {
		return 0
	}
	code := e.SQLState()
	// Every error raised by the server aborts the transaction it ran in,
	// unless a savepoint contains it: the caller knows whether one does.
	c := Aborting
	switch {
	case code == "40001" || code == "40P01": // serialization_failure, deadlock_detected
		c |= Retryable
	case code == "23505": // unique_violation
		c |= Unique
	case code == "25006": // read_only_sql_transaction
		c |= ReadOnly
	case len(code) == 5 && code[:2] == "08", // connection_exception
		code == "57P01", code == "57P02", code == "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
		c |= ConnLost
	case code == "26000": // invalid_sql_statement_name: "prepared statement ... does not exist"
		c |= Stale
	case code == "0A000": // feature_not_supported, raised for a plan a DDL made stale
		if ee, ok := e.(error); ok && strings.Contains(ee.Error(), "cached plan must not change result type") {
			c |= Stale
		}
	}
	return c
}

func classifyMySQL(err error) Class {
	var e *mysqldrv.MySQLError
	if !errors.As(err, &e) {
		return 0
	}
	switch e.Number {
	case 1213: // ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back
		return Retryable | Aborting
	case 1205: // ER_LOCK_WAIT_TIMEOUT: only the statement is rolled back, but a partial
		// transaction must not be committed: enginekit rolls it back and retries
		return Retryable | Aborting
	case 1062: // ER_DUP_ENTRY
		return Unique
	case 1792: // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
		return ReadOnly
	case 1053, 1927, 4031: // server shutdown, connection killed (MariaDB), idle disconnect (MySQL 8)
		return ConnLost | Aborting
	case 1243, 1615: // ER_UNKNOWN_STMT_HANDLER, ER_NEED_REPREPARE
		return Stale
	}
	return 0
}

func classifySQLite(err error) Class {
	var e sqlite3.Error
	if !errors.As(err, &e) {
		return 0
	}
	switch e.Code {
	case sqlite3.ErrBusy, sqlite3.ErrLocked:
		return Retryable | Aborting
	case sqlite3.ErrReadonly:
		return ReadOnly
	}
	switch e.ExtendedCode {
	case sqlite3.ErrConstraintUnique, sqlite3.ErrConstraintPrimaryKey:
		return Unique
	}
	return 0
}

// classifyTransport recognises a lost connection whatever the driver.
func classifyTransport(err error) Class {
	switch {
	case errors.Is(err, driver.ErrBadConn),
		errors.Is(err, mysqldrv.ErrInvalidConn),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE),
		isNetError(err):
		return ConnLost | Aborting
	}
	return 0
}

// isNetError reports whether err holds an error of the network. The
// context.DeadlineExceeded that a driver returns for a statement past its
// caller's deadline passes for one (it has Timeout and Temporary), but is
// the caller's doing, like context.Canceled, not a lost connection. A dial
// or read that timed out is a *net.OpError, and still counts.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne != context.DeadlineExceeded
}

// ClassifyAny classifies an error from any of the supported drivers. Their
// error types are distinct, so at most one family recognises it.
func ClassifyAny(err error) Class {
	if err == nil {
		return 0
	}
	return classifyPostgres(err) | classifyMySQL(err) | classifySQLite(err) | classifyTransport(err)
}
