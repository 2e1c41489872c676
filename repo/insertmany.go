package repo

import (
	"context"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/session"
)

// InsertMany adds every row of vs with multi-row INSERT statements, each
// within the database's limit of bind parameters (and at most 1000 rows).
// Outside a transaction the statements run in one of their own: all rows
// are inserted or none. Inside one they join it, and a failure makes it
// roll back. Like Insert it stamps every row (one time for the whole call),
// and it fills generated primary keys in vs:
//
//   - PostgreSQL: RETURNING, in the order of the VALUES rows;
//   - MySQL and MariaDB: LastInsertId is the key of the first row of a
//     statement. InnoDB allocates the keys of an INSERT whose row count is
//     known in advance (a "simple insert", as these are) in one block:
//     consecutive, auto_increment_increment apart (read once per
//     repository), in every innodb_autoinc_lock_mode. Tested on MariaDB
//     10.11 (lock mode 1) with concurrent inserts; modes 0 and 2 follow
//     the MySQL manual. A server whose auto_increment_increment changes
//     at run time (Galera's wsrep_auto_increment_control when the cluster
//     resizes) would need a new repository;
//   - SQLite: LastInsertId is the key of the last row; an INTEGER PRIMARY
//     KEY gives the rows of one statement consecutive keys. A generated key
//     of another type is inserted row by row with RETURNING (SQLite returns
//     a multi-row RETURNING in no set order).
func (r *Repository[T, ID]) InsertMany(ctx context.Context, vs []T) error {
	if len(vs) == 0 {
		return nil
	}
	t := now()
	for i := range vs {
		r.stampInsert(addr(&vs[i]), t)
	}
	return r.insertMany(ctx, vs)
}

// insertMany is InsertMany of rows already stamped.
func (r *Repository[T, ID]) insertMany(ctx context.Context, vs []T) error {
	if r.oneByOne {
		if len(vs) == 1 {
			return r.insertRow(ctx, addr(&vs[0]))
		}
		return r.m.Tx(ctx, func(ctx context.Context) error {
			for i := range vs {
				if err := r.insertRow(ctx, addr(&vs[i])); err != nil {
					return err
				}
			}
			return nil
		}, session.Label("repo.InsertMany"))
	}
	if len(vs) <= r.perChunk { // one statement is all or nothing by itself
		return r.insertChunk(ctx, vs)
	}
	return r.m.Tx(ctx, func(ctx context.Context) error {
		for rest := vs; len(rest) > 0; {
			n := min(len(rest), r.perChunk)
			if err := r.insertChunk(ctx, rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	}, session.Label("repo.InsertMany"))
}

// chunkSQL is the INSERT of a number of rows.
type chunkSQL struct {
	rows int
	text string
}

// chunkCache keeps the INSERT of the largest chunk and of the last other
// size used, so that repeated calls of one size build no SQL.
type chunkCache struct{ full, last atomic.Pointer[chunkSQL] }

// insertSQL returns the INSERT of n rows, and whether that is a size that
// repeats: the full chunk, or the size of the previous call. Only those
// are worth a prepared statement; batches of ever new sizes would churn
// the statement cache.
func (r *Repository[T, ID]) insertSQL(n int) (string, bool) {
	slot := &r.chunks.last
	if n == r.perChunk {
		slot = &r.chunks.full
	}
	if c := slot.Load(); c != nil && c.rows == n {
		return c.text, true
	}
	k := len(r.writable)
	s := sqlText{d: r.d}
	s.b = make([]byte, 0, len(r.sql.insertVal)+n*(k*8+4)+32)
	s.str(r.sql.insertVal)
	for i := range n {
		if i > 0 {
			s.str(", ")
		}
		s.str("(").params(k).str(")")
	}
	if r.idBy == idReturning {
		s.str(" RETURNING " + r.sql.cols[r.e.pk])
	}
	text := string(s.b)
	slot.Store(&chunkSQL{rows: n, text: text})
	return text, n == r.perChunk
}

// insertChunk inserts rows with one statement.
func (r *Repository[T, ID]) insertChunk(ctx context.Context, rows []T) error {
	text, repeated := r.insertSQL(len(rows))
	args := make([]any, 0, len(rows)*len(r.writable))
	for i := range rows {
		args = r.appendArgs(args, addr(&rows[i]), r.writable)
	}
	pk := &r.e.cols[r.e.pk]
	// On SQLite a cached multi-row INSERT saves no round trip, little
	// parsing next to its rows' work, and holds memory of its connection
	// (lookaside) that its other statements then miss: measured 15% slower
	// plain statements while a 1000-row INSERT stayed prepared.
	q := r.querier(ctx, repeated && r.d.Family() != dialect.SQLite)
	switch r.idBy {
	case idReturning:
		res, err := q.QueryContext(ctx, text, args...)
		if err != nil {
			return r.writeErr("insert into", err)
		}
		defer res.Close()
		i := 0
		for ; res.Next() && i < len(rows); i++ {
			if err := res.Scan(pk.ptr(unsafe.Add(addr(&rows[i]), pk.offset))); err != nil {
				return r.writeErr("insert into", err)
			}
		}
		if err := res.Err(); err != nil {
			return r.writeErr("insert into", err)
		}
		if i != len(rows) {
			return fmt.Errorf("repo: insert into %s: %d keys returned for %d rows", r.e.table, i, len(rows))
		}
		return res.Close()
	case idLastInsert:
		step := int64(1)
		if r.d.Family() == dialect.MySQL && len(rows) > 1 {
			var err error
			if step, err = r.increment.get(ctx, q); err != nil {
				return r.readErr("insert into", err)
			}
		}
		res, err := q.ExecContext(ctx, text, args...)
		if err != nil {
			return r.writeErr("insert into", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return r.writeErr("insert into", err)
		}
		if r.d.Family() == dialect.SQLite {
			id -= int64(len(rows) - 1) // SQLite gives the last row's key
		}
		for i := range rows {
			r.setInt(addr(&rows[i]), r.e.pk, id+int64(i)*step)
		}
		return nil
	}
	if _, err := q.ExecContext(ctx, text, args...); err != nil {
		return r.writeErr("insert into", err)
	}
	return nil
}

// autoIncrement caches MySQL's auto_increment_increment: the step between
// the keys of the rows of one INSERT (1 unless set, as Galera does).
type autoIncrement struct{ step atomic.Int64 }

func (a *autoIncrement) get(ctx context.Context, q session.Querier) (int64, error) {
	if s := a.step.Load(); s > 0 {
		return s, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT @@auto_increment_increment")
	if err != nil {
		return 0, err
	}
	var s int64
	if err := scanFirst(rows, &s); err != nil {
		return 0, err
	}
	if s < 1 {
		s = 1
	}
	a.step.Store(s)
	return s, nil
}
