// Package boundary holds the programs that keep enginekit's dependency
// boundaries honest: a service on one driver links only that driver (see
// the postgres, pgx and mysql commands and boundary_test.go), and handmade, the
// same service written by hand on lib/pq, sqlx, fx and zap, against which
// their binary size is measured.
package boundary

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// Note is the row the programs write.
type Note struct {
	ID   int64  `db:"id,pk,auto"`
	Body string `db:"body"`
}

// Run starts an app with dbfx.Module and the driver's module on the
// database ENGINEKIT_DSN names, writes and counts notes in a transaction
// through a repository, and stops it. It prints what it did and returns
// the exit code.
func Run(driver fx.Option) int {
	if err := run(driver); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func run(driver fx.Option) error {
	cfg := dbfx.Config{DSN: os.Getenv("ENGINEKIT_DSN"), ConnectTimeout: 5 * time.Second}
	var m *session.Manager
	var e *dbfx.Engine
	app := fx.New(fx.NopLogger, fx.Supply(cfg), fx.Provide(zap.NewNop), dbfx.Module, driver, fx.Populate(&m, &e))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		return err
	}
	defer app.Stop(context.WithoutCancel(ctx))
	table := fmt.Sprintf("boundary_notes_%d", os.Getpid())
	id := "id INTEGER PRIMARY KEY AUTO_INCREMENT"
	if d := e.Driver(); d == "postgres" || d == "pgx" {
		id = "id SERIAL PRIMARY KEY"
	}
	q := m.Q(ctx)
	if _, err := q.ExecContext(ctx, "CREATE TABLE "+table+" ("+id+", body VARCHAR(100) NOT NULL)"); err != nil {
		return err
	}
	defer q.ExecContext(context.WithoutCancel(ctx), "DROP TABLE "+table)
	notes, err := repo.New[Note, int64](m, repo.Table(table))
	if err != nil {
		return err
	}
	n, err := session.Tx(ctx, m, func(ctx context.Context) (int64, error) {
		for _, body := range []string{"one driver", "no cgo"} {
			if err := notes.Insert(ctx, &Note{Body: body}); err != nil {
				return 0, err
			}
		}
		return notes.Count(ctx)
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d notes written and counted in one transaction\n", e.Driver(), n)
	return nil
}
