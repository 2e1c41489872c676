package repo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/session"
)

// Repository reads and writes entities of type T, keyed by ID, in one
// table. It takes its Querier from the context on every call (m.Q(ctx)),
// so it joins whatever scope the caller opened. It is safe for use by many
// goroutines.
type Repository[T any, ID comparable] struct {
	m *session.Manager
	d *dialect.Dialect
	e *entity

	writable   []int    // columns Insert writes
	copyCols   []string // their names, for Load's COPY
	updatable  []int    // columns Update sets (besides the version)
	upsertCols [2][]int // columns Upsert writes: [0] without the auto pk, [1] with it
	conflict   []int    // Upsert's conflict target: ConflictOn columns, else the pk
	idBy       idSource
	perChunk   int  // rows per InsertMany statement
	oneByOne   bool // InsertMany inserts row by row (see New)
	reread     bool // MySQL Upsert reads the row back
	sql        statements

	maxLimit  int      // most rows of a Page
	pageLimit int      // rows of a Page whose request has no Limit
	signKeys  [][]byte // SignCursors: [0] signs, all verify; none: cursors are checksummed only

	increment autoIncrement // MySQL: @@auto_increment_increment, read once
	chunks    chunkCache    // InsertMany's statements
	args      sync.Pool     // *[]any: the arguments of Insert and Update (see getArgs)
}

// getArgs returns an empty argument slice, to give back with putArgs
// once the statement has run: database/sql converts the arguments during
// the call and keeps nothing of the slice.
func (r *Repository[T, ID]) getArgs() *[]any {
	if a, ok := r.args.Get().(*[]any); ok {
		return a
	}
	a := make([]any, 0, len(r.e.cols)+1)
	return &a
}

// putArgs gives a back, holding nothing of the caller's values.
func (r *Repository[T, ID]) putArgs(a *[]any) {
	clear(*a)
	*a = (*a)[:0]
	r.args.Put(a)
}

// idSource says how an auto pk comes back from an INSERT.
type idSource uint8

const (
	idNone       idSource = iota // the pk is not generated
	idReturning                  // INSERT ... RETURNING pk
	idLastInsert                 // sql.Result.LastInsertId
)

// maxChunkRows bounds the rows of one InsertMany statement, and so its
// size in bytes (MySQL refuses packets above max_allowed_packet).
const maxChunkRows = 1000

