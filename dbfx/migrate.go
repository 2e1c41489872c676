package dbfx

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// WithMigrations applies the goose SQL migrations in fsys when the engine
// starts, after the database answers and before the app's start completes.
// Files follow goose's naming (00001_create_users.sql, with -- +goose Up /
// -- +goose Down sections). When fsys has a directory named after the
// engine's dialect (postgres, mysql or sqlite3), the migrations are read
// from it, so one embedded tree can hold a set per database:
//
//	migrations/postgres/00001_init.sql
//	migrations/mysql/00001_init.sql
//	migrations/sqlite3/00001_init.sql
//
// Otherwise they are read from the root of fsys. Two instances starting
// together do not both migrate: PostgreSQL takes a session advisory lock,
// MySQL a named lock (GET_LOCK), SQLite a file lock beside the database.
// A failed migration fails the start with an error matching ErrMigration
// that names the file.
func WithMigrations(fsys fs.FS) Option {
	return func(o *options) { o.migrations = fsys }
}

// Options hands Options to the primary engine of dbfx.Module through the
// Fx graph, e.g. dbfx.Options(dbfx.WithMigrations(migrations)).
func Options(opts ...Option) fx.Option {
	provides := make([]any, len(opts))
	for i, o := range opts {
		provides[i] = fx.Annotate(func() Option { return o }, fx.ResultTags(`group:"`+OptionsGroup+`"`))
	}
	return fx.Provide(provides...)
}

// migrationLockID names enginekit's migration lock on PostgreSQL.
const migrationLockID = 0x656e67696e656b // "enginek"

// migrate applies the pending migrations.
func (e *Engine) migrate(ctx context.Context, fsys fs.FS) error {
	name := e.r.cfg.Driver
	if name == "pgx" {
		name = "postgres"
	}
	if st, err := fs.Stat(fsys, name); err == nil && st.IsDir() {
		if fsys, err = fs.Sub(fsys, name); err != nil {
			return err
		}
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	var gd goose.Dialect
	switch name {
	case "postgres":
		gd = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 3600))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case "mysql":
		gd = goose.DialectMySQL
		opts = append(opts, goose.WithSessionLocker(mysqlLocker{}))
	default:
		gd = goose.DialectSQLite3
		if !e.r.memory {
			opts = append(opts, goose.WithLocker(&fileLocker{path: e.r.host + ".migrate-lock"}))
		}
	}
	p, err := goose.NewProvider(gd, e.db.DB, fsys, opts...)
	if err != nil {
		return &migrationError{msg: fmt.Sprintf("dbfx: engine %q: migrations: %v", e.Name(), err), err: err}
	}
	results, err := p.Up(ctx)
	if err != nil {
		msg := fmt.Sprintf("dbfx: engine %q: migration failed: %v", e.Name(), err)
		var pe *goose.PartialError
		if errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
			msg = fmt.Sprintf("dbfx: engine %q: migration %s failed: %v", e.Name(), pe.Failed.Source.Path, pe.Err)
		}
		return &migrationError{msg: e.r.redact(msg), err: err}
	}
	for _, r := range results {
		e.log.Info("migration applied", zap.String("file", r.Source.Path), zap.Duration("took", r.Duration))
	}
	return nil
}

// migrationError matches ErrMigration and goose's error.
type migrationError struct {
	msg string
	err error
}

func (e *migrationError) Error() string   { return e.msg }
func (e *migrationError) Unwrap() []error { return []error{ErrMigration, e.err} }

// mysqlLocker serialises migrations with a named lock, held by the session
// that migrates and released with it.
type mysqlLocker struct{}

const mysqlLockName = "enginekit_migrations"

func (mysqlLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	wait := 3600 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	var got sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", mysqlLockName, int(math.Ceil(wait.Seconds()))).Scan(&got)
	if err != nil {
		return err
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("another instance held the migration lock %q for %s", mysqlLockName, wait.Round(time.Second))
	}
	return nil
}

func (mysqlLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", mysqlLockName)
	return err
}
