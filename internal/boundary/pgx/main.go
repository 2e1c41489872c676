// Command pgx is the postgres command on pgx's driver (dbfx/pgx) instead
// of lib/pq's: it links neither lib/pq nor the MySQL driver, and builds
// with CGO_ENABLED=0. Run it against a server:
//
//	ENGINEKIT_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go run ./internal/boundary/pgx
package main

import (
	"os"

	"github.com/enginekit/enginekit/dbfx/pgx"
	"github.com/enginekit/enginekit/internal/boundary"
)

func main() { os.Exit(boundary.Run(pgx.Module)) }
