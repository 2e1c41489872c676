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
	// Migrations run on a pool of their own, unobserved: goose's probe of
	// its version table fails on a fresh database, which is no error of the
	// application's. (SQLite in memory has one connection: the engine's.)
	db := e.db.DB
	if !e.r.Memory {
		conn, err := e.r.Writer()
		if err != nil {
			return err
		}
		db = sql.OpenDB(conn)
		db.SetMaxOpenConns(2) // one migrates, one may hold the lock
		defer db.Close()
	}
	// goose checks for pending migrations before it takes a session lock,
	// and on MySQL its version table's CREATE commits before its first row:
	// a second instance could see the table empty. So on MySQL and SQLite
	// the whole run is under a lock of enginekit's; PostgreSQL's DDL is
	// transactional, and goose's advisory lock suffices there.
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	var gd goose.Dialect
	var release func()
	var err error
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
		release, err = lockMySQL(ctx, db)
	default:
		gd = goose.DialectSQLite3
		if !e.r.Memory {
			release, err = lockFile(ctx, e.r.Host+".migrate-lock")
		}
	}
	if err != nil {
		return &migrationError{msg: fmt.Sprintf("dbfx: engine %q: migration lock: %v", e.Name(), err), err: err}
	}
	if release != nil {
		defer release()
	}
	p, err := goose.NewProvider(gd, db, fsys, opts...)
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

const mysqlLockName = "enginekit_migrations"

// lockMySQL takes the named lock that serialises migrations on a
// connection of its own, held until release.
func lockMySQL(ctx context.Context, db *sql.DB) (release func(), err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	wait := 3600 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	var got sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", mysqlLockName, int(math.Ceil(wait.Seconds()))).Scan(&got)
	if err == nil && (!got.Valid || got.Int64 != 1) {
		err = fmt.Errorf("another instance held %q for %s", mysqlLockName, wait.Round(time.Second))
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", mysqlLockName)
		conn.Close()
	}, nil
}
