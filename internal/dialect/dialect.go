// Package dialect holds what enginekit must know about each database it runs
// on: placeholder style, identifier quoting, which SQL forms work, the valid
// isolation levels, and how to classify the errors its driver returns.
//
// The core knows no driver: a driver package (dbfx/postgres, dbfx/mysql,
// dbfx/sqlite3) makes the Dialect of its driver with New and its own
// Classifier, and hands it to session.Manager through dbfx.Driver.
package dialect

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Family is a database family: what its SQL looks like, whatever the
// driver that speaks to it.
type Family uint8

// The families enginekit runs on.
const (
	Postgres Family = iota + 1 // PostgreSQL (lib/pq, pgx)
	MySQL                      // MySQL 8 and MariaDB (go-sql-driver/mysql)
	SQLite                     // SQLite (mattn/go-sqlite3)
)

// String is the family's canonical name: postgres, mysql or sqlite3.
func (f Family) String() string {
	switch f {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	case SQLite:
		return "sqlite3"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// Dialect describes one database family as seen through one Go driver: the
// family's SQL, and the driver's errors.
type Dialect struct {
	family          Family
	dollar          bool // $1, $2 ... instead of ?
	quote           byte // identifier quote character
	insertReturning bool // INSERT ... RETURNING is accepted on every supported server version
	maxPlaceholders int  // bind parameters one statement may carry
	isolation       []sql.IsolationLevel
	classify        Classifier
}

// Classifier tells what an error of one driver means. It is given errors
// of any kind, wrapped or not, and returns 0 for those it does not know;
// lost connections (io.EOF, driver.ErrBadConn, network errors...) are
// recognised for it.
type Classifier func(error) Class

// New returns the dialect of family f spoken through a driver whose errors
// classify tells apart (nil: only lost connections are recognised). Driver
// packages make one each; a Dialect is immutable and shared freely.
func New(f Family, classify Classifier) *Dialect {
	if classify == nil {
		classify = func(error) Class { return 0 }
	}
	d := &Dialect{family: f, classify: classify, quote: '"', maxPlaceholders: 65535,
		isolation: []sql.IsolationLevel{sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted,
			sql.LevelRepeatableRead, sql.LevelSerializable}}
	switch f {
	case Postgres:
		d.dollar, d.insertReturning = true, true
	case MySQL:
		d.quote = '`'
	case SQLite:
		d.insertReturning = true
		d.maxPlaceholders = 32766
		d.isolation = []sql.IsolationLevel{sql.LevelDefault, sql.LevelSerializable}
	}
	return d
}

// Family is the database family the dialect speaks to.
func (d *Dialect) Family() Family { return d.family }

// Name is the family's canonical name: postgres, mysql or sqlite3.
func (d *Dialect) Name() string { return d.family.String() }

// String implements fmt.Stringer.
func (d *Dialect) String() string { return d.family.String() }

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
	return fmt.Errorf("isolation level %s is not supported on %s", level, d.family)
}

// Classify tells what an error returned by the dialect's driver means.
// An error this dialect tagged (see Error) keeps its class; one another
// dialect tagged, an error of another engine's, is classified anew. A nil
// error has no class.
func (d *Dialect) Classify(err error) Class {
	if err == nil {
		return 0
	}
	var ce *Error
	if errors.As(err, &ce) && ce.d == d {
		return ce.Class | Transport(err)
	}
	return d.classify(err) | Transport(err)
}
