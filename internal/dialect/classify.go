package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Class is a set of facts about an error, as bits. The public sentinels
// that stand for classes (session.ErrDuplicate, session.ErrConnLost...)
// are Sentinels: errors.Is matches them against an Error's bits.
type Class uint16

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
	// Locked: a row lock the statement asked for was held by another
	// transaction and the statement did not get it: at once for a NOWAIT
	// read, or after the lock timeout (PostgreSQL 55P03 lock_not_available,
	// MySQL 8 3572 ER_LOCK_NOWAIT, 1205 ER_LOCK_WAIT_TIMEOUT, which
	// MariaDB also returns for NOWAIT).
	Locked
	// ForeignKey: a foreign key constraint was violated (a row referring
	// to no row, or a row still referred to). PostgreSQL 23503; MySQL
	// 1451, 1452 (and 1216, 1217 of older servers); SQLite 787
	// SQLITE_CONSTRAINT_FOREIGNKEY.
	ForeignKey
	// NotNull: NULL written to a NOT NULL column, or such a column left
	// without a value or default. PostgreSQL 23502; MySQL 1048, 1364;
	// SQLite 1299 SQLITE_CONSTRAINT_NOTNULL.
	NotNull
	// Check: a CHECK constraint was violated. PostgreSQL 23514; MySQL 8
	// 3819; MariaDB 4025; SQLite 275 SQLITE_CONSTRAINT_CHECK.
	Check
	// Canceled: the statement was stopped before it finished: by the
	// server's statement timeout or a cancel (PostgreSQL 57014
	// query_canceled; MySQL 3024 max_execution_time, 1317 query
	// interrupted; MariaDB 1969 max_statement_time; SQLite 9
	// SQLITE_INTERRUPT), or by the connection wrapper, which cut the
	// connection of a call whose ctx ended and whose server did not
	// answer (ErrCut). A driver's bare context.Canceled or
	// context.DeadlineExceeded is the caller's own and passes untagged.
	Canceled
)

// Constraint is the set of the integrity constraint classes: a violation
// of any has one of them (Any, not Has).
const Constraint = Unique | ForeignKey | NotNull | Check

// Has reports whether every bit of x is in c.
func (c Class) Has(x Class) bool { return c&x == x }

// Any reports whether c has at least one bit of x.
func (c Class) Any(x Class) bool { return c&x != 0 }

// Sentinel is an error value that stands for classes of errors: an Error
// matches it (errors.Is) when its class has any bit of the sentinel's. A
// sentinel matches another one whose classes hold all of its own, so a
// narrow sentinel is also its wider one (a duplicate key is a constraint
// violation), and two sentinels of one class match each other
// (repo.ErrDuplicate and session.ErrDuplicate).
type Sentinel struct {
	msg   string
	class Class
}

// NewSentinel returns the sentinel of class c with the message msg.
func NewSentinel(msg string, c Class) *Sentinel { return &Sentinel{msg: msg, class: c} }

func (s *Sentinel) Error() string { return s.msg }

// Class is the set of classes the sentinel stands for.
func (s *Sentinel) Class() Class { return s.class }

// Is reports whether target is a sentinel whose classes hold all of s's.
func (s *Sentinel) Is(target error) bool {
	t, ok := target.(*Sentinel)
	return ok && s.class != 0 && s.class&^t.class == 0
}

// sqlStater is implemented by *pq.Error and by pgx's *pgconn.PgError, so
// both PostgreSQL drivers are classified without importing either.
type sqlStater interface{ SQLState() string }

// ClassifySQLState classifies a PostgreSQL server error by its SQLSTATE,
// whichever driver returned it (one with a SQLState method); 0 for any
// other error.
func ClassifySQLState(err error) Class {
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
	case code == "55P03": // lock_not_available: NOWAIT, lock_timeout
		c |= Locked
	case code == "25006": // read_only_sql_transaction
		c |= ReadOnly
	case code == "23503": // foreign_key_violation
		c |= ForeignKey
	case code == "23502": // not_null_violation
		c |= NotNull
	case code == "23514": // check_violation
		c |= Check
	case code == "57014": // query_canceled: statement_timeout, a cancel request
		c |= Canceled
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

// Error is a driver error together with the class its dialect gave it.
// The connection wrapper under every engine's pool returns the driver's
// errors of a known class wrapped so (Dialect.Tag), so that the class
// travels with the error to code that has no Dialect at hand
// (session.IsRetryable). errors.As still finds the driver's own error type
// inside.
type Error struct {
	Err   error
	Class Class
	d     *Dialect // the dialect that classified it
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is a Sentinel that e's class matches: the
// public error classes are matched with errors.Is, and errors.As still
// finds the driver's error inside.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Sentinel)
	return ok && e.Class.Any(t.class)
}

// Refused is the error of a statement that a connection refused, unsent,
// because an earlier error aborted its transaction. It has the class of
// that error.
type Refused struct{ Cause error }

func (e *Refused) Error() string {
	return "statement refused: an earlier error aborted the transaction: " + e.Cause.Error()
}
func (e *Refused) Unwrap() error { return e.Cause }

// Tag returns err as an *Error carrying its class, or err itself when it
// has none (or is tagged already).
func (d *Dialect) Tag(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*Error); ok { //nolint:errorlint // tagged by this very wrapper
		return err
	}
	c := d.classify(err) | Transport(err)
	if c == 0 {
		return err
	}
	return &Error{Err: err, Class: c, d: d}
}

// Tagged reports whether err holds an error d tagged: one that a
// connection of d's driver returned.
func (d *Dialect) Tagged(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.d == d
}

// ClassOf is the class an error carries (see Error) together with the
// lost-connection classes any error may have; 0 for an error that no
// connection wrapper classified.
func ClassOf(err error) Class {
	if err == nil {
		return 0
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Class | Transport(err)
	}
	return Transport(err)
}

// ErrCut is in the error of a call whose connection the connection
// wrapper closed because the server did not answer by the call's
// deadline: the connection is lost, and what the call sent may or may not
// have been done.
var ErrCut = errors.New("the server did not answer by the deadline: connection closed")

// Transport recognises a lost connection whatever the driver. A
// connection the wrapper cut (ErrCut) is lost and its call Canceled.
func Transport(err error) Class {
	switch {
	case errors.Is(err, ErrCut):
		return ConnLost | Aborting | Canceled
	case errors.Is(err, driver.ErrBadConn),
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
