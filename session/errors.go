package session

import (
	"errors"
	"fmt"

	"github.com/enginekit/enginekit/internal/dialect"
)

// Errors returned by scopes, matched with errors.Is.
var (
	// ErrClosed: the Manager is closed; no new scope may start. A scope cut
	// short by Close also matches context.Canceled.
	ErrClosed = errors.New("session: manager is closed")
	// ErrNotStarted: a scope or statement before its engine started (a
	// dbfx engine in an Fx app: before its OnStart hook began, or after its
	// start failed). Nothing reached the database: no connection was opened
	// or taken. A Manager from New over a pool opened by hand is started;
	// see WithGate.
	ErrNotStarted = errors.New("session: engine not started")
	// ErrAcquireTimeout: no pool connection became free within AcquireTimeout.
	ErrAcquireTimeout = errors.New("session: connection pool exhausted")
	// ErrUnexpectedRollback: the scope's fn returned nil, but the
	// transaction was rolled back: an inner scope failed, or a statement
	// error aborted the transaction and fn swallowed it.
	ErrUnexpectedRollback = errors.New("session: transaction rolled back")
	// ErrAmbiguousCommit: the connection was lost during COMMIT; the
	// transaction may or may not have been committed. Never retried.
	ErrAmbiguousCommit = errors.New("session: commit outcome unknown, connection lost")
	// ErrNoTransaction: Mandatory propagation outside a transaction.
	ErrNoTransaction = errors.New("session: no transaction in progress")
	// ErrTransactionExists: Never propagation inside a transaction.
	ErrTransactionExists = errors.New("session: transaction already in progress")
	// ErrScopeEnded: a statement through the context of a scope that has
	// ended. It never falls back to the pool.
	ErrScopeEnded = errors.New("session: scope has ended")
	// ErrAborted: a statement in a transaction that an earlier error has
	// aborted; the transaction will be rolled back.
	ErrAborted = errors.New("session: transaction aborted by an earlier error")
)

// Error classes: what a database's error means, whatever the database,
// matched with errors.Is on the errors of an engine's connections (the
// connection wrapper under dbfx's pools classifies each driver error as
// it passes). The driver's own error stays inside, for errors.As
// (*pq.Error, *mysql.MySQLError, sqlite3.Error). The package doc lists
// the codes behind each. A narrower class is also its wider one:
// errors.Is(err, ErrConstraint) holds for every ErrDuplicate,
// ErrForeignKey, ErrNotNull and ErrCheck.
var (
	// ErrConstraint: an integrity constraint was violated: a duplicate
	// key, a foreign key, a NOT NULL or a CHECK constraint.
	ErrConstraint error = dialect.NewSentinel("session: constraint violation", dialect.Constraint)
	// ErrDuplicate: a unique or primary key constraint was violated
	// (repo.ErrDuplicate matches the same errors).
	ErrDuplicate error = dialect.NewSentinel("session: duplicate key", dialect.Unique)
	// ErrForeignKey: a row refers to no row, or a row still referred to
	// was deleted or its key changed.
	ErrForeignKey error = dialect.NewSentinel("session: foreign key violation", dialect.ForeignKey)
	// ErrNotNull: NULL written to a NOT NULL column, or such a column left
	// without a value where it has no default.
	ErrNotNull error = dialect.NewSentinel("session: not-null violation", dialect.NotNull)
	// ErrCheck: a CHECK constraint was violated.
	ErrCheck error = dialect.NewSentinel("session: check constraint violation", dialect.Check)
	// ErrConflict: the transaction conflicted with another (serialization
	// failure, deadlock, lock wait timeout, SQLite busy): running it again
	// may succeed, and transaction scopes do (Retry). A RetryError whose
	// last attempt conflicted matches it too. IsRetryable says the same
	// of the errors it knows.
	ErrConflict error = dialect.NewSentinel("session: transaction conflict", dialect.Retryable)
	// ErrLocked: a row the statement had to lock was locked by another
	// transaction: a NOWAIT read met one, or the lock wait timed out
	// (repo.ErrLocked matches the same errors).
	ErrLocked error = dialect.NewSentinel("session: row locked by another transaction", dialect.Locked)
	// ErrConnLost: the connection was lost (closed, reset, killed, its
	// server shut down, or cut by enginekit when the server did not
	// answer by the call's deadline). Whether a statement sent on it ran
	// is unknown; a COMMIT's outcome is ErrAmbiguousCommit.
	ErrConnLost error = dialect.NewSentinel("session: connection lost", dialect.ConnLost)
	// ErrReadOnly: a write refused because the transaction or the
	// connection is read-only (a write in a ReadOnly scope, a replica), or
	// a read-write scope asked for inside a read-only transaction.
	ErrReadOnly error = dialect.NewSentinel("session: read-only transaction", dialect.ReadOnly)
	// ErrCanceled: the statement was stopped before it finished: by the
	// server's statement timeout (PostgreSQL statement_timeout,
	// MySQL max_execution_time, MariaDB max_statement_time), a cancel, or
	// because its ctx ended while the server did not answer (the
	// connection was cut). A statement whose ctx ended is also
	// context.Canceled or context.DeadlineExceeded, which is all a driver
	// returns when it gave up itself: match those too.
	ErrCanceled error = dialect.NewSentinel("session: statement canceled", dialect.Canceled)
)

// RetryError is returned when a transaction failed with a retryable error
// on every attempt its RetryPolicy allowed.
type RetryError struct {
	Attempts int
	Err      error // the last attempt's error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("session: transaction failed after %d attempts: %v", e.Attempts, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is one that running the transaction
// again may cure: a serialization failure (40001), a deadlock (40P01,
// 1213), a lock wait timeout (1205) or SQLite busy/locked. A connection
// lost during COMMIT is not retryable.
//
// It knows the errors of an engine's connections (dbfx's connection
// wrapper classifies them as they pass) and PostgreSQL errors from any
// driver (by SQLSTATE). An error of a pool opened by hand is classified by
// the Manager's retries all the same, but not here.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, ErrAmbiguousCommit) {
		return false
	}
	return (dialect.ClassOf(err) | dialect.ClassifySQLState(err)).Has(dialect.Retryable)
}
