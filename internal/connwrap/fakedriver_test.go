package connwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/internal/connwrap"
)

// fakeLog records the driver calls database/sql makes.
type fakeLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *fakeLog) add(format string, args ...any) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.calls = append(l.calls, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// fakeConnector opens minimal connections (the required methods only),
// legacy ones (with the legacy Execer and Queryer too) or full ones
// (every optional interface).
type fakeConnector struct {
	log    *fakeLog
	full   bool
	legacy bool
	quiet  bool // log nothing: for benchmarks
}

func (c *fakeConnector) Connect(context.Context) (driver.Conn, error) {
	c.log.add("connect")
	m := &minConn{log: c.log}
	if c.quiet {
		m.log = nil
	}
	switch {
	case c.full:
		return &fullConn{m}, nil
	case c.legacy:
		return &legacyConn{m}, nil
	}
	return m, nil
}
func (c *fakeConnector) Driver() driver.Driver { return nil }

type minConn struct{ log *fakeLog }

func (c *minConn) Prepare(q string) (driver.Stmt, error) {
	c.log.add("prepare %s", q)
	return &minStmt{log: c.log, q: q}, nil
}
func (c *minConn) Close() error { c.log.add("close"); return nil }
func (c *minConn) Begin() (driver.Tx, error) {
	c.log.add("begin")
	return fakeTx{c.log}, nil
}

type legacyConn struct{ *minConn }

func (c *legacyConn) Exec(q string, args []driver.Value) (driver.Result, error) {
	c.log.add("exec %s %v", q, args)
	if strings.Contains(q, "skip") {
		return nil, driver.ErrSkip
	}
	return driver.RowsAffected(4), nil
}
func (c *legacyConn) Query(q string, args []driver.Value) (driver.Rows, error) {
	c.log.add("query %s %v", q, args)
	return &fakeRows{}, nil
}

type fullConn struct{ *minConn }

func (c *fullConn) PrepareContext(_ context.Context, q string) (driver.Stmt, error) {
	c.log.add("prepareContext %s", q)
	return &fullStmt{&minStmt{log: c.log, q: q}}, nil
}
func (c *fullConn) BeginTx(_ context.Context, o driver.TxOptions) (driver.Tx, error) {
	c.log.add("beginTx %d %v", o.Isolation, o.ReadOnly)
	return fakeTx{c.log}, nil
}
func (c *fullConn) ExecContext(_ context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.log.add("execContext %s %v", q, args)
	if strings.Contains(q, "skip") {
		return nil, driver.ErrSkip
	}
	return driver.RowsAffected(1), nil
}
func (c *fullConn) QueryContext(_ context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.log.add("queryContext %s %v", q, args)
	if c.log == nil { // quiet
		return &fakeRows{}, nil
	}
	return &fullRows{fakeRows: &fakeRows{}, log: c.log, sets: 2}, nil
}
func (c *fullConn) Ping(context.Context) error { c.log.add("ping"); return nil }
func (c *fullConn) ResetSession(context.Context) error {
	c.log.add("resetSession")
	return nil
}
func (c *fullConn) IsValid() bool { c.log.add("isValid"); return true }
func (c *fullConn) CheckNamedValue(nv *driver.NamedValue) error {
	c.log.add("conn.checkNamedValue %T", nv.Value)
	if _, ok := nv.Value.(int64); ok {
		return nil
	}
	return driver.ErrSkip
}

type minStmt struct {
	log *fakeLog
	q   string
}

func (s *minStmt) Close() error { s.log.add("stmt.close"); return nil }
func (s *minStmt) NumInput() int {
	if strings.Contains(s.q, "one arg") {
		return 1
	}
	return -1
}
func (s *minStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.log.add("stmt.exec %v", args)
	return driver.RowsAffected(2), nil
}
func (s *minStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.log.add("stmt.query %v", args)
	return &fakeRows{}, nil
}

type fullStmt struct{ *minStmt }

func (s *fullStmt) ExecContext(_ context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.log.add("stmt.execContext %v", args)
	return driver.RowsAffected(3), nil
}
func (s *fullStmt) QueryContext(_ context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.log.add("stmt.queryContext %v", args)
	return &fullRows{fakeRows: &fakeRows{}, log: s.log, sets: 2}, nil
}
func (s *fullStmt) ColumnConverter(int) driver.ValueConverter {
	s.log.add("stmt.columnConverter")
	return driver.DefaultParameterConverter
}

type fakeTx struct{ log *fakeLog }

func (t fakeTx) Commit() error   { t.log.add("commit"); return nil }
func (t fakeTx) Rollback() error { t.log.add("rollback"); return nil }

// fakeRows has one row of one column, and none of the optional
// interfaces of driver.Rows.
type fakeRows struct{ done bool }

func (r *fakeRows) Columns() []string { return []string{"n"} }
func (r *fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(7)
	return nil
}

// fullRows has every optional interface of driver.Rows, with answers
// that differ from database/sql's defaults, and after its first result set
// sets more, of a row each.
type fullRows struct {
	*fakeRows
	log  *fakeLog
	sets int // result sets left after this one
}

func (r *fullRows) HasNextResultSet() bool {
	r.log.add("rows.hasNextResultSet")
	return r.sets > 0
}
func (r *fullRows) NextResultSet() error {
	r.log.add("rows.nextResultSet")
	if r.sets == 0 {
		return io.EOF
	}
	r.sets--
	r.done = false
	return nil
}
func (r *fullRows) ColumnTypeScanType(int) reflect.Type {
	r.log.add("rows.scanType")
	return reflect.TypeFor[int32]()
}
func (r *fullRows) ColumnTypeDatabaseTypeName(int) string {
	r.log.add("rows.databaseTypeName")
	return "INT4"
}
func (r *fullRows) ColumnTypeLength(int) (int64, bool) {
	r.log.add("rows.length")
	return 4, true
}
func (r *fullRows) ColumnTypeNullable(int) (bool, bool) {
	r.log.add("rows.nullable")
	return true, true
}
func (r *fullRows) ColumnTypePrecisionScale(int) (int64, int64, bool) {
	r.log.add("rows.precisionScale")
	return 10, 2, true
}

// fakeScenario uses db as an application would and logs what it saw.
func fakeScenario(t *testing.T, db *sql.DB, log *fakeLog) []string {
	ctx := context.Background()
	var out []string
	note := func(what string, err error) {
		log.add("-- %s: %v", what, err)
	}
	_, err := db.ExecContext(ctx, "exec", 1, "two")
	note("exec with args", err)
	_, err = db.ExecContext(ctx, "skip", 1)
	note("exec the driver skips", err)
	_, err = db.ExecContext(ctx, "skip one arg", 1, 2)
	note("exec the driver skips, with an argument too many", err)
	_, err = db.ExecContext(ctx, "named", sql.Named("a", 1))
	note("exec with a named arg", err)
	_, err = db.ExecContext(ctx, "bad arg", struct{}{})
	note("exec with an unsupported arg", err)
	var n int
	err = db.QueryRowContext(ctx, "query", 1).Scan(&n)
	note(fmt.Sprintf("query %d", n), err)
	st, err := db.PrepareContext(ctx, "stmt")
	note("prepare", err)
	if err == nil {
		_, err = st.ExecContext(ctx, 5, "x")
		note("stmt exec", err)
		err = st.QueryRowContext(ctx, 6).Scan(&n)
		note("stmt query", err)
		note("stmt close", st.Close())
	}
	for _, o := range []*sql.TxOptions{{ReadOnly: true}, {Isolation: sql.LevelSerializable}} {
		tx, err := db.BeginTx(ctx, o)
		note(fmt.Sprintf("begin %+v", *o), err)
		if err == nil {
			note("rollback", tx.Rollback())
		}
	}
	readRows(ctx, db, note)
	tx, err := db.BeginTx(ctx, nil)
	note("begin", err)
	if err == nil {
		_, err = tx.ExecContext(ctx, "in tx")
		note("exec in tx", err)
		readRows(ctx, tx, note) // rows read in a transaction are wrapped
		note("commit", tx.Commit())
	}
	cctx, cancel := context.WithCancel(ctx)
	tx, err = db.BeginTx(cctx, nil)
	note("begin to cancel", err)
	cancel()
	if err == nil {
		failed := tx.Commit() != nil
		// The rollback runs on database/sql's goroutine: the ping waits
		// for the only connection, so for it to end.
		note("ping", db.PingContext(ctx))
		note("commit after cancel is an error", errors.New(fmt.Sprint(failed)))
	}
	conn, err := db.Conn(ctx)
	note("conn", err)
	if err == nil {
		note("raw bad conn", conn.Raw(func(any) error { return driver.ErrBadConn }))
		_, err = conn.ExecContext(ctx, "after bad conn")
		note("exec after bad conn", err)
		note("conn close", conn.Close())
	}
	note("db close", db.Close())
	log.mu.Lock()
	out = append(out, log.calls...)
	log.mu.Unlock()
	return out
}

// readRows reads every result set of a query, with its column types.
func readRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, note func(string, error)) {
	rows, err := q.QueryContext(ctx, "rows", 1)
	note("query rows", err)
	if err != nil {
		return
	}
	for set := 0; ; set++ {
		types, err := rows.ColumnTypes()
		note("column types", err)
		for _, ct := range types {
			nullable, nok := ct.Nullable()
			length, lok := ct.Length()
			p, s, pok := ct.DecimalSize()
			note(fmt.Sprintf("column %s: %s scan=%v nullable=%v,%v length=%d,%v decimal=%d,%d,%v",
				ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), nullable, nok, length, lok, p, s, pok), nil)
		}
		for rows.Next() {
			var n int
			err := rows.Scan(&n)
			note(fmt.Sprintf("set %d row %d", set, n), err)
		}
		if !rows.NextResultSet() {
			break
		}
	}
	note("rows err", rows.Err())
	note("rows close", rows.Close())
}

