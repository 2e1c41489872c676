// Command postgres is the shape of a PostgreSQL-only service on
// enginekit: dbfx, its PostgreSQL driver, session and repo, in an Fx app.
// It is built with CGO_ENABLED=0 by .ci/run and by the boundary test, which
// checks that it links no other driver, no Prometheus, no OpenTelemetry and
// no goose. Run it against a server:
//
//	ENGINEKIT_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go run ./internal/boundary/postgres
package main

import (
	"os"

	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/internal/boundary"
)

func main() { os.Exit(boundary.Run(postgres.Module)) }
