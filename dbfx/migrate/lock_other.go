//go:build !unix

package migrate

import "context"

// lockFile does not lock where advisory file locks are not available: run
// one instance at a time when migrating SQLite there.
func lockFile(context.Context, string) (func(), error) { return nil, nil }
