package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	ekpgx "github.com/enginekit/enginekit/dbfx/pgx"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// enginekitVariant is a repository over an engine from dbfx.Open, used as
// its users would: every statement outside any scope (on SQLite, reads
// outside a scope run on the reader pool).
type enginekitVariant struct {
	m    *session.Manager
	rows *repo.Repository[row, int64]
}

// openEnginekit opens the enginekit variant on the database's driver
// package: lib/pq (dbfx/postgres), MySQL's driver or go-sqlite3.
func openEnginekit(b *testing.B, t target) variant {
	return openEngine(b, t, t.driver, postgres.Driver(), mysql.Driver(), sqlite3.Driver())
}

// openEnginekitPgx opens the enginekit variant on pgx (dbfx/pgx, with
// Config.Driver "pgx"), which leaves statement caching to pgx.
func openEnginekitPgx(b *testing.B, t target) variant {
	return openEngine(b, t, "pgx", ekpgx.Driver())
}

func openEngine(b *testing.B, t target, driver string, drivers ...dbfx.Driver) variant {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The DSN already holds the parameters dbfx would add. The pool
	// settings left zero take dbfx's defaults: a lifetime of 30m and an
	// idle time of 5m, as the raw variants set them.
	e, err := dbfx.Open(ctx, dbfx.Config{Driver: driver, DSN: t.dsn, MaxOpenConns: poolConns, MaxIdleConns: poolConns},
		dbfx.WithDrivers(drivers...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	rows, err := repo.New[row, int64](e.Sessions())
	if err != nil {
		b.Fatal(err)
	}
	return &enginekitVariant{m: e.Sessions(), rows: rows}
}

func (v *enginekitVariant) get(ctx context.Context, id int64) (row, error) {
	return v.rows.Get(ctx, id)
}

func (v *enginekitVariant) read(ctx context.Context, id int64) (row, error) {
	return v.rows.Get(ctx, id)
}

func (v *enginekitVariant) insert(ctx context.Context, r *row) error { return v.rows.Insert(ctx, r) }

func (v *enginekitVariant) insertMany(ctx context.Context, rs []row) error {
	return v.rows.InsertMany(ctx, rs)
}

func (v *enginekitVariant) find(ctx context.Context, grp int64) ([]row, error) {
	return v.rows.Find(ctx, repo.Where(repo.Eq("grp", grp)))
}

func (v *enginekitVariant) update(ctx context.Context, r *row) error {
	err := v.rows.Update(ctx, r)
	if errors.Is(err, repo.ErrStale) {
		return errStale
	}
	return err
}
