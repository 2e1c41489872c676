package session

import (
	"database/sql"
	"reflect"
	"sync"

	"github.com/jmoiron/sqlx"
)

// readRows are the result sets read in a transaction since its last
// statement.
//
// An error that ends a result set while it is read (rows.Err, or Scan of
// a Row: a MySQL deadlock met by a SELECT ... FOR UPDATE after its first
// rows, a PostgreSQL error on the nth row) is not returned by the call
// that ran the query, so the scope does not see it there. fn may drop it
// and go on; on MySQL its next statements would then run outside the
// transaction the deadlock rolled back, and be committed. So before every
// further statement of the transaction, and before COMMIT, the scope looks
// at the result sets read since and observes their errors.
type readRows struct {
	mu   sync.Mutex
	list []openRows
}

type openRows struct {
	rows *sql.Rows
	s    *scope // the scope whose query made them
}

// track remembers rows, a result set of a query run in s.
func (s *scope) track(rows *sql.Rows) {
	if s.tx == nil || rows == nil {
		return
	}
	r := &s.tx.read
	r.mu.Lock()
	r.list = append(r.list, openRows{rows, s})
	r.mu.Unlock()
}

// sweep observes the errors the result sets read in t met, and forgets
// those that are closed.
func (t *txn) sweep() {
	r := &t.read
	r.mu.Lock()
	if len(r.list) == 0 {
		r.mu.Unlock()
		return
	}
	var failed []openRows
	var errs []error
	kept := r.list[:0]
	for _, o := range r.list {
		if err := o.rows.Err(); err != nil { // rows that met an error are closed
			failed, errs = append(failed, o), append(errs, err)
			continue
		}
		if _, err := o.rows.Columns(); err == nil { // still open: may yet fail
			kept = append(kept, o)
		}
	}
	clear(r.list[len(kept):])
	r.list = kept
	r.mu.Unlock()
	for i, o := range failed {
		o.s.observe(errs[i])
	}
}

// rowsField is the index in sqlx.Row of its result set, which sqlx does
// not expose; -1 if sqlx changed and it is not there.
var rowsField = func() int {
	f, ok := reflect.TypeOf(sqlx.Row{}).FieldByName("rows")
	if !ok || f.Type != reflect.TypeOf((*sql.Rows)(nil)) {
		return -1
	}
	return f.Index[0]
}()

// rowsOf returns the result set of a Row, so that the error its Scan
// meets can be observed, or nil.
func rowsOf(row *sqlx.Row) *sql.Rows {
	if rowsField < 0 || row == nil {
		return nil
	}
	return (*sql.Rows)(reflect.ValueOf(row).Elem().Field(rowsField).UnsafePointer())
}
