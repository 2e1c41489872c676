package repo

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unsafe"
)

// UpdateWhere sets the columns of set in every row the Where clauses
// select, in one statement, and returns the number of rows it changed.
// Besides set it stamps the updated column (unless set names it) and
// increments the version column, as Update does, so that a versioned
// Update of a row read before fails with ErrStale.
//
// set may not be empty, and may only name columns Update writes (not the
// primary key, nor created, readonly or version columns), each once;
// otherwise it is ErrInvalidClause, and an unknown column is
// ErrUnknownColumn, before anything is sent. q takes only Where clauses
// and at least one condition (ErrInvalidClause; an empty And, which holds
// for every row, does not count): AllRows() says every row is meant.
//
// On MySQL and MariaDB the count is of rows changed, not matched, unless
// the connection counts found rows; with an updated or version column every
// matched row changes.
func (r *Repository[T, ID]) UpdateWhere(ctx context.Context, set []Assignment, q ...Clause) (int64, error) {
	if len(set) == 0 {
		return 0, fmt.Errorf("%w: UpdateWhere of %s with no assignment", ErrInvalidClause, r.e.table)
	}
	if err := r.setWhereClauses("UpdateWhere", q); err != nil {
		return 0, err
	}
	e := r.e
	b := &query{sqlText: sqlText{d: r.d}}
	b.str("UPDATE " + r.sql.table + " SET ")
	seen := make(map[int]bool, len(set))
	for i, a := range set {
		c, err := r.column(a.column)
		if err != nil {
			return 0, err
		}
		if col := &e.cols[c]; !updatable(col) {
			return 0, fmt.Errorf("%w: UpdateWhere cannot set %s.%s, a key, created, readonly or version column", ErrInvalidClause, e.table, col.name)
		}
		if seen[c] {
			return 0, fmt.Errorf("%w: UpdateWhere sets %s.%s twice", ErrInvalidClause, e.table, a.column)
		}
		seen[c] = true
		if i > 0 {
			b.str(", ")
		}
		b.str(r.sql.cols[c] + " = ")
		if a.incr {
			b.str(r.sql.cols[c] + " + ")
		}
		b.bind(a.value)
	}
	if e.updated >= 0 && !seen[e.updated] {
		b.str(", " + r.sql.cols[e.updated] + " = ")
		b.bind(now())
	}
	if e.version >= 0 {
		v := r.sql.cols[e.version]
		b.str(", " + v + " = " + v + " + 1")
	}
	if _, err := r.where(b, q); err != nil {
		return 0, err
	}
	return r.execCount(ctx, "update", b)
}

// DeleteWhere removes every row the Where clauses select, in one
// statement, and returns the number of rows it removed. q takes only Where
// clauses and at least one condition: with none (or only an empty And) it
// is ErrInvalidClause and nothing is deleted; AllRows() says "every row"
// explicitly. The version column is not checked.
func (r *Repository[T, ID]) DeleteWhere(ctx context.Context, q ...Clause) (int64, error) {
	if err := r.setWhereClauses("DeleteWhere", q); err != nil {
		return 0, err
	}
	b := &query{sqlText: sqlText{d: r.d}}
	b.str("DELETE FROM " + r.sql.table)
	if _, err := r.where(b, q); err != nil {
		return 0, err
	}
	return r.execCount(ctx, "delete from", b)
}

// setWhereClauses checks the clauses of a set-based write: Where clauses
// only, and at least one that may leave a row out, unless AllRows says
// that every row is meant.
func (r *Repository[T, ID]) setWhereClauses(op string, q []Clause) error {
	all, narrows := false, false
	for i := range q {
		switch c := &q[i]; c.kind {
		case clauseAll:
			all = true
		case clauseWhere:
			narrows = narrows || !c.cond.vacuous()
		default:
			return fmt.Errorf("%w: %s takes Where clauses only", ErrInvalidClause, op)
		}
	}
	if !all && !narrows {
		return fmt.Errorf("%w: %s of %s with no condition (AllRows() means every row)", ErrInvalidClause, op, r.e.table)
	}
	return nil
}

// execCount runs a set-based write and returns the rows it affected.
func (r *Repository[T, ID]) execCount(ctx context.Context, op string, b *query) (int64, error) {
	return r.exec(ctx, op, r.querier(ctx, !b.varies), b.String(), b.args)
}

