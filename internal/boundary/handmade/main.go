// Command handmade is the service of the postgres command written by hand
// on lib/pq, sqlx, fx and zap, without enginekit: the baseline of the
// binary size that the boundary figures are measured against. It is
// built, never run, by .ci/run.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the postgres driver
	"go.uber.org/fx"
	"go.uber.org/zap"
)

func main() {
	var db *sqlx.DB
	app := fx.New(fx.NopLogger, fx.Provide(zap.NewNop, func(lc fx.Lifecycle) (*sqlx.DB, error) {
		db, err := sqlx.Open("postgres", os.Getenv("ENGINEKIT_DSN"))
		if err != nil {
			return nil, err
		}
		lc.Append(fx.Hook{OnStart: db.PingContext, OnStop: func(context.Context) error { return db.Close() }})
		return db, nil
	}), fx.Populate(&db))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer app.Stop(context.WithoutCancel(ctx))
	table := fmt.Sprintf("handmade_notes_%d", os.Getpid())
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id SERIAL PRIMARY KEY, body VARCHAR(100) NOT NULL)"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE "+table)
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer tx.Rollback()
	var n int64
	for _, body := range []string{"one driver", "no cgo"} {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" (body) VALUES ($1)", body); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
	}
	if err := tx.GetContext(ctx, &n, "SELECT count(*) FROM "+table); err != nil || tx.Commit() != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Printf("postgres: %d notes written and counted in one transaction\n", n)
}
