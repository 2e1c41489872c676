// Todo is an HTTP JSON service built entirely by Fx on enginekit: lists
// of todos with counters, keyset paging, optimistic locking, a move between
// lists in a retried transaction, /healthz, /livez and /metrics, and a graceful
// shutdown that finishes the requests in flight.
//
//	go run ./examples/todo
//	ENGINEKIT_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go run ./examples/todo
//
// Environment:
//
//	ENGINEKIT_ADDR  listen address, default 127.0.0.1:8080
//	ENGINEKIT_DSN   the database; by default a new SQLite file under
//	                os.TempDir(), removed at exit (every run starts empty)
//	ENGINEKIT_*     the other dbfx.Config fields (dbfx.ConfigFromEnv), e.g.
//	                ENGINEKIT_MAX_OPEN_CONNS=20, ENGINEKIT_SLOW_QUERY=100ms
//
// See README.md beside this file for the API and a curl session.
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/monitor"
)

func main() {
	fx.New(app()).Run() // starts, waits for SIGINT or SIGTERM, stops
}

// app is the whole program: configuration from the environment, the
// logger and the database monitor, the engine, the service and its
// listener.
func app() fx.Option {
	return fx.Options(
		fx.Provide(newLogger, newConfig),
		fx.Decorate(logStatements),
		fx.WithLogger(func(l *zap.Logger) fxevent.Logger {
			fl := &fxevent.ZapLogger{Logger: l.Named("fx")}
			fl.UseLogLevel(zapcore.DebugLevel) // Fx's wiring at debug; its errors stay errors
			return fl
		}),
		dbfx.Module,
		sqlite3.Module, postgres.Module, mysql.Module,
		Module(),
		Listener(),
	)
}

// newLogger is the application's logger: human-readable lines at info.
func newLogger() (*zap.Logger, error) {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	cfg.DisableStacktrace = true
	return cfg.Build()
}

// logStatements adds to the engine's monitor, the Prometheus one of
// Module (prommon.Module), a monitor that logs failed and slow statements
// and retried transactions.
func logStatements(prom monitor.Monitor, log *zap.Logger) monitor.Monitor {
	return monitor.Multi(prom, monitor.NewZap(log.Named("db")))
}

// Config holds the two configurations main reads from the environment.
type Config struct {
	fx.Out

	DB     dbfx.Config
	Server ServerConfig
}

// newConfig reads ENGINEKIT_ADDR and the ENGINEKIT_* database variables.
// Without ENGINEKIT_DSN the database is a SQLite file in a new directory
// under os.TempDir(), removed when the app stops: its hook is appended
// before the engine's (the engine needs the Config), so it runs after the
// engine has closed.
func newConfig(lc fx.Lifecycle, log *zap.Logger) (Config, error) {
	db, err := dbfx.ConfigFromEnv("ENGINEKIT")
	if err != nil {
		return Config{}, err
	}
	db.SlowQuery = cmp.Or(db.SlowQuery, 200*time.Millisecond)
	if db.DSN == "" {
		dir, err := os.MkdirTemp("", "enginekit-todo-")
		if err != nil {
			return Config{}, err
		}
		db.DSN = filepath.Join(dir, "todo.db")
		log.Info("using a new SQLite database, removed at exit (set ENGINEKIT_DSN to keep one)", zap.String("path", db.DSN))
		lc.Append(fx.Hook{OnStop: func(context.Context) error {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("remove the database: %w", err)
			}
			return nil
		}})
	}
	return Config{DB: db, Server: ServerConfig{Addr: cmp.Or(os.Getenv("ENGINEKIT_ADDR"), "127.0.0.1:8080")}}, nil
}
