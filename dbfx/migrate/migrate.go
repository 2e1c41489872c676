// Package migrate applies goose SQL migrations to an enginekit engine:
// when the engine starts (OnStart, or Module in an Fx app), or in a job of
// their own that migrates and exits (Up) or reports the database's state
// (Status), such as a Kubernetes Job or a deploy step.
//
//	//go:embed migrations
//	var embedded embed.FS
//	migrations, _ := fs.Sub(embedded, "migrations")
//
//	fx.New(fx.Supply(cfg), dbfx.Module, postgres.Module, migrate.Module(migrations), ...)
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(postgres.Driver()), migrate.OnStart(migrations))
//	err := migrate.Up(ctx, cfg, migrations, dbfx.WithDriver(postgres.Driver()))
//
// Files follow goose's naming (00001_create_users.sql, with -- +goose Up /
// -- +goose Down sections). When the migrations' directory has a
// directory named after the engine's database (postgres, mysql or
// sqlite3), the migrations are read from it, so one embedded tree can
// hold a set per database:
//
//	migrations/postgres/00001_init.sql
//	migrations/mysql/00001_init.sql
//	migrations/sqlite3/00001_init.sql
//
// Otherwise they are read from its root. Two instances migrating together
// do not both migrate: PostgreSQL takes a session advisory lock, MySQL a
// named lock (GET_LOCK), SQLite a file lock beside the database. A failed
// migration fails with an error matching dbfx.ErrMigration that names the
// file and the statement of it that failed; no error carries the DSN's
// password.
//
// goose runs each file in a transaction (unless it says -- +goose NO
// TRANSACTION) and records it only once all of it ran. On PostgreSQL and
// SQLite a failed file is undone whole. MySQL and MariaDB commit each DDL
// statement at once (CREATE, ALTER, DROP, and what the transaction did
// before it): a file that fails halfway stays half applied, and the next
// start runs it again from its first statement. Its error then names the
// statements before the failed one, which may have been applied. Write
// such migrations so that they can run again: one DDL statement per file,
// or IF NOT EXISTS / IF EXISTS on each.
//
// The core package dbfx does not link goose: a program links it when it
// imports this package.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
)

// OnStart applies the pending migrations of fsys when the engine starts,
// after the database answers and before the start completes (a startup
// step, see dbfx.WithStartup). A failed migration fails the start.
func OnStart(fsys fs.FS) dbfx.Option {
	return dbfx.WithStartup(func(ctx context.Context, s dbfx.Startup) error {
		return run(ctx, s, fsys, func(ctx context.Context, p *goose.Provider, ran *executed) error {
			results, err := p.Up(ctx)
			if err != nil {
				var pe *goose.PartialError
				if errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
					return failure(s, err, "%s", ran.explain(s.Family, pe.Failed.Source.Path, pe.Err))
				}
				return failure(s, err, "migration failed: %v", err)
			}
			for _, r := range results {
				s.Log.Info("migration applied", zap.String("file", r.Source.Path), zap.Duration("took", r.Duration))
			}
			return nil
		})
	})
}

// Module applies the migrations of fsys when the primary engine of
// dbfx.Module starts: it puts OnStart(fsys) in dbfx.OptionsGroup. Give
// a Named engine OnStart among its Options, or put
// dbfx.OptionsFor(name, OnStart(fsys)) in the graph.
func Module(fsys fs.FS) fx.Option {
	return fx.Module("enginekit.migrate", dbfx.Options(OnStart(fsys)))
}

// Up opens the database of cfg with dbfx.Open, applies the pending
// migrations of fsys and closes it: the whole of a job that migrates
// and exits. Give the driver with dbfx.WithDriver among opts, and a
// logger with dbfx.WithLogger to log the migrations applied. Nothing
// pending is no error.
func Up(ctx context.Context, cfg dbfx.Config, fsys fs.FS, opts ...dbfx.Option) error {
	e, err := dbfx.Open(ctx, cfg, append(opts[:len(opts):len(opts)], OnStart(fsys))...)
	if err != nil {
		return err
	}
	return e.Close(context.WithoutCancel(ctx))
}

// Report is the state of a database's migrations.
type Report struct {
	// Version is the database's version: the highest migration applied,
	// 0 when none is. It may be above every migration of fsys when a
	// newer release migrated the database.
	Version int64
	// Migrations are the migrations of fsys in order, applied or not.
	Migrations []Migration
}

