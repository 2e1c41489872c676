// Command mysql is the shape of a MySQL-only service on enginekit: dbfx,
// its MySQL driver, session and repo, in an Fx app. See the postgres
// command beside it.
//
//	ENGINEKIT_DSN='root@tcp(127.0.0.1:3306)/test' go run ./internal/boundary/mysql
package main

import (
	"os"

	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/internal/boundary"
)

func main() { os.Exit(boundary.Run(mysql.Module)) }
