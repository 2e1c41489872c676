package repo

import "reflect"

// Cond is a condition on an entity's columns, made by Eq, In, And and the
// other constructors. Columns are names of the entity's columns, checked
// when the statement is built: an unknown one fails with ErrUnknownColumn
// before anything is sent. Values are always bound as parameters, never
// written into the SQL text. The zero Cond is invalid.
type Cond struct {
	op     condOp
	column string
	value  any
	values []any
	conds  []Cond
}

type condOp uint8

const (
	opInvalid condOp = iota
	opEq
	opNe
	opGt
	opGte
	opLt
	opLte
	opLike
	opLikeEscaped // Contains, HasPrefix, HasSuffix: LIKE ... ESCAPE '!'
	opIn
	opIsNull
	opNotNull
	opAnd
	opOr
)

// Eq is column = v; Eq(column, nil) is column IS NULL.
func Eq(column string, v any) Cond { return Cond{op: opEq, column: column, value: v} }

// Ne is column <> v; Ne(column, nil) is column IS NOT NULL.
func Ne(column string, v any) Cond { return Cond{op: opNe, column: column, value: v} }

// Gt is column > v.
func Gt(column string, v any) Cond { return Cond{op: opGt, column: column, value: v} }

// Gte is column >= v.
func Gte(column string, v any) Cond { return Cond{op: opGte, column: column, value: v} }

// Lt is column < v.
func Lt(column string, v any) Cond { return Cond{op: opLt, column: column, value: v} }

// Lte is column <= v.
func Lte(column string, v any) Cond { return Cond{op: opLte, column: column, value: v} }

// Like is column LIKE pattern, the pattern bound as a parameter. Case
// sensitivity follows the database (and the column's collation).
func Like(column string, pattern any) Cond { return Cond{op: opLike, column: column, value: pattern} }

// Contains holds when column's value contains s, every character of s
// taken literally: it is column LIKE '%s%' with the %, _ and ! of s
// escaped and an explicit ESCAPE '!', which reads the same on PostgreSQL,
// MySQL/MariaDB (whatever its SQL mode) and SQLite. Use it, HasPrefix and
// HasSuffix for a search string from user input, where Like would take
// its % and _ as wildcards. With s empty it holds for every value but
// NULL. As with Like, the column is a text column, and case (and accent)
// sensitivity follow the database: PostgreSQL's LIKE is case-sensitive,
// SQLite's ignores the case of ASCII letters only, MySQL's and MariaDB's
// follow the column's collation (the default utf8mb4 ones ignore case and
// most accents).
func Contains(column, s string) Cond {
	return Cond{op: opLikeEscaped, column: column, value: "%" + escapeLike(s) + "%"}
}

// HasPrefix holds when column's value starts with s, taken literally: see
// Contains.
func HasPrefix(column, s string) Cond {
	return Cond{op: opLikeEscaped, column: column, value: escapeLike(s) + "%"}
}

// HasSuffix holds when column's value ends with s, taken literally: see
// Contains.
func HasSuffix(column, s string) Cond {
	return Cond{op: opLikeEscaped, column: column, value: "%" + escapeLike(s)}
}

// likeEscape is the escape character of Contains, HasPrefix and
// HasSuffix. Not the backslash: SQLite has no default escape character,
// and MySQL reads a backslash in a string according to its SQL mode.
const likeEscape = '!'

// escapeLike escapes the wildcards of LIKE (% and _) and the escape
// character itself.
func escapeLike(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c == '_' || c == likeEscape {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c == '_' || c == likeEscape {
			b = append(b, likeEscape)
		}
		b = append(b, s[i])
	}
	return string(b)
}

// In is column IN (vs...). With no values it matches no row. A single
// slice value stands for its elements, so In("id", ids) works for an ids
// of any slice type ([]byte excepted: it is one value).
func In(column string, vs ...any) Cond {
	if len(vs) == 1 {
		vs = spread(vs[0], vs)
	}
	return Cond{op: opIn, column: column, values: vs}
}

// spread returns the elements of v when it is a slice (but not []byte nor
// a driver.Valuer), else vs.
func spread(v any, vs []any) []any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 || rv.Type().Implements(valuerType) {
		return vs
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out
}

// IsNull is column IS NULL.
func IsNull(column string) Cond { return Cond{op: opIsNull, column: column} }

// NotNull is column IS NOT NULL.
func NotNull(column string) Cond { return Cond{op: opNotNull, column: column} }

// And holds when every one of cs does; with none it always holds.
func And(cs ...Cond) Cond { return Cond{op: opAnd, conds: cs} }

// vacuous reports whether c holds for every row without looking at one:
// an And of nothing, or of vacuous conditions only.
func (c *Cond) vacuous() bool {
	if c.op != opAnd {
		return false
	}
	for i := range c.conds {
		if !c.conds[i].vacuous() {
			return false
		}
	}
	return true
}

// Or holds when one of cs does; with none it never holds.
func Or(cs ...Cond) Cond { return Cond{op: opOr, conds: cs} }

// Clause shapes a query: Where, OrderBy, Limit, Offset and the lock
// clauses ForUpdate, ForUpdateSkipLocked, ForUpdateNoWait and ForShare.
type Clause struct {
	kind   clauseKind
	cond   Cond
	column string
	desc   bool
	n      int
}

