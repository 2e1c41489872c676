//go:build cgo

package sqlite3

import (
	"errors"

	gosqlite3 "github.com/mattn/go-sqlite3"

	"github.com/enginekit/enginekit/internal/dialect"
)

// errNoCgo is nil: this build has go-sqlite3's C.
var errNoCgo error

func classify(err error) dialect.Class {
	var e gosqlite3.Error
	if !errors.As(err, &e) {
		return 0
	}
	switch e.Code {
	case gosqlite3.ErrBusy, gosqlite3.ErrLocked:
		return dialect.Retryable | dialect.Aborting
	case gosqlite3.ErrReadonly:
		return dialect.ReadOnly
	case gosqlite3.ErrInterrupt:
		return dialect.Canceled
	}
	switch e.ExtendedCode {
	case gosqlite3.ErrConstraintUnique, gosqlite3.ErrConstraintPrimaryKey:
		return dialect.Unique
	case gosqlite3.ErrConstraintForeignKey:
		return dialect.ForeignKey
	case gosqlite3.ErrConstraintNotNull:
		return dialect.NotNull
	case gosqlite3.ErrConstraintCheck:
		return dialect.Check
	}
	return 0
}
