package repo

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/enginekit/enginekit/internal/dialect"
)

// maxCondDepth bounds how deeply And and Or may nest: databases refuse
// very deep expressions, and a bound keeps the builder's recursion small.
const maxCondDepth = 64

// statements is the SQL text of a repository, built once at New.
type statements struct {
	table     string // quoted
	cols      []string
	selectAll string // SELECT <cols> FROM <table>
	findAll   string // selectAll ORDER BY <pk>
	count     string
	get       string
	exists    string
	del       string
	delVer    string // DELETE by pk and version; del when there is no version column
	insert    string // one row; RETURNING the pk where the pk comes back that way
	insertVal string // INSERT INTO <table> (<writable cols>) VALUES
	update    string
	upsert    [2]string // [0]: without the auto pk, [1]: with it
	reread    string    // MySQL Upsert: the row by its conflict target
}

// quoteTable quotes a table name, each dot-separated part on its own.
func quoteTable(d *dialect.Dialect, name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = d.Quote(p)
	}
	return strings.Join(parts, ".")
}

// sqlText builds a statement, numbering placeholders as it goes.
type sqlText struct {
	d *dialect.Dialect
	b []byte
	n int // placeholders written
}

func (s *sqlText) str(v string) *sqlText { s.b = append(s.b, v...); return s }

func (s *sqlText) param() *sqlText {
	s.n++
	s.b = s.d.AppendPlaceholder(s.b, s.n)
	return s
}

func (s *sqlText) list(items []string, sep string) *sqlText {
	for i, it := range items {
		if i > 0 {
			s.str(sep)
		}
		s.str(it)
	}
	return s
}

func (s *sqlText) params(n int) *sqlText {
	for i := range n {
		if i > 0 {
			s.str(", ")
		}
		s.param()
	}
	return s
}

func (s *sqlText) String() string { return string(s.b) }

// columnsWhere returns the indexes of the columns for which keep holds.
func (e *entity) columnsWhere(keep func(c *column) bool) []int {
	var out []int
	for i := range e.cols {
		if keep(&e.cols[i]) {
			out = append(out, i)
		}
	}
	return out
}

// writable: written by Insert (the database makes auto and readonly ones).
func writable(c *column) bool { return !c.auto && !c.readonly }

// updatable: written by Update's SET besides the version.
func updatable(c *column) bool {
	return !c.pk && !c.auto && !c.readonly && !c.created && !c.version
}

func (r *Repository[T, ID]) pick(idx []int) []string {
	out := make([]string, len(idx))
	for i, c := range idx {
		out[i] = r.sql.cols[c]
	}
	return out
}

// buildStatements writes the fixed SQL of the repository.
func (r *Repository[T, ID]) buildStatements() {
	d, e, st := r.d, r.e, &r.sql
	st.table = quoteTable(d, e.table)
	st.cols = make([]string, len(e.cols))
	for i, c := range e.cols {
		st.cols[i] = d.Quote(c.name)
	}
	pk := st.cols[e.pk]
	all := strings.Join(st.cols, ", ")
	st.selectAll = "SELECT " + all + " FROM " + st.table
	st.findAll = st.selectAll + " ORDER BY " + pk
	st.count = "SELECT COUNT(*) FROM " + st.table
	st.get = (&sqlText{d: d}).str(st.selectAll + " WHERE " + pk + " = ").param().String()
	st.exists = (&sqlText{d: d}).str("SELECT 1 FROM " + st.table + " WHERE " + pk + " = ").param().String()
	st.del = (&sqlText{d: d}).str("DELETE FROM " + st.table + " WHERE " + pk + " = ").param().String()
	st.delVer = st.del
	if e.version >= 0 {
		st.delVer = (&sqlText{d: d}).str("DELETE FROM " + st.table + " WHERE " + pk + " = ").param().
			str(" AND " + st.cols[e.version] + " = ").param().String()
	}

	w := r.writable
	st.insertVal = "INSERT INTO " + st.table + " (" + strings.Join(r.pick(w), ", ") + ") VALUES "
	ins := &sqlText{d: d}
	switch {
	case len(w) == 0 && d.Family() == dialect.MySQL:
		ins.str("INSERT INTO " + st.table + " () VALUES ()")
	case len(w) == 0:
		ins.str("INSERT INTO " + st.table + " DEFAULT VALUES")
	default:
		ins.str(st.insertVal + "(").params(len(w)).str(")")
	}
	if r.idBy == idReturning {
		ins.str(" RETURNING " + pk)
	}
	st.insert = ins.String()

	up := &sqlText{d: d}
	up.str("UPDATE " + st.table + " SET ")
	sets := 0
	for _, c := range r.updatable {
		if sets > 0 {
			up.str(", ")
		}
		up.str(st.cols[c] + " = ").param()
		sets++
	}
	if e.version >= 0 {
		if sets > 0 {
			up.str(", ")
		}
		v := st.cols[e.version]
		up.str(v + " = " + v + " + 1")
		sets++
	}
	up.str(" WHERE " + pk + " = ").param()
	if e.version >= 0 {
		up.str(" AND " + st.cols[e.version] + " = ").param()
	}
	if sets > 0 {
		st.update = up.String()
	}

	st.upsert[1] = r.buildUpsert(r.upsertCols[1])
	if e.cols[e.pk].auto {
		st.upsert[0] = r.buildUpsert(r.upsertCols[0])
	}
	if d.Family() == dialect.MySQL {
		rr := &sqlText{d: d}
		rr.str(st.selectAll + " WHERE ")
		for i, c := range r.conflict {
			if i > 0 {
				rr.str(" AND ")
			}
			rr.str(st.cols[c] + " = ").param()
		}
		st.reread = rr.String()
	}
}

