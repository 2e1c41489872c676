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
	// ErrReadOnly: a write in a read-only scope, or a read-write scope asked
	// for inside a read-only transaction.
	ErrReadOnly = errors.New("session: read-only transaction")
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
