// Package dialect holds what enginekit must know about each database it runs
// on: placeholder style, identifier quoting, which SQL forms work, the valid
// isolation levels, and how to classify the errors its driver returns.
//
// A Dialect is immutable; the three values are shared freely.
package dialect

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Dialect describes one database family as seen through its Go driver.
type Dialect struct {
	name            string // canonical name: postgres, mysql or sqlite3
	dollar          bool   // $1, $2 ... instead of ?
	quote           byte   // identifier quote character
	insertReturning bool   // INSERT ... RETURNING is accepted on every supported server version
	maxPlaceholders int    // bind parameters one statement may carry
	isolation       []sql.IsolationLevel
	classify        func(error) Class
}

var (
	postgres = &Dialect{
		name:            "postgres",
		dollar:          true,
		quote:           '"',
		insertReturning: true,
		maxPlaceholders: 65535,
		isolation:       fullIsolation,
		classify:        classifyPostgres,
	}
	mysql = &Dialect{
		name:            "mysql",
		quote:           '`',
		maxPlaceholders: 65535,
		isolation:       fullIsolation,
		classify:        classifyMySQL,
	}
	sqlite = &Dialect{
		name:            "sqlite3",
		quote:           '"',
		insertReturning: true,
		maxPlaceholders: 32766,
		isolation:       []sql.IsolationLevel{sql.LevelDefault, sql.LevelSerializable},
		classify:        classifySQLite,
	}
	fullIsolation = []sql.IsolationLevel{
		sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted,
		sql.LevelRepeatableRead, sql.LevelSerializable,
	}
)

// Postgres, MySQL and SQLite return the dialect of each family.
func Postgres() *Dialect { return postgres }
func MySQL() *Dialect    { return mysql }
func SQLite() *Dialect   { return sqlite }

// For returns the dialect of a database/sql driver name: "postgres" (lib/pq),
// "pgx" (pgx/stdlib), "mysql" or "sqlite3".
func For(driver string) (*Dialect, error) {
	switch driver {
	case "postgres", "pgx":
		return postgres, nil
	case "mysql":
		return mysql, nil
	case "sqlite3":
		return sqlite, nil
	}
	return nil, fmt.Errorf("unsupported driver %q (want postgres, pgx, mysql or sqlite3)", driver)
}

// Name is the canonical name: postgres, mysql or sqlite3.
func (d *Dialect) Name() string { return d.name }

// String implements fmt.Stringer.
func (d *Dialect) String() string { return d.name }

// Placeholder returns the n-th (1-based) bind placeholder.
func (d *Dialect) Placeholder(n int) string {
	if d.dollar {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// AppendPlaceholder appends the n-th (1-based) bind placeholder to b.
func (d *Dialect) AppendPlaceholder(b []byte, n int) []byte {
	if d.dollar {
		return strconv.AppendInt(append(b, '$'), int64(n), 10)
	}
	return append(b, '?')
}

// Quote quotes an identifier, doubling any quote character inside it, so
// that any string is a safe identifier.
func (d *Dialect) Quote(ident string) string {
	q := string(d.quote)
	return q + strings.ReplaceAll(ident, q, q+q) + q
}

// InsertReturning reports whether INSERT ... RETURNING works on every server
// version enginekit supports for this family (MySQL 8 lacks it).
func (d *Dialect) InsertReturning() bool { return d.insertReturning }

// MaxPlaceholders is the number of bind parameters one statement may carry.
func (d *Dialect) MaxPlaceholders() int { return d.maxPlaceholders }

// Savepoint, ReleaseSavepoint and RollbackToSavepoint return the statements
// for a savepoint. name must be an identifier made by enginekit (letters,
// digits, underscores): savepoint statements take no bind arguments.
func (d *Dialect) Savepoint(name string) string        { return "SAVEPOINT " + name }
func (d *Dialect) ReleaseSavepoint(name string) string { return "RELEASE SAVEPOINT " + name }
func (d *Dialect) RollbackToSavepoint(name string) string {
	return "ROLLBACK TO SAVEPOINT " + name
}

// CheckIsolation returns an error when the database cannot run a transaction
// at the given isolation level. Drivers differ (SQLite's ignores the level
// silently), so enginekit checks before BEGIN.
func (d *Dialect) CheckIsolation(level sql.IsolationLevel) error {
	for _, l := range d.isolation {
		if l == level {
			return nil
		}
	}
	return fmt.Errorf("isolation level %s is not supported on %s", level, d.name)
}

// Classify tells what an error returned by this family's driver means.
// A nil error has no class.
func (d *Dialect) Classify(err error) Class {
	if err == nil {
		return 0
	}
	return d.classify(err) | classifyTransport(err)
}
