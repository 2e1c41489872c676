package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// enginekitVariant is a repository over an engine from dbfx.Open, used as
// its users would: statements outside any scope, except the reads of
// Mixed64 on SQLite, which take a ReadOnly scope to reach the reader pool.
type enginekitVariant struct {
	m        *session.Manager
	rows     *repo.Repository[row, int64]
	byReader bool // SQLite: read in a ReadOnly scope
}

func openEnginekit(b *testing.B, t target) variant {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The DSN already holds the parameters dbfx would add. The pool
	// settings left zero take dbfx's defaults: a lifetime of 30m and an
	// idle time of 5m, as the raw variants set them.
	e, err := dbfx.Open(ctx, dbfx.Config{Driver: t.driver, DSN: t.dsn, MaxOpenConns: poolConns, MaxIdleConns: poolConns},
		dbfx.WithDrivers(postgres.Driver(), mysql.Driver(), sqlite3.Driver()))
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
	return &enginekitVariant{m: e.Sessions(), rows: rows, byReader: t.reader != ""}
}

func (v *enginekitVariant) get(ctx context.Context, id int64) (row, error) {
	return v.rows.Get(ctx, id)
}

func (v *enginekitVariant) read(ctx context.Context, id int64) (row, error) {
	if !v.byReader {
		return v.rows.Get(ctx, id)
	}
	var x row
	err := v.m.ReadOnly(ctx, func(ctx context.Context) error {
		var err error
		x, err = v.rows.Get(ctx, id)
		return err
	})
	return x, err
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