// buildUpsert writes the upsert of the given columns.
func (r *Repository[T, ID]) buildUpsert(cols []int) string {
	d, e, st := r.d, r.e, &r.sql
	s := &sqlText{d: d}
	s.str("INSERT INTO " + st.table + " (" + strings.Join(r.pick(cols), ", ") + ") VALUES (").params(len(cols)).str(")")
	target := map[int]bool{e.pk: true}
	for _, c := range r.conflict {
		target[c] = true
	}
	var sets []string
	if d.Family() == dialect.MySQL {
		s.str(" ON DUPLICATE KEY UPDATE ")
		pk := st.cols[e.pk]
		if e.cols[e.pk].auto {
			// Makes LastInsertId the pk of the row updated, not only of
			// a row inserted.
			sets = append(sets, pk+" = LAST_INSERT_ID("+pk+")")
		}
		for _, c := range cols {
			if !target[c] && !e.cols[c].created && !e.cols[c].version {
				sets = append(sets, st.cols[c]+" = VALUES("+st.cols[c]+")")
			}
		}
		if e.version >= 0 {
			v := st.cols[e.version]
			sets = append(sets, v+" = "+v+" + 1")
		}
		if len(sets) == 0 {
			sets = append(sets, pk+" = "+pk)
		}
		return s.list(sets, ", ").String()
	}
	s.str(" ON CONFLICT (").list(r.pick(r.conflict), ", ").str(") DO UPDATE SET ")
	for _, c := range cols {
		if !target[c] && !e.cols[c].created && !e.cols[c].version {
			sets = append(sets, st.cols[c]+" = EXCLUDED."+st.cols[c])
		}
	}
	if e.version >= 0 {
		v := st.cols[e.version]
		sets = append(sets, v+" = "+st.table+"."+v+" + 1")
	}
	if len(sets) == 0 { // still update, so that RETURNING gives the row
		c := st.cols[r.conflict[0]]
		sets = append(sets, c+" = EXCLUDED."+c)
	}
	return s.list(sets, ", ").str(" RETURNING " + strings.Join(st.cols, ", ")).String()
}

// query is a statement built from clauses, with its arguments. varies
// says that its text changes with the values (an IN list's length, an
// offset), not only with the shape of the clauses.
type query struct {
	sqlText
	args   []any
	varies bool
}

func (q *query) bind(v any) {
	q.args = append(q.args, v)
	q.param()
}

// column looks a column name up; the error names the entity's columns.
func (r *Repository[T, ID]) column(name string) (int, error) {
	if i, ok := r.e.byName[name]; ok {
		return i, nil
	}
	return 0, fmt.Errorf("%w %q: %s maps %s", ErrUnknownColumn, name, r.e.typ, r.e.names())
}

