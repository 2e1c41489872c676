//go:build !unix

package dbfx

import (
	"context"
	"database/sql"
)

// fileLocker does not lock where advisory file locks are not available:
// run one instance at a time when migrating SQLite there.
type fileLocker struct{ path string }

func (*fileLocker) Lock(context.Context, *sql.DB) error   { return nil }
func (*fileLocker) Unlock(context.Context, *sql.DB) error { return nil }