// New returns the repository of T over m. It reads T's mapping (see the
// package documentation) and builds its SQL; it does not touch the
// database, so it may run before the engine starts. A mapping error names
// the type and the field.
func New[T any, ID comparable](m *session.Manager, opts ...Option) (*Repository[T, ID], error) {
	if m == nil {
		return nil, errors.New("repo: New needs a *session.Manager")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	t := reflect.TypeFor[T]()
	if o.table == "" {
		var zero T
		if n, ok := any(zero).(tableNamer); ok {
			o.table = n.TableName()
		} else if n, ok := any(&zero).(tableNamer); ok {
			o.table = n.TableName()
		}
	}
	e, err := newEntity(t, o.table)
	if err != nil {
		return nil, err
	}
	d := m.Dialect()
	r := &Repository[T, ID]{m: m, d: d, e: e}
	if err := r.pageOptions(&o); err != nil {
		return nil, err
	}
	pk := &e.cols[e.pk]
	if idType := reflect.TypeFor[ID](); pk.typ != idType {
		return nil, fmt.Errorf("repo: %s.%s, the primary key, is %s but the repository's ID type is %s", t, pk.field, pk.typ, idType)
	}
	if pk.auto {
		switch {
		case d.Family() == dialect.Postgres:
			r.idBy = idReturning
		case isInteger(pk.typ):
			r.idBy = idLastInsert // measured faster than RETURNING on SQLite; MySQL 8 has no RETURNING
		case d.InsertReturning():
			r.idBy = idReturning
			r.oneByOne = true // SQLite returns the rows of a multi-row RETURNING in no set order
		default:
			return nil, fmt.Errorf("repo: %s.%s: a generated primary key of type %s needs INSERT ... RETURNING, which %s lacks: use an integer AUTO_INCREMENT key",
				t, pk.field, pk.typ, d)
		}
	}
	r.writable = e.columnsWhere(writable)
	for _, c := range r.writable {
		r.copyCols = append(r.copyCols, e.cols[c].name)
	}
	r.updatable = e.columnsWhere(updatable)
	r.upsertCols[0] = r.writable
	r.upsertCols[1] = e.columnsWhere(func(c *column) bool { return !c.readonly })
	if len(r.writable) == 0 {
		r.oneByOne = true
	} else {
		r.perChunk = max(1, min(maxChunkRows, d.MaxPlaceholders()/len(r.writable)))
	}
	r.conflict = []int{e.pk}
	if len(o.conflict) > 0 {
		r.conflict = r.conflict[:0]
		for _, name := range o.conflict {
			i, err := r.column(name)
			if err != nil {
				return nil, fmt.Errorf("repo: ConflictOn: %w", err)
			}
			r.conflict = append(r.conflict, i)
		}
	}
	hasReadonly := len(e.columnsWhere(func(c *column) bool { return c.readonly })) > 0
	r.reread = d.Family() == dialect.MySQL &&
		(e.version >= 0 || e.created >= 0 || hasReadonly || (len(o.conflict) > 0 && !pk.auto))
	r.buildStatements()
	return r, nil
}

// Table is the name of the repository's table.
func (r *Repository[T, ID]) Table() string { return r.e.table }

// now is the time the repository stamps rows with: UTC, truncated to
// microseconds, the precision all three databases keep.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// stamp sets the timestamps and the first version of a row to insert.
func (r *Repository[T, ID]) stampInsert(p unsafe.Pointer, t time.Time) {
	e := r.e
	if e.created >= 0 {
		if c := (*time.Time)(unsafe.Add(p, e.cols[e.created].offset)); c.IsZero() {
			*c = t
		}
	}
	if e.updated >= 0 {
		*(*time.Time)(unsafe.Add(p, e.cols[e.updated].offset)) = t
	}
	if e.version >= 0 {
		if v := r.field(p, e.version); v.IsZero() {
			v.SetInt(1)
		}
	}
}

// field is the reflect.Value of column i of the struct at p, settable.
func (r *Repository[T, ID]) field(p unsafe.Pointer, i int) reflect.Value {
	c := &r.e.cols[i]
	return reflect.NewAt(c.typ, unsafe.Add(p, c.offset)).Elem()
}

// setInt sets an integer column: a generated id or a version.
func (r *Repository[T, ID]) setInt(p unsafe.Pointer, i int, n int64) {
	v := r.field(p, i)
	if v.CanInt() {
		v.SetInt(n)
	} else {
		v.SetUint(uint64(n))
	}
}

func (r *Repository[T, ID]) getInt(p unsafe.Pointer, i int) int64 {
	v := r.field(p, i)
	if v.CanInt() {
		return v.Int()
	}
	return int64(v.Uint())
}

// appendArgs appends the values of the given columns of the struct at p.
func (r *Repository[T, ID]) appendArgs(args []any, p unsafe.Pointer, cols []int) []any {
	for _, i := range cols {
		c := &r.e.cols[i]
		args = append(args, c.val(unsafe.Add(p, c.offset)))
	}
	return args
}

// dests fills dst with Scan destinations for every column of the struct
// at p.
func (r *Repository[T, ID]) dests(dst []any, p unsafe.Pointer) []any {
	for i := range r.e.cols {
		c := &r.e.cols[i]
		dst[i] = c.ptr(unsafe.Add(p, c.offset))
	}
	return dst
}

// scanOne reads the first row of rows into v; false when there is none.
func (r *Repository[T, ID]) scanOne(rows *sql.Rows, v *T) (bool, error) {
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	var buf [16]any
	var dst []any
	if n := len(r.e.cols); n <= len(buf) {
		dst = buf[:n]
	} else {
		dst = make([]any, n)
	}
	if err := rows.Scan(r.dests(dst, addr(v))...); err != nil {
		return true, err
	}
	return true, rows.Close()
}

// scanAll reads every row of rows.
func (r *Repository[T, ID]) scanAll(rows *sql.Rows, capacity int) ([]T, error) {
	defer rows.Close()
	out := make([]T, 0, capacity)
	dst := make([]any, len(r.e.cols))
	var zero T
	for rows.Next() {
		out = append(out, zero)
		if err := rows.Scan(r.dests(dst, addr(&out[len(out)-1]))...); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// writeErr wraps the error of a write: a unique violation is ErrDuplicate.
// A row another transaction kept locked is ErrLocked.
func (r *Repository[T, ID]) writeErr(op string, err error) error {
	c := r.d.Classify(err)
	switch {
	case c.Has(dialect.Unique):
		return fmt.Errorf("%w in %s: %w", ErrDuplicate, r.e.table, err)
	case c.Has(dialect.Locked):
		return fmt.Errorf("%w: %s %s: %w", ErrLocked, op, r.e.table, err)
	}
	return fmt.Errorf("repo: %s %s: %w", op, r.e.table, err)
}

// readErr wraps the error of a read: a row another transaction kept
// locked (ForUpdateNoWait, a lock timeout) is ErrLocked.
func (r *Repository[T, ID]) readErr(op string, err error) error {
	if r.d.Classify(err).Has(dialect.Locked) {
		return fmt.Errorf("%w: %s %s: %w", ErrLocked, op, r.e.table, err)
	}
	return fmt.Errorf("repo: %s %s: %w", op, r.e.table, err)
}

// querier is the Querier of a statement in ctx: Prepared (a cached
// prepared statement) for SQL built once, or whose text repeats from call
// to call; Q for SQL whose text varies with the values (IN lists, offsets),
// which would only churn the Manager's statement cache.
func (r *Repository[T, ID]) querier(ctx context.Context, fixed bool) session.Querier {
	if fixed {
		return r.m.Prepared(ctx)
	}
	return r.m.Q(ctx)
}

// Get returns the row with primary key id, or ErrNotFound.
func (r *Repository[T, ID]) Get(ctx context.Context, id ID) (T, error) {
	var v T
	rows, err := r.m.Prepared(ctx).QueryContext(ctx, r.sql.get, id)
	if err != nil {
		return v, r.readErr("get from", err)
	}
	found, err := r.scanOne(rows, &v)
	switch {
	case err != nil:
		return v, r.readErr("get from", err)
	case !found:
		return v, fmt.Errorf("%w: %s %v", ErrNotFound, r.e.table, id)
	}
	return v, nil
}

// Find returns the rows the clauses select, in primary key order unless
// OrderBy says otherwise. No row is not an error: the slice is empty.
func (r *Repository[T, ID]) Find(ctx context.Context, q ...Clause) ([]T, error) {
	text, args, capacity, fixed := r.sql.findAll, []any(nil), 0, true
	if len(q) > 0 {
		b, sh, err := r.buildFind(q, -1)
		if err == nil {
			err = r.checkLock(ctx, sh)
		}
		if err != nil {
			return nil, err
		}
		text, args, fixed = b.String(), b.args, !b.varies
		if sh.limit >= 0 {
			capacity = min(sh.limit, 1024)
		}
	}
	rows, err := r.querier(ctx, fixed).QueryContext(ctx, text, args...)
	if err != nil {
		return nil, r.readErr("find in", err)
	}
	out, err := r.scanAll(rows, capacity)
	if err != nil {
		return nil, r.readErr("find in", err)
	}
	return out, nil
}

// First returns the first row the clauses select (in primary key order
// unless OrderBy says otherwise), or ErrNotFound.
func (r *Repository[T, ID]) First(ctx context.Context, q ...Clause) (T, error) {
	var v T
	b, sh, err := r.buildFind(q, 1)
	if err == nil {
		err = r.checkLock(ctx, sh)
	}
	if err != nil {
		return v, err
	}
	rows, err := r.querier(ctx, !b.varies).QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return v, r.readErr("first in", err)
	}
	found, err := r.scanOne(rows, &v)
	switch {
	case err != nil:
		return v, r.readErr("first in", err)
	case !found:
		return v, fmt.Errorf("%w: no row of %s matches", ErrNotFound, r.e.table)
	}
	return v, nil
}

// Count returns the number of rows the Where clauses select. OrderBy,
// Limit and Offset do not change it: it counts every matching row.
func (r *Repository[T, ID]) Count(ctx context.Context, q ...Clause) (int64, error) {
	b, err := r.buildCount(q)
	if err != nil {
		return 0, err
	}
	var n int64
	rows, err := r.querier(ctx, !b.varies).QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return 0, r.readErr("count", err)
	}
	defer rows.Close()
	if rows.Next() {
		err = rows.Scan(&n)
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return 0, r.readErr("count", err)
	}
	return n, rows.Close()
}

// Insert adds v. It fills v's generated primary key, sets its created and
// updated timestamps (created only when zero) and its version to 1 when
// zero. A taken key is ErrDuplicate.
func (r *Repository[T, ID]) Insert(ctx context.Context, v *T) error {
	p := addr(v)
	r.stampInsert(p, now())
	return r.insertRow(ctx, p)
}

func (r *Repository[T, ID]) insertRow(ctx context.Context, p unsafe.Pointer) error {
	buf := r.getArgs()
	defer r.putArgs(buf)
	args := r.appendArgs(*buf, p, r.writable)
	*buf = args
	q := r.m.Prepared(ctx)
	switch r.idBy {
	case idReturning:
		rows, err := q.QueryContext(ctx, r.sql.insert, args...)
		if err != nil {
			return r.writeErr("insert into", err)
		}
		pk := &r.e.cols[r.e.pk]
		err = scanFirst(rows, pk.ptr(unsafe.Add(p, pk.offset)))
		if err != nil {
			return r.writeErr("insert into", err)
		}
		return nil
	case idLastInsert:
		res, err := q.ExecContext(ctx, r.sql.insert, args...)
		if err != nil {
			return r.writeErr("insert into", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return r.writeErr("insert into", err)
		}
		r.setInt(p, r.e.pk, id)
		return nil
	}
	if _, err := q.ExecContext(ctx, r.sql.insert, args...); err != nil {
		return r.writeErr("insert into", err)
	}
	return nil
}

// errNoRow: a statement that always returns a row returned none.
var errNoRow = errors.New("no row returned")

// scanFirst scans the first row of rows into dest and closes rows.
func scanFirst(rows *sql.Rows, dest ...any) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errNoRow
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// Update writes every column of v but the primary key, created and
// readonly ones, and sets updated. With a version column it updates only
// the row still at v's version, increments the version (in the row and in
// v), and returns ErrStale when another writer got there first. A missing
// row is ErrNotFound.
func (r *Repository[T, ID]) Update(ctx context.Context, v *T) error {
	e := r.e
	p := addr(v)
	if e.updated >= 0 {
		*(*time.Time)(unsafe.Add(p, e.cols[e.updated].offset)) = now()
	}
	pk := &e.cols[e.pk]
	id := pk.val(unsafe.Add(p, pk.offset))
	q := r.m.Prepared(ctx)
	if r.sql.update == "" { // nothing to write: only say whether the row exists
		return r.exists(ctx, q, id, ErrNotFound)
	}
	buf := r.getArgs()
	defer r.putArgs(buf)
	args := r.appendArgs(*buf, p, r.updatable)
	args = append(args, id)
	if e.version >= 0 {
		args = r.appendArgs(args, p, []int{e.version})
	}
	*buf = args
	return r.updateByKey(ctx, q, r.sql.update, args, p, id)
}

// updateByKey runs an UPDATE of the row with key id (and v's version,
// when there is one) and increments v's version when it matched; it says
// why it matched no row (noRowMatched).
func (r *Repository[T, ID]) updateByKey(ctx context.Context, q session.Querier, query string, args []any, p unsafe.Pointer, id any) error {
	n, err := r.exec(ctx, "update", q, query, args)
	if err != nil {
		return err
	}
	if n == 0 {
		return r.noRowMatched(ctx, q, id)
	}
	if v := r.e.version; v >= 0 {
		r.setInt(p, v, r.getInt(p, v)+1)
	}
	return nil
}

// exec runs a write and returns the rows it affected.
func (r *Repository[T, ID]) exec(ctx context.Context, op string, q session.Querier, query string, args []any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, r.writeErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, r.writeErr(op, err)
	}
	return n, nil
}

// noRowMatched says why an UPDATE or DELETE by pk (and version) matched no row: the
// row is gone (ErrNotFound), or, with a version column, another writer
// changed it (ErrStale). Without a version a row that exists was only left
// unchanged (a MySQL connection without clientFoundRows counts 0): nil.
func (r *Repository[T, ID]) noRowMatched(ctx context.Context, q session.Querier, id any) error {
	if err := r.exists(ctx, q, id, ErrNotFound); err != nil || r.e.version < 0 {
		return err
	}
	return fmt.Errorf("%w: %s %v", ErrStale, r.e.table, id)
}

// exists returns nil when the row with pk id exists, else missing.
func (r *Repository[T, ID]) exists(ctx context.Context, q session.Querier, id any, missing error) error {
	rows, err := q.QueryContext(ctx, r.sql.exists, id)
	if err != nil {
		return r.readErr("look up", err)
	}
	var one int
	err = scanFirst(rows, &one)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNoRow):
		return fmt.Errorf("%w: %s %v", missing, r.e.table, id)
	}
	return r.readErr("look up", err)
}

// Delete removes the row with primary key id; ErrNotFound when there is
// none.
func (r *Repository[T, ID]) Delete(ctx context.Context, id ID) error {
	n, err := r.exec(ctx, "delete from", r.m.Prepared(ctx), r.sql.del, []any{id})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s %v", ErrNotFound, r.e.table, id)
	}
	return nil
}
