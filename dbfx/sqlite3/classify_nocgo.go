//go:build !cgo

package sqlite3

import (
	"errors"

	"github.com/enginekit/enginekit/internal/dialect"
)

// errNoCgo refuses every SQLite DSN: go-sqlite3 without cgo is a stub.
var errNoCgo = errors.New("sqlite3 needs cgo: this program was built with CGO_ENABLED=0")

// classify knows no error: without cgo no SQLite error can happen.
func classify(error) dialect.Class { return 0 }