// Exists reports whether a row matches the Where clauses (with none,
// whether the table has a row): SELECT 1 ... LIMIT 1, which stops at the
// first match where Count would count them all. q takes only Where
// clauses (ErrInvalidClause); an unknown column is ErrUnknownColumn.
func (r *Repository[T, ID]) Exists(ctx context.Context, q ...Clause) (bool, error) {
	for _, c := range q {
		if c.kind != clauseWhere && c.kind != clauseAll {
			return false, fmt.Errorf("%w: Exists takes Where clauses only", ErrInvalidClause)
		}
	}
	b := &query{sqlText: sqlText{d: r.d}}
	b.str("SELECT 1 FROM " + r.sql.table)
	if _, err := r.where(b, q); err != nil {
		return false, err
	}
	b.str(" LIMIT 1")
	rows, err := r.querier(ctx, !b.varies).QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return false, r.readErr("exists in", err)
	}
	defer rows.Close()
	found := rows.Next()
	if err := rows.Err(); err != nil {
		return false, r.readErr("exists in", err)
	}
	if err := rows.Close(); err != nil {
		return false, r.readErr("exists in", err)
	}
	return found, nil
}

// DeleteVersion removes the row of v's primary key only if its version
// column still holds v's version: the delete of a row read before, which
// must not remove what another writer changed since. A row at another
// version is ErrStale (and stays); no row with v's key is ErrNotFound. On
// an entity without a version column it is Delete of v's key.
func (r *Repository[T, ID]) DeleteVersion(ctx context.Context, v *T) error {
	e := r.e
	p := addr(v)
	pk := &e.cols[e.pk]
	id := pk.val(unsafe.Add(p, pk.offset))
	args := []any{id}
	if e.version >= 0 {
		args = r.appendArgs(args, p, []int{e.version})
	}
	q := r.m.Prepared(ctx)
	n, err := r.exec(ctx, "delete from", q, r.sql.delVer, args)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if e.version < 0 {
		return fmt.Errorf("%w: %s %v", ErrNotFound, e.table, id)
	}
	// No row matched: it is gone, or another writer changed its version.
	return r.noRowMatched(ctx, q, id)
}

// UpdateColumns writes only the named columns of v, and sets the updated
// column (in the row and in v), leaving the row's other columns as they
// are: two requests that change different fields of an unversioned entity
// both keep their changes, where Update would write back the other's
// fields as it read them. With a version column it updates only the row
// still at v's version and increments the version (in the row and in v),
// as Update does, so that of two requests that read the same version and
// change different fields, the second gets ErrStale and writes nothing: a
// version guards the whole row, not the columns written. A missing row is
// ErrNotFound.
//
// columns are column names of T, each once, at least one: a name T does
// not map is ErrUnknownColumn; none, a repeated name, or the primary key,
// a created, readonly or version column is ErrInvalidClause, before
// anything is sent. Naming the updated column is allowed (it is stamped).
func (r *Repository[T, ID]) UpdateColumns(ctx context.Context, v *T, columns ...string) error {
	e := r.e
	if len(columns) == 0 {
		return fmt.Errorf("%w: UpdateColumns of %s with no column", ErrInvalidClause, e.table)
	}
	cols := make([]int, 0, len(columns)+1)
	for _, name := range columns {
		c, err := r.column(name)
		if err != nil {
			return err
		}
		if col := &e.cols[c]; !updatable(col) {
			return fmt.Errorf("%w: UpdateColumns cannot write %s.%s, a key, created, readonly or version column", ErrInvalidClause, e.table, col.name)
		}
		if slices.Contains(cols, c) {
			return fmt.Errorf("%w: UpdateColumns names %s.%s twice", ErrInvalidClause, e.table, name)
		}
		cols = append(cols, c)
	}
	p := addr(v)
	if e.updated >= 0 {
		*(*time.Time)(unsafe.Add(p, e.cols[e.updated].offset)) = now()
		if !slices.Contains(cols, e.updated) {
			cols = append(cols, e.updated)
		}
	}
	pk := &e.cols[e.pk]
	id := pk.val(unsafe.Add(p, pk.offset))
	b := &query{sqlText: sqlText{d: r.d}, args: make([]any, 0, len(cols)+2)}
	b.str("UPDATE " + r.sql.table + " SET ")
	for i, c := range cols {
		if i > 0 {
			b.str(", ")
		}
		b.str(r.sql.cols[c] + " = ")
		col := &e.cols[c]
		b.bind(col.val(unsafe.Add(p, col.offset)))
	}
	if e.version >= 0 {
		ver := r.sql.cols[e.version]
		b.str(", " + ver + " = " + ver + " + 1")
	}
	b.str(" WHERE " + r.sql.cols[e.pk] + " = ")
	b.bind(id)
	if e.version >= 0 {
		b.str(" AND " + r.sql.cols[e.version] + " = ")
		vc := &e.cols[e.version]
		b.bind(vc.val(unsafe.Add(p, vc.offset)))
	}
	q := r.m.Prepared(ctx) // the text repeats for a set of columns
	return r.updateByKey(ctx, q, b.String(), b.args, p, id)
}