// cond appends the SQL of c.
func (r *Repository[T, ID]) cond(q *query, c *Cond, depth int) error {
	if depth > maxCondDepth {
		return fmt.Errorf("%w: conditions nest deeper than %d", ErrInvalidClause, maxCondDepth)
	}
	switch c.op {
	case opAnd, opOr:
		if len(c.conds) == 0 {
			if c.op == opAnd {
				q.str("1 = 1")
			} else {
				q.str("1 = 0")
			}
			return nil
		}
		sep := " AND "
		if c.op == opOr {
			sep = " OR "
		}
		q.str("(")
		for i := range c.conds {
			if i > 0 {
				q.str(sep)
			}
			if err := r.cond(q, &c.conds[i], depth+1); err != nil {
				return err
			}
		}
		q.str(")")
		return nil
	case opInvalid:
		return fmt.Errorf("%w: empty condition (use Eq, In, And...)", ErrInvalidClause)
	}
	i, err := r.column(c.column)
	if err != nil {
		return err
	}
	if c.op == opIn && len(c.values) == 0 {
		q.str("1 = 0")
		return nil
	}
	if c.op == opIn {
		q.varies = true
	}
	q.str(r.sql.cols[i])
	switch c.op {
	case opEq, opNe:
		switch {
		case c.value == nil && c.op == opEq:
			q.str(" IS NULL")
		case c.value == nil:
			q.str(" IS NOT NULL")
		case c.op == opEq:
			q.str(" = ")
			q.bind(c.value)
		default:
			q.str(" <> ")
			q.bind(c.value)
		}
	case opGt, opGte, opLt, opLte, opLike:
		q.str(compareOps[c.op])
		q.bind(c.value)
	case opLikeEscaped:
		q.str(" LIKE ")
		q.bind(c.value)
		q.str(" ESCAPE '" + string(rune(likeEscape)) + "'")
	case opIn:
		q.str(" IN (")
		for j, v := range c.values {
			if j > 0 {
				q.str(", ")
			}
			q.bind(v)
		}
		q.str(")")
	case opIsNull:
		q.str(" IS NULL")
	case opNotNull:
		q.str(" IS NOT NULL")
	default:
		return fmt.Errorf("%w: unknown operator %d", ErrInvalidClause, c.op)
	}
	return nil
}

var compareOps = [...]string{opGt: " > ", opGte: " >= ", opLt: " < ", opLte: " <= ", opLike: " LIKE "}

// orderTerm is one column of an ORDER BY.
type orderTerm struct {
	col  int
	desc bool
}

// shape is what the clauses of a call ask for, apart from conditions.
type shape struct {
	order         []orderTerm
	limit, offset int // -1: none
	where         bool
	lock          lockMode
}

// where appends " WHERE ..." for the Where clauses, and reads the rest.
func (r *Repository[T, ID]) where(q *query, cs []Clause) (shape, error) {
	sh := shape{limit: -1, offset: -1}
	for i := range cs {
		c := &cs[i]
		switch c.kind {
		case clauseWhere:
			if sh.where {
				q.str(" AND ")
			} else {
				q.str(" WHERE ")
				sh.where = true
			}
			if err := r.cond(q, &c.cond, 0); err != nil {
				return sh, err
			}
		case clauseAll:
		case clauseOrder:
			col, err := r.column(c.column)
			if err != nil {
				return sh, err
			}
			sh.order = append(sh.order, orderTerm{col, c.desc})
		case clauseLimit, clauseOffset:
			if c.n < 0 {
				return sh, fmt.Errorf("%w: negative limit or offset %d", ErrInvalidClause, c.n)
			}
			if c.kind == clauseLimit {
				sh.limit = c.n
			} else {
				sh.offset = c.n
			}
		case clauseLock:
			m := lockMode(c.n)
			if m <= lockNone || int(m) >= len(lockNames) {
				return sh, fmt.Errorf("%w: unknown lock clause", ErrInvalidClause)
			}
			if sh.lock != lockNone {
				return sh, fmt.Errorf("%w: two lock clauses, %s and %s", ErrInvalidClause, lockNames[sh.lock], lockNames[m])
			}
			sh.lock = m
		default:
			return sh, fmt.Errorf("%w: the zero Clause (use Where, OrderBy, Limit, Offset or a lock clause)", ErrInvalidClause)
		}
	}
	if len(q.args) > r.d.MaxPlaceholders() {
		return sh, fmt.Errorf("%w: %d values, more than the %d parameters %s takes in one statement",
			ErrInvalidClause, len(q.args), r.d.MaxPlaceholders(), r.d)
	}
	return sh, nil
}