// Migration is a migration file and whether the database has it.
type Migration struct {
	Version   int64     // from the file's name: 00002_seed.sql is 2
	File      string    // the file's path in the migrations' directory
	Applied   bool      // the database has it
	AppliedAt time.Time // when, by the database's clock; zero when pending
}

// Pending returns the migrations that the database does not have.
func (r Report) Pending() []Migration {
	var pending []Migration
	for _, m := range r.Migrations {
		if !m.Applied {
			pending = append(pending, m)
		}
	}
	return pending
}

// Status opens the database of cfg with dbfx.Open, reports which
// migrations of fsys it has and closes it; it applies none. It waits for
// a migration in progress elsewhere to finish (it takes the same lock),
// and creates goose's version table on a database that has none, as Up
// would. Give the driver with dbfx.WithDriver among opts.
func Status(ctx context.Context, cfg dbfx.Config, fsys fs.FS, opts ...dbfx.Option) (Report, error) {
	var report Report
	step := dbfx.WithStartup(func(ctx context.Context, s dbfx.Startup) error {
		return run(ctx, s, fsys, func(ctx context.Context, p *goose.Provider, _ *executed) error {
			states, err := p.Status(ctx)
			if err != nil {
				return failure(s, err, "migration status: %v", err)
			}
			if report.Version, err = p.GetDBVersion(ctx); err != nil {
				return failure(s, err, "migration version: %v", err)
			}
			for _, st := range states {
				report.Migrations = append(report.Migrations, Migration{
					Version:   st.Source.Version,
					File:      st.Source.Path,
					Applied:   st.State == goose.StateApplied,
					AppliedAt: st.AppliedAt,
				})
			}
			return nil
		})
	})
	e, err := dbfx.Open(ctx, cfg, append(opts[:len(opts):len(opts)], step)...)
	if err != nil {
		return Report{}, err
	}
	return report, e.Close(context.WithoutCancel(ctx))
}

// postgresLockID names enginekit's migration lock on PostgreSQL.
const postgresLockID = 0x656e67696e656b // "enginek"

// run calls fn with a goose provider on the migrations of fsys for the
// engine's database, under the lock that serialises migrations.
func run(ctx context.Context, s dbfx.Startup, fsys fs.FS, fn func(context.Context, *goose.Provider, *executed) error) error {
	if st, err := fs.Stat(fsys, s.Family); err == nil && st.IsDir() {
		if fsys, err = fs.Sub(fsys, s.Family); err != nil {
			return failure(s, err, "migrations: %v", err)
		}
	}
	// Migrations run on a pool of their own, unobserved: goose's probe of
	// its version table fails on a fresh database, which is no error of the
	// application's. (SQLite in memory has one connection: the engine's.)
	db := s.Engine.DB().DB
	if s.OpenDB != nil {
		var err error
		if db, err = s.OpenDB(); err != nil {
			return err
		}
		db.SetMaxOpenConns(2) // one migrates, one may hold the lock
		defer db.Close()
	}
	// goose checks for pending migrations before it takes a session lock,
	// and on MySQL its version table's CREATE commits before its first row:
	// a second instance could see the table empty. So on MySQL and SQLite
	// the whole run is under a lock of enginekit's; PostgreSQL's DDL is
	// transactional, and goose's advisory lock suffices there.
	ran := &executed{fsys: fsys, stmts: map[string][]string{}}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithVerbose(true), goose.WithSlog(slog.New(ran))}
	var gd goose.Dialect
	var release func()
	var err error
	switch s.Family {
	case "postgres":
		gd = goose.DialectPostgres
		locker, lerr := lock.NewPostgresSessionLocker(lock.WithLockID(postgresLockID), lock.WithLockTimeout(1, 3600))
		if lerr != nil {
			return failure(s, lerr, "migration lock: %v", lerr)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case "mysql":
		gd = goose.DialectMySQL
		release, err = lockMySQL(ctx, db)
	case "sqlite3":
		gd = goose.DialectSQLite3
		if s.File != "" {
			release, err = lockFile(ctx, s.File+".migrate-lock")
		}
	default:
		return failure(s, errors.ErrUnsupported, "migrations do not support %s", s.Family)
	}
	if err != nil {
		return failure(s, err, "migration lock: %v", err)
	}
	if release != nil {
		defer release()
	}
	p, err := goose.NewProvider(gd, db, fsys, opts...)
	if err != nil {
		return failure(s, err, "migrations: %v", err)
	}
	return fn(ctx, p, ran)
}