type clauseKind uint8

const (
	clauseInvalid clauseKind = iota
	clauseWhere
	clauseOrder
	clauseLimit
	clauseOffset
	clauseLock
	clauseAll
)

// Where keeps the rows for which c holds. Several Where clauses must all
// hold.
func Where(c Cond) Clause { return Clause{kind: clauseWhere, cond: c} }

// AllRows selects every row: the explicit consent UpdateWhere and
// DeleteWhere need to write a whole table, which they refuse when no
// condition is given (or only conditions that hold for every row, such as
// an empty And, often a filter list that came out empty). Elsewhere it
// adds nothing: a read without Where clauses reads every row.
func AllRows() Clause { return Clause{kind: clauseAll} }

// OrderBy sorts by column, descending when desc. Several OrderBy clauses
// sort by each in turn. The primary key always ends the ordering, in the
// direction of the last OrderBy, so that results (and pages) are
// deterministic; without OrderBy rows come in ascending primary key order.
func OrderBy(column string, desc bool) Clause {
	return Clause{kind: clauseOrder, column: column, desc: desc}
}

// Limit returns at most n rows (n >= 0). The last Limit wins.
func Limit(n int) Clause { return Clause{kind: clauseLimit, n: n} }

// Offset skips the first n rows (n >= 0). The last Offset wins. Prefer
// Page for paging through large results: an offset makes the database
// read and discard the rows it skips.
func Offset(n int) Clause { return Clause{kind: clauseOffset, n: n} }

// ForUpdate locks the rows a read returns until the transaction ends, so
// that a read-then-write in a transaction loses no concurrent update: the
// rows are read as they are now (not as the transaction's snapshot saw
// them) and other writers wait for the commit. It is SELECT ... FOR UPDATE
// on PostgreSQL and MySQL/MariaDB; on SQLite it adds nothing to the SQL,
// since the writer of a write scope already excludes every other writer.
//
// Find, First and Page take it; only inside a transaction (Manager.Tx),
// else it is ErrInvalidClause: a lock that ends with its statement
// protects nothing. Count, Exists, UpdateWhere and DeleteWhere refuse it
// with ErrInvalidClause, and so does a second lock clause in one call. In a
// read-only scope PostgreSQL refuses it too.
func ForUpdate() Clause { return Clause{kind: clauseLock, n: int(lockUpdate)} }

// ForUpdateSkipLocked is ForUpdate that leaves out the rows another
// transaction holds locked instead of waiting for them: with Limit, "take
// the first free row" of a job queue, each worker getting a different one.
// It is FOR UPDATE SKIP LOCKED on PostgreSQL, MySQL 8 and MariaDB 10.6+;
// on SQLite it adds nothing, and there is nothing to skip: a write scope
// excludes every other writer, so no row is ever locked by another
// transaction when it reads. Same rules as ForUpdate.
func ForUpdateSkipLocked() Clause { return Clause{kind: clauseLock, n: int(lockSkipLocked)} }

// ForUpdateNoWait is ForUpdate that fails at once, with an error that
// matches ErrLocked, when a row it would lock is held by another
// transaction, instead of waiting. It is FOR UPDATE NOWAIT on PostgreSQL,
// MySQL 8 and MariaDB 10.6+. The failure ends the transaction on
// PostgreSQL (as every error does) and, as enginekit treats MariaDB's
// error (1205, a lock wait timeout), on MariaDB too; on MariaDB the
// transaction is retried by Manager.Tx like any lock wait timeout. On
// SQLite it adds nothing and never fails so: the write scope serialises
// writers, so no other transaction holds a row when it reads. Same rules
// as ForUpdate.
func ForUpdateNoWait() Clause { return Clause{kind: clauseLock, n: int(lockNoWait)} }

// ForShare locks the rows a read returns against writers until the
// transaction ends, letting other transactions read and share-lock them:
// the rows cannot change under the transaction, though it will not write
// them. It is FOR SHARE on PostgreSQL and LOCK IN SHARE MODE on MySQL and
// MariaDB (MariaDB 10.11 has no FOR SHARE; MySQL 8 takes both). On SQLite
// it adds nothing: the write scope already excludes other writers. Same
// rules as ForUpdate.
func ForShare() Clause { return Clause{kind: clauseLock, n: int(lockShare)} }

// lockMode is the row lock a read asks for.
type lockMode uint8

const (
	lockNone lockMode = iota
	lockUpdate
	lockSkipLocked
	lockNoWait
	lockShare
)

var lockNames = [...]string{lockUpdate: "ForUpdate", lockSkipLocked: "ForUpdateSkipLocked", lockNoWait: "ForUpdateNoWait", lockShare: "ForShare"}

// Assignment is one column set by UpdateWhere, made by Assign or Incr.
type Assignment struct {
	column string
	value  any
	incr   bool
}

// Assign sets column to value: SET column = value, value bound as a
// parameter.
func Assign(column string, value any) Assignment { return Assignment{column: column, value: value} }

// Incr adds delta to column: SET column = column + delta, computed by the
// database, so that concurrent increments all count. A negative delta
// subtracts.
func Incr(column string, delta any) Assignment {
	return Assignment{column: column, value: delta, incr: true}
}
