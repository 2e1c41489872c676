package repo

import (
	"database/sql"
	"errors"

	"github.com/enginekit/enginekit/internal/dialect"
)

// Errors returned by repositories, matched with errors.Is. The errors
// returned wrap them with the table and, where there is one, the key.
var (
	// ErrNotFound: no row has the key, or no row matches. It also matches
	// sql.ErrNoRows, so code written against database/sql keeps working.
	ErrNotFound error = notFound{}
	// ErrStale: Update lost a race: the row's version is no longer the one
	// the caller read. Read it again and redo the change.
	ErrStale = errors.New("repo: stale version, the row was changed by another writer")
	// ErrUnknownColumn: a clause names a column the entity does not map.
	// Nothing is sent to the database.
	ErrUnknownColumn = errors.New("repo: unknown column")
	// ErrDuplicate: a write violated a unique or primary key constraint.
	// The driver's error is wrapped too. It is session.ErrDuplicate's
	// class: each matches the errors the other does, a repository's or
	// any statement's of an engine.
	ErrDuplicate error = dialect.NewSentinel("repo: duplicate key", dialect.Unique)
	// ErrInvalidCursor: a PageRequest.After that this repository did not
	// make for the same query (the same conditions, values and ordering):
	// one of another query, truncated or edited, or, with SignCursors, one
	// not signed with the repository's key.
	ErrInvalidCursor = errors.New("repo: invalid page cursor")
	// ErrInvalidClause: a clause that cannot be turned into SQL (an empty
	// condition, a negative limit, a clause Page or Count cannot take).
	ErrInvalidClause = errors.New("repo: invalid clause")
	// ErrLocked: a row the statement had to lock was locked by another
	// transaction: a ForUpdateNoWait read met one, or a statement waited
	// longer than the database's lock timeout (PostgreSQL 55P03
	// lock_not_available; MySQL 8 3572, 1205; MariaDB returns 1205, a lock
	// wait timeout, for NOWAIT). The driver's error is wrapped too. It is
	// session.ErrLocked's class: each matches the errors the other does.
	ErrLocked error = dialect.NewSentinel("repo: row locked by another transaction", dialect.Locked)
)

// notFound is ErrNotFound: a distinct error that still matches
// sql.ErrNoRows.
type notFound struct{}

func (notFound) Error() string        { return "repo: not found" }
func (notFound) Is(target error) bool { return target == sql.ErrNoRows }