// TestWrapperForwardsLikeTheDriver runs one scenario on a fake driver bare
// and wrapped: database/sql must make the same driver calls and return the
// same results and errors, whether the driver has every optional interface
// or none.
func TestWrapperForwardsLikeTheDriver(t *testing.T) {
	for _, kind := range []string{"min", "legacy", "full"} {
		for _, watched := range []bool{true, false} {
			t.Run(fmt.Sprintf("conn=%s/monitor=%v", kind, watched), func(t *testing.T) {
				full, legacy := kind == "full", kind == "legacy"
				bareLog, wrapLog := &fakeLog{}, &fakeLog{}
				bare := sql.OpenDB(&fakeConnector{log: bareLog, full: full, legacy: legacy})
				tr := newTracer()
				o := connwrap.Options{DB: "fake", LeakThreshold: time.Hour, MaxLifetime: time.Hour, SlowQuery: time.Hour}
				if watched {
					o.Monitor = tr
				}
				wrapped := sql.OpenDB(connwrap.Wrap(&fakeConnector{log: wrapLog, full: full, legacy: legacy}, o))
				bare.SetMaxOpenConns(1)
				wrapped.SetMaxOpenConns(1)
				want := fakeScenario(t, bare, bareLog)
				got := fakeScenario(t, wrapped, wrapLog)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("wrapped:\n\t%s\nbare:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
				}
				qs := tr.queries()
				if watched && len(qs) == 0 {
					t.Error("the monitor saw no statement")
				}
				for _, e := range qs {
					if e.Err == driver.ErrSkip { //nolint:errorlint // the exact value
						t.Errorf("the monitor saw a skipped statement: %+v", e)
					}
				}
				tr.check(t)
			})
		}
	}
}