// orderBy completes the ordering with the pk, unless it is already there.
func (r *Repository[T, ID]) orderBy(order []orderTerm) []orderTerm {
	last := false // the pk's direction follows the last column's
	for _, o := range order {
		if o.col == r.e.pk {
			return order
		}
		last = o.desc
	}
	return append(order, orderTerm{r.e.pk, last})
}

func (r *Repository[T, ID]) writeOrder(q *query, order []orderTerm) {
	q.str(" ORDER BY ")
	for i, o := range order {
		if i > 0 {
			q.str(", ")
		}
		q.str(r.sql.cols[o.col])
		if o.desc {
			q.str(" DESC")
		}
	}
}

// writeLimit appends LIMIT and OFFSET; each database has its own way to
// say "no limit" before an OFFSET.
func (r *Repository[T, ID]) writeLimit(q *query, limit, offset int) {
	if limit >= 0 {
		q.str(" LIMIT ").str(strconv.Itoa(limit))
	} else if offset >= 0 {
		switch r.d.Family() {
		case dialect.MySQL:
			q.str(" LIMIT 18446744073709551615")
		case dialect.SQLite:
			q.str(" LIMIT -1")
		}
	}
	if offset >= 0 {
		q.str(" OFFSET ").str(strconv.Itoa(offset))
		q.varies = true
	}
}

// buildFind builds the SELECT of Find and First.
func (r *Repository[T, ID]) buildFind(cs []Clause, forceLimit int) (*query, shape, error) {
	q := &query{sqlText: sqlText{d: r.d}}
	q.b = make([]byte, 0, len(r.sql.selectAll)+64)
	q.str(r.sql.selectAll)
	sh, err := r.where(q, cs)
	if err != nil {
		return nil, sh, err
	}
	if forceLimit >= 0 {
		sh.limit = forceLimit
	}
	r.writeOrder(q, r.orderBy(sh.order))
	r.writeLimit(q, sh.limit, sh.offset)
	r.writeLock(q, sh.lock)
	return q, sh, nil
}

// writeLock appends the row lock of a lock clause. SQLite has none: the
// scope's writer already excludes other writers. MariaDB 10.11 has no FOR
// SHARE; LOCK IN SHARE MODE reads the same on it and on MySQL 8.
func (r *Repository[T, ID]) writeLock(q *query, lock lockMode) {
	f := r.d.Family()
	switch {
	case lock == lockNone || f == dialect.SQLite:
	case lock == lockShare && f == dialect.MySQL:
		q.str(" LOCK IN SHARE MODE")
	case lock == lockShare:
		q.str(" FOR SHARE")
	case lock == lockSkipLocked:
		q.str(" FOR UPDATE SKIP LOCKED")
	case lock == lockNoWait:
		q.str(" FOR UPDATE NOWAIT")
	default:
		q.str(" FOR UPDATE")
	}
}

// checkLock refuses a lock clause outside a write transaction: outside
// any its lock would end with the statement, and a read-only transaction
// takes no row locks (PostgreSQL refuses them there).
func (r *Repository[T, ID]) checkLock(ctx context.Context, sh shape) error {
	if sh.lock == lockNone || r.m.InWriteTx(ctx) {
		return nil
	}
	if r.m.InTx(ctx) {
		return fmt.Errorf("%w: %s in a read-only transaction (it takes no row locks): read in Manager.Tx", ErrInvalidClause, lockNames[sh.lock])
	}
	return fmt.Errorf("%w: %s outside a transaction (its lock would end at once): read in Manager.Tx", ErrInvalidClause, lockNames[sh.lock])
}

// buildCount builds the SELECT COUNT(*) of Count: ordering, limit and
// offset do not change a count and are left out.
func (r *Repository[T, ID]) buildCount(cs []Clause) (*query, error) {
	q := &query{sqlText: sqlText{d: r.d}}
	q.str(r.sql.count)
	sh, err := r.where(q, cs)
	if err != nil {
		return nil, err
	}
	if sh.lock != lockNone {
		return nil, fmt.Errorf("%w: Count takes no %s", ErrInvalidClause, lockNames[sh.lock])
	}
	return q, nil
}
