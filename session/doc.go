// Package session opens session and transaction scopes on one database and
// carries them through context.Context: the Go form of @with_session,
// @with_transaction, @with_readonly_session and @with_retry.
//
// A Manager wraps the writer pool (*sqlx.DB). Code that runs statements asks
// the Manager for the Querier of its context, so it joins whatever scope the
// caller opened, and runs on the pool when there is none:
//
//	func (s *Store) Rename(ctx context.Context, id int64, name string) error {
//		q := s.m.Q(ctx) // the transaction in ctx, if any
//		_, err := q.ExecContext(ctx, q.Rebind(`UPDATE users SET name = ? WHERE id = ?`), name, id)
//		return err
//	}
//
//	err := m.Tx(ctx, func(ctx context.Context) error {
//		if err := store.Rename(ctx, 1, "ada"); err != nil {
//			return err // rolls back
//		}
//		session.AfterCommit(ctx, func(context.Context) { cache.Forget(1) })
//		return nil // commits, then runs the callback
//	})
//
// # Scopes
//
// Tx runs fn in a transaction; ReadOnly in a read-only one (on SQLite, on a
// query-only reader pool); Conn on a pinned connection without a
// transaction; session.Tx[T] returns a value. An inner scope joins the
// outer transaction unless Propagation says otherwise (RequiresNew, Nested
// for a savepoint, Mandatory, Supports, NotSupported, Never). Each Manager
// has a context key of its own: a scope of one database never leaks into
// another's Manager.
//
// # Failure
//
//   - fn returns an error: the transaction rolls back and the error is
//     returned. An inner Required scope that fails marks the transaction
//     rollback-only: the outer scope then returns ErrUnexpectedRollback.
//   - fn panics: the transaction rolls back and the panic goes on with its
//     original value.
//   - ctx ends: the transaction rolls back and the ctx error is returned.
//   - A statement error that aborts the transaction on its database
//     (PostgreSQL errors outside a savepoint, MySQL deadlock and lock wait
//     timeout, SQLite busy) poisons it: later statements fail with
//     ErrAborted and the scope rolls back even if fn swallows the error.
//     An error met while reading a result set (Rows.Err, Row.Scan) counts
//     too: the connection wrapper under an engine's pools refuses the
//     transaction's next statements with it and rolls back at COMMIT, and
//     the scope sees it there (for a pool opened by hand, see New).
//   - Serialization failures, deadlocks, lock wait timeouts and SQLite busy
//     errors are retried by the scope that owns the transaction (3 attempts
//     with jittered backoff by default; Retry, NoRetry). A connection lost
//     during COMMIT returns ErrAmbiguousCommit and is never retried; a
//     read-only transaction has no outcome in doubt, so one whose
//     connection was lost, on a statement or on COMMIT, is retried.
//
// # Errors
//
// What a database's error means is matched with errors.Is, the same way
// on every database; errors.As still finds the driver's own error
// (*pq.Error, *mysql.MySQLError, sqlite3.Error) for its details. The
// connection wrapper under an engine's pools (dbfx) classifies each
// driver error as it passes; an error of a pool opened by hand and given
// to New is classified for the scope's retries, but matches none of
// these. database/sql hands driver.ErrBadConn (lib/pq's answer on a
// connection closed under it) back as it is, which is ErrConnLost from a
// statement in a scope (Tx, ReadOnly, Conn), and only there.
//
//	class          PostgreSQL (SQLSTATE)        MySQL / MariaDB (number)          SQLite (extended code)
//	ErrDuplicate   23505 unique_violation       1062                              2067 UNIQUE, 1555 PRIMARYKEY
//	ErrForeignKey  23503 foreign_key_violation  1452, 1451 (1216, 1217)           787 FOREIGNKEY
//	ErrNotNull     23502 not_null_violation     1048, 1364 (strict mode)          1299 NOTNULL
//	ErrCheck       23514 check_violation        3819 (MySQL 8), 4025 (MariaDB)    275 CHECK
//	ErrConflict    40001, 40P01                 1213, 1205                        5 BUSY (all), 6 LOCKED (all)
//	ErrLocked      55P03 lock_not_available     3572 (MySQL 8), 1205              -
//	ErrConnLost    08xxx, 57P01-57P03; EOF,     1053, 1927, 4031, 2006, 2013,     -
//	               reset, bad conn, cut         1047 (Galera); invalid
//	                                            connection, reset, cut
//	ErrReadOnly    25006                        1792, 1836, 1290 (--read-only)    8 READONLY (all)
//	ErrCanceled    57014 query_canceled         3024 (MySQL 8), 1969 (MariaDB),   9 INTERRUPT
//	                                            1317
//
// ErrConstraint matches each of ErrDuplicate, ErrForeignKey, ErrNotNull
// and ErrCheck. 1205 (lock wait timeout, which MariaDB also returns for
// NOWAIT) is both ErrConflict and ErrLocked. "cut" is a call whose ctx
// ended while its server did not answer: enginekit closed the connection,
// and the error is ErrConnLost and ErrCanceled as well as the ctx's
// error. A statement whose ctx ended is context.Canceled or
// context.DeadlineExceeded: lib/pq returns the server's 57014 then
// (ErrCanceled), the mysql and sqlite3 drivers the ctx's error alone,
// which matches no class. repo.ErrDuplicate and repo.ErrLocked match
// the same errors as ErrDuplicate and ErrLocked.
//
//	if errors.Is(err, session.ErrDuplicate) {
//		return http.StatusConflict
//	}
//	var pe *pq.Error
//	if errors.As(err, &pe) {
//		log.Println(pe.Constraint)
//	}
//
// # Prepared statements
//
// Prepared(ctx) is Q(ctx) for SQL whose text is fixed (repositories use
// it): a statement with arguments runs as a prepared statement kept in the
// Manager's bounded statement cache (WithStatementCache; WithPreparedQueries
// makes Q do the same), which saves a round trip on PostgreSQL and MySQL
// and the parsing on SQLite. Outside scopes the statement is prepared on
// the pool (database/sql prepares it on each connection that runs it); in
// a transaction it is bound to the transaction's connection; in a Conn
// scope without a transaction it is sent as it is. A statement the
// database says is gone or stale after a DDL is prepared again, and, on
// PostgreSQL where the error aborts the transaction, the transaction is
// run again. Turn the cache off behind PgBouncer in transaction mode.
//
// An engine's Manager (dbfx) refuses scopes and statements outside scopes
// with ErrNotStarted until the engine's start begins, before taking any
// connection (WithGate); a Manager from New over a pool of one's own is
// started from the outset.
//
// Close refuses new scopes with ErrClosed and waits for those in flight
// (scopes these open inside themselves may still start); when its ctx ends
// first it cancels them, and they roll back. Then it closes the cached
// prepared statements.
package session
