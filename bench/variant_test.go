package bench

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"
)

// variant is one way of doing the benchmarks' operations. Each writes what
// the others write: inserts set version 1 and both timestamps to stamp(),
// and fill the generated keys; update sets updated_at to stamp(), moves the
// version on by one, in the database and in r, and fails with errStale when
// the row is not at r's version.
type variant interface {
	get(ctx context.Context, id int64) (row, error)
	insert(ctx context.Context, r *row) error
	insertMany(ctx context.Context, rs []row) error
	find(ctx context.Context, grp int64) ([]row, error)
	update(ctx context.Context, r *row) error
	// read is Mixed64's Get: on SQLite it goes to the reader pool.
	read(ctx context.Context, id int64) (row, error)
}

var errStale = errors.New("no row at this version")

// variants are the implementations compared, sqlx (the baseline) first.
// A variant with only set runs on that database alone (the pgx ones on
// PostgreSQL); the others run on every database.
var variants = []struct {
	name string
	only string
	open func(b *testing.B, t target) variant
}{
	{"sqlx", "", openSqlx},
	{"sql", "", openSQL},
	{"pgx", "postgres", openPgx},
	{"enginekit", "", openEnginekit},
	{"enginekitpgx", "postgres", openEnginekitPgx},
	{"gorm", "", func(b *testing.B, t target) variant { return openGorm(b, t, false) }},
	{"gormprep", "", func(b *testing.B, t target) variant { return openGorm(b, t, true) }},
}

// sqlVariant is hand-written database/sql: on lib/pq, MySQL's driver and
// go-sqlite3 as the sql variant, on pgx's database/sql driver as the pgx
// variant.
type sqlVariant struct {
	w, r   *sql.DB
	q      statements
	driver string // the database/sql driver: pgx for the pgx variant
}

func openSQL(b *testing.B, t target) variant {
	w, r := t.open(b)
	return &sqlVariant{w: w, r: r, q: newStatements(t.driver), driver: t.driver}
}

// openPgx opens the hand-written variant on pgx's database/sql driver
// (github.com/jackc/pgx/v5/stdlib), with pgx's defaults: each connection
// prepares a statement the first time it runs it and caches it.
func openPgx(b *testing.B, t target) variant {
	q := newStatements(t.driver)
	t.driver = "pgx"
	w, r := t.open(b)
	return &sqlVariant{w: w, r: r, q: q, driver: t.driver}
}

func scanRow(s interface{ Scan(...any) error }, x *row) error {
	return s.Scan(&x.ID, &x.Grp, &x.Email, &x.Name, &x.Score, &x.Version, &x.Created, &x.Updated)
}

func (v *sqlVariant) getOn(ctx context.Context, db *sql.DB, id int64) (row, error) {
	var x row
	err := scanRow(db.QueryRowContext(ctx, v.q.get, id), &x)
	return x, err
}

func (v *sqlVariant) get(ctx context.Context, id int64) (row, error) { return v.getOn(ctx, v.w, id) }

func (v *sqlVariant) read(ctx context.Context, id int64) (row, error) { return v.getOn(ctx, v.r, id) }

func (v *sqlVariant) insert(ctx context.Context, r *row) error {
	now := stamp()
	r.Version, r.Created, r.Updated = 1, now, now
	args := []any{r.Grp, r.Email, r.Name, r.Score, r.Version, r.Created, r.Updated}
	if v.q.returning {
		return v.w.QueryRowContext(ctx, v.q.insert, args...).Scan(&r.ID)
	}
	res, err := v.w.ExecContext(ctx, v.q.insert, args...)
	if err != nil {
		return err
	}
	r.ID, err = res.LastInsertId()
	return err
}

func (v *sqlVariant) insertMany(ctx context.Context, rs []row) error {
	return insertBatch(ctx, v.w, v.q, rs)
}

// insertBatch is the hand-written multi-row INSERT of both raw variants:
// sqlx has nothing of its own for it but NamedExec with a slice, which
// returns no keys on PostgreSQL.
func insertBatch(ctx context.Context, db *sql.DB, q statements, rs []row) error {
	now := stamp()
	for i := range rs {
		rs[i].Version, rs[i].Created, rs[i].Updated = 1, now, now
	}
	args := valuesOf(make([]any, 0, len(rs)*7), rs)
	if q.returning {
		rows, err := db.QueryContext(ctx, q.insertMany, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		i := 0
		for ; rows.Next() && i < len(rs); i++ {
			if err := rows.Scan(&rs[i].ID); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if i != len(rs) {
			return errors.New("fewer keys than rows")
		}
		return rows.Close()
	}
	res, err := db.ExecContext(ctx, q.insertMany, args...)
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if q.lastKey {
		id -= int64(len(rs) - 1) // SQLite gives the last row's key, MySQL the first's
	}
	for i := range rs {
		rs[i].ID = id + int64(i)
	}
	return nil
}

func (v *sqlVariant) find(ctx context.Context, grp int64) ([]row, error) {
	rows, err := v.w.QueryContext(ctx, v.q.find, grp)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		out = append(out, row{})
		if err := scanRow(rows, &out[len(out)-1]); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

func (v *sqlVariant) update(ctx context.Context, r *row) error {
	return updateRow(ctx, v.w, v.q, r)
}

// updateRow is the hand-written update of both raw variants.
func updateRow(ctx context.Context, db *sql.DB, q statements, r *row) error {
	r.Updated = stamp()
	res, err := db.ExecContext(ctx, q.update, r.Grp, r.Email, r.Name, r.Score, r.Updated, r.ID, r.Version)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return errStale
	}
	r.Version++
	return nil
}

// sqlxVariant is hand-written sqlx.
type sqlxVariant struct {
	w, r *sqlx.DB
	q    statements
}

func openSqlx(b *testing.B, t target) variant {
	w, r := t.open(b)
	return &sqlxVariant{w: sqlx.NewDb(w, t.driver), r: sqlx.NewDb(r, t.driver), q: newStatements(t.driver)}
}

func (v *sqlxVariant) get(ctx context.Context, id int64) (row, error) {
	var x row
	err := v.w.GetContext(ctx, &x, v.q.get, id)
	return x, err
}

func (v *sqlxVariant) read(ctx context.Context, id int64) (row, error) {
	var x row
	err := v.r.GetContext(ctx, &x, v.q.get, id)
	return x, err
}

func (v *sqlxVariant) insert(ctx context.Context, r *row) error {
	now := stamp()
	r.Version, r.Created, r.Updated = 1, now, now
	args := []any{r.Grp, r.Email, r.Name, r.Score, r.Version, r.Created, r.Updated}
	if v.q.returning {
		return v.w.QueryRowxContext(ctx, v.q.insert, args...).Scan(&r.ID)
	}
	res, err := v.w.ExecContext(ctx, v.q.insert, args...)
	if err != nil {
		return err
	}
	r.ID, err = res.LastInsertId()
	return err
}

func (v *sqlxVariant) insertMany(ctx context.Context, rs []row) error {
	return insertBatch(ctx, v.w.DB, v.q, rs)
}

func (v *sqlxVariant) find(ctx context.Context, grp int64) ([]row, error) {
	var out []row
	err := v.w.SelectContext(ctx, &out, v.q.find, grp)
	return out, err
}

func (v *sqlxVariant) update(ctx context.Context, r *row) error {
	return updateRow(ctx, v.w.DB, v.q, r)
}