// failure is an error matching dbfx.ErrMigration and err, whose text names
// the engine and has no password.
func failure(s dbfx.Startup, err error, format string, args ...any) error {
	msg := fmt.Sprintf("dbfx/migrate: engine %q: ", s.Engine.Name()) + fmt.Sprintf(format, args...)
	return &migrationError{msg: s.Redact(msg), err: err}
}

// migrationError matches dbfx.ErrMigration and goose's error.
type migrationError struct {
	msg string
	err error
}

func (e *migrationError) Error() string   { return e.msg }
func (e *migrationError) Unwrap() []error { return []error{dbfx.ErrMigration, e.err} }

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

// executed records the statements goose runs, from its log, so that a
// failed migration can say which of its statements ran: goose runs a
// file's statements in order and stops at the first that fails.
type executed struct {
	fsys  fs.FS // the migrations' directory
	mu    sync.Mutex
	stmts map[string][]string // by file name, in the order run
}

func (x *executed) Enabled(context.Context, slog.Level) bool { return true }
func (x *executed) WithAttrs([]slog.Attr) slog.Handler       { return x }
func (x *executed) WithGroup(string) slog.Handler            { return x }

func (x *executed) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "executing statement" {
		return nil
	}
	var stmt, source string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "statement":
			stmt = a.Value.String()
		case "source":
			source = a.Value.String()
		}
		return true
	})
	x.mu.Lock()
	x.stmts[source] = append(x.stmts[source], stmt)
	x.mu.Unlock()
	return nil
}

// explain says how the migration file failed with err: at which of its
// statements, and which of those before it may have been applied and
// stayed. On MySQL and MariaDB a DDL statement commits at once (and
// commits what the transaction did before it), so the statements before
// the failed one may stay applied; elsewhere too when the file runs
// outside a transaction (-- +goose NO TRANSACTION). goose records the
// migration only when all of it ran: the next start runs it again from
// its first statement.
func (x *executed) explain(family, file string, err error) string {
	x.mu.Lock()
	ran := x.stmts[path.Base(file)]
	x.mu.Unlock()
	if len(ran) == 0 {
		return fmt.Sprintf("migration %s failed: %v", file, err)
	}
	failed := len(ran)
	msg := fmt.Sprintf("migration %s failed at its statement %d (%s): %v", file, failed, firstLine(ran[failed-1]), err)
	var why string
	switch {
	case family == "mysql":
		why = "on MySQL and MariaDB each DDL statement commits at once, with what the transaction did before it"
	case !inTransaction(x.fsys, file):
		why = "the file runs outside a transaction (-- +goose NO TRANSACTION)"
	default:
		return msg + "; its transaction was rolled back: none of it was applied"
	}
	if failed == 1 {
		return msg + "; it was the file's first statement: none of it was applied"
	}
	applied := make([]string, failed-1)
	for i, stmt := range ran[:failed-1] {
		applied[i] = fmt.Sprintf("%d %s", i+1, firstLine(stmt))
	}
	return fmt.Sprintf("%s; %s, so the statements before it may have been applied and stay: %s. "+
		"The migration is not recorded, and the next start runs the file again from its first statement: "+
		"undo them by hand, or make the file rerunnable (IF NOT EXISTS, IF EXISTS, one DDL statement per file)",
		msg, why, strings.Join(applied, ", "))
}

// firstLine is the first line of stmt that is not a comment, quoted and
// shortened, to name the statement.
func firstLine(stmt string) string {
	for _, l := range strings.Split(stmt, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			if r := []rune(l); len(r) > 60 {
				l = string(r[:60]) + "..."
			}
			return fmt.Sprintf("%q", l)
		}
	}
	return `""`
}

// inTransaction reports whether goose runs file in a transaction: unless
// it says -- +goose NO TRANSACTION.
func inTransaction(fsys fs.FS, file string) bool {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return false // unknown: say what may have been applied
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "--") && strings.Contains(l, "+goose") && strings.Contains(strings.ToUpper(l), "NO TRANSACTION") {
			return false
		}
	}
	return true
}
