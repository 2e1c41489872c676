package repo

import (
	"context"
	"errors"
)

// Load adds every row of vs by the fastest path the database has, for
// rows whose generated keys the caller does not need back: on PostgreSQL
// (dbfx/postgres and dbfx/pgx) one COPY FROM STDIN, which leaves a
// generated primary key unset in vs; elsewhere InsertMany's multi-row
// INSERTs (MySQL, MariaDB and SQLite have nothing faster), which fill it.
// Like InsertMany it stamps every row, and outside a transaction it runs
// in one of its own: every row is added or none. In one, it joins it.
//
// A unique violation is ErrDuplicate, as for Insert; on PostgreSQL it is
// reported when the load ends, for the load as a whole.
func (r *Repository[T, ID]) Load(ctx context.Context, vs []T) error {
	if len(vs) == 0 {
		return nil
	}
	t := now()
	for i := range vs {
		r.stampInsert(addr(&vs[i]), t)
	}
	if len(r.copyCols) == 0 { // nothing to copy: every column is the database's
		return r.insertMany(ctx, vs)
	}
	_, err := r.m.CopyFrom(ctx, r.e.table, r.copyCols, len(vs), func(i int, dst []any) {
		r.appendArgs(dst[:0], addr(&vs[i]), r.writable)
	})
	if errors.Is(err, errors.ErrUnsupported) {
		return r.insertMany(ctx, vs)
	}
	if err != nil {
		return r.writeErr("load into", err)
	}
	return nil
}
