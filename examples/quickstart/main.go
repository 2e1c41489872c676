// Quickstart builds an Fx app with enginekit on embedded SQLite (or the
// database named by ENGINEKIT_DSN), writes and reads a few rows in
// transaction scopes, and stops cleanly.
//
//	go run ./examples/quickstart
//	ENGINEKIT_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/session"
)

type note struct {
	ID   int64  `db:"id"`
	Body string `db:"body"`
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	cfg := dbfx.Config{DSN: os.Getenv("ENGINEKIT_DSN")}
	if cfg.DSN == "" {
		dir, err := os.MkdirTemp("", "enginekit-quickstart")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DSN = filepath.Join(dir, "quickstart.db")
	}
	logger, err := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	var sessions *session.Manager
	var engine *dbfx.Engine
	app := fx.New(
		fx.Supply(cfg, logger),
		fx.WithLogger(func(l *zap.Logger) fxevent.Logger { return &fxevent.ZapLogger{Logger: l} }),
		dbfx.Module,
		sqlite3.Module, postgres.Module, mysql.Module, // the drivers it may run on
		fx.Populate(&sessions, &engine),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil { // connects: the engine's OnStart
		return err
	}
	fmt.Printf("started engine %q on %s\n", engine.Name(), engine.Driver())
	work := func() error {
		// Statements outside a scope run on the pool.
		q := sessions.Q(ctx)
		if _, err := q.ExecContext(ctx, `DROP TABLE IF EXISTS quickstart_notes`); err != nil {
			return err
		}
		if _, err := q.ExecContext(ctx, `CREATE TABLE quickstart_notes (id INTEGER PRIMARY KEY, body VARCHAR(200) NOT NULL)`); err != nil {
			return err
		}
		// One transaction: all three rows or none.
		err := sessions.Tx(ctx, func(ctx context.Context) error {
			for i, body := range []string{"engines start with the app", "scopes travel in ctx", "repositories join them"} {
				if _, err := sessions.Q(ctx).ExecContext(ctx,
					sessions.Q(ctx).Rebind(`INSERT INTO quickstart_notes (id, body) VALUES (?, ?)`), i+1, body); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Println("inserted 3 notes in one transaction")
		// A read-only scope (on SQLite: the query-only reader pool).
		var notes []note
		err = sessions.ReadOnly(ctx, func(ctx context.Context) error {
			return sessions.Q(ctx).SelectContext(ctx, &notes, `SELECT id, body FROM quickstart_notes ORDER BY id`)
		})
		if err != nil {
			return err
		}
		for _, n := range notes {
			fmt.Printf("  note %d: %s\n", n.ID, n.Body)
		}
		_, err = q.ExecContext(ctx, `DROP TABLE quickstart_notes`)
		return err
	}
	werr := work()
	if err := app.Stop(ctx); err != nil { // the engine's OnStop: drains scopes, closes pools
		return err
	}
	if werr != nil {
		return werr
	}
	fmt.Println("stopped cleanly")
	return nil
}
