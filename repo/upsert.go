package repo

import (
	"context"
	"unsafe"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/session"
)

// Upsert inserts v, or updates the row whose key v's takes. The key is
// the primary key unless ConflictOn names a unique key; a generated
// primary key left zero is not written (so only a ConflictOn key can
// conflict). On update every written column but created (and the conflict
// key) takes v's value, and the version is incremented without checking
// v's: Upsert is "last writer wins". Afterwards v holds the row as stored:
// its primary key, version and created timestamp.
//
// PostgreSQL and SQLite use INSERT ... ON CONFLICT (key) DO UPDATE ...
// RETURNING. MySQL and MariaDB use INSERT ... ON DUPLICATE KEY UPDATE,
// which fires on a conflict with ANY unique key of the table, whatever the
// ConflictOn columns; the row is then read back (in a transaction, joined
// when ctx has one) when v has a version, created or readonly column.
func (r *Repository[T, ID]) Upsert(ctx context.Context, v *T) error {
	e := r.e
	p := addr(v)
	r.stampInsert(p, now())
	pk := &e.cols[e.pk]
	withPK := 1
	if pk.auto && r.field(p, e.pk).IsZero() {
		withPK = 0
	}
	cols := r.upsertCols[withPK]
	text := r.sql.upsert[withPK]
	args := r.appendArgs(make([]any, 0, len(cols)), p, cols)
	if r.d.Family() != dialect.MySQL {
		rows, err := r.m.Prepared(ctx).QueryContext(ctx, text, args...)
		if err != nil {
			return r.writeErr("upsert into", err)
		}
		if err := scanFirst(rows, r.dests(make([]any, len(e.cols)), p)...); err != nil {
			return r.writeErr("upsert into", err)
		}
		return nil
	}
	run := func(ctx context.Context) error {
		q := r.m.Prepared(ctx)
		res, err := q.ExecContext(ctx, text, args...)
		if err != nil {
			return r.writeErr("upsert into", err)
		}
		if pk.auto {
			id, err := res.LastInsertId()
			if err != nil {
				return r.writeErr("upsert into", err)
			}
			r.setInt(p, e.pk, id)
		}
		if !r.reread {
			return nil
		}
		if pk.auto { // LAST_INSERT_ID(pk) named the row, whichever key conflicted
			return r.readBack(ctx, q, r.sql.get, r.appendArgs(nil, p, []int{e.pk}), p)
		}
		return r.readBack(ctx, q, r.sql.reread, r.appendArgs(nil, p, r.conflict), p)
	}
	if !r.reread {
		return run(ctx)
	}
	return r.m.Tx(ctx, run, session.Label("repo.Upsert"))
}

// readBack reads a row into the struct at p.
func (r *Repository[T, ID]) readBack(ctx context.Context, q session.Querier, text string, args []any, p unsafe.Pointer) error {
	rows, err := q.QueryContext(ctx, text, args...)
	if err != nil {
		return r.readErr("upsert into", err)
	}
	if err := scanFirst(rows, r.dests(make([]any, len(r.e.cols)), p)...); err != nil {
		return r.readErr("upsert into", err)
	}
	return nil
}
