package connwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/monitor"
)

// behaviour is one thing an application does with a pool; it notes what
// it saw (results, errors) with note.
type behaviour struct {
	name string
	run  func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any))
}

// errClass says what matters of an error whose text depends on timing.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, driver.ErrBadConn):
		return "bad conn"
	case errors.Is(err, sql.ErrConnDone):
		return "conn done"
	case errors.Is(err, sql.ErrTxDone):
		return "tx done"
	}
	return "error"
}

// querier runs queries: a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readAll reads every result set of a query, noting its columns with
// everything ColumnTypes says of them, and its rows.
func readAll(ctx context.Context, q querier, query string, note func(string, ...any)) {
	rows, err := q.QueryContext(ctx, query)
	note("query: %v", err)
	if err != nil {
		return
	}
	for set := 0; ; set++ {
		cols, err := rows.Columns()
		note("set %d columns: %v %v", set, cols, err)
		types, err := rows.ColumnTypes()
		note("column types: %v", err)
		for _, ct := range types {
			nullable, nok := ct.Nullable()
			length, lok := ct.Length()
			prec, scale, dok := ct.DecimalSize()
			note("column %s: %s scan=%v nullable=%v,%v length=%d,%v decimal=%d,%d,%v",
				ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), nullable, nok, length, lok, prec, scale, dok)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			err := rows.Scan(ptrs...)
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
			note("row: %v %v", vals, err)
		}
		if !rows.NextResultSet() {
			break
		}
	}
	note("rows: %v %v", rows.Err(), rows.Close())
}

// createTyped makes a table of columns of several types, with two rows.
func createTyped(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
	_, err := db.ExecContext(ctx, "CREATE TABLE "+tbl+
		" (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, note TEXT, amount DECIMAL(10,2), flag BOOLEAN, born DATE)")
	note("create: %v", err)
	_, err = db.ExecContext(ctx, db.Rebind("INSERT INTO "+tbl+" (id, name, note, amount, flag, born) VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"),
		1, "a", nil, "12.50", true, "2024-02-29", 2, "b", "x", nil, false, nil)
	note("insert: %v", err)
}

// resultSets is a query of two result sets, where the driver has them.
func resultSets(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) string {
	if db.DriverName() != "mysql" {
		// lib/pq returns each statement's result set; sqlite3 has one.
		return "SELECT 1 AS a, 'x' AS b; SELECT 2 AS c, 3.5 AS d, NULL AS e"
	}
	_, err := db.ExecContext(ctx, "CREATE PROCEDURE p_"+tbl+"() BEGIN SELECT 1 AS a, 'x' AS b; SELECT 2 AS c, 3.5 AS d, NULL AS e; END")
	note("create procedure: %v", err)
	return "CALL p_" + tbl + "()"
}

var behaviours = []behaviour{
	{"rows", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		createTyped(ctx, db, tbl, note)
		readAll(ctx, db, "SELECT id, name, note, amount, flag, born FROM "+tbl+" ORDER BY id", note)
	}},
	{"rows in a transaction", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		createTyped(ctx, db, tbl, note)
		tx, err := db.BeginTx(ctx, nil)
		note("begin: %v", err)
		if err != nil {
			return
		}
		readAll(ctx, tx, "SELECT id, name, note, amount, flag, born FROM "+tbl+" ORDER BY id", note)
		readAll(ctx, tx, "SELECT COUNT(*) AS n, SUM(amount) AS total FROM "+tbl, note)
		// Rows left open when the transaction ends.
		rows, err := tx.QueryContext(ctx, "SELECT id FROM "+tbl+" ORDER BY id")
		note("query left open: %v", err)
		if err == nil {
			note("next: %v", rows.Next())
		}
		note("commit: %v", tx.Commit())
		if err == nil {
			note("next after commit: %v %v", rows.Next(), rows.Err())
		}
	}},
	{"result sets", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		q := resultSets(ctx, db, tbl, note)
		readAll(ctx, db, q, note)
		tx, err := db.BeginTx(ctx, nil)
		note("begin: %v", err)
		if err != nil {
			return
		}
		readAll(ctx, tx, q, note)
		// Rows of several sets closed before the second one is read.
		rows, err := tx.QueryContext(ctx, q)
		note("query: %v", err)
		if err == nil {
			note("next: %v, close: %v", rows.Next(), rows.Close())
			note("next result set after close: %v %v", rows.NextResultSet(), rows.Err())
		}
		note("commit: %v", tx.Commit())
	}},
	{"exec and query", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		_, err := db.ExecContext(ctx, "CREATE TABLE "+tbl+" (id INTEGER PRIMARY KEY, v VARCHAR(20))")
		note("create: %v", err)
		res, err := db.ExecContext(ctx, db.Rebind("INSERT INTO "+tbl+" (id, v) VALUES (?, ?), (?, ?)"), 1, "a", 2, nil)
		note("insert: %v", err)
		if err == nil {
			n, err := res.RowsAffected()
			note("rows affected: %d %v", n, err)
			_, err = res.LastInsertId()
			note("last insert id error: %v", err != nil)
		}
		rows, err := db.QueryContext(ctx, "SELECT id, v FROM "+tbl+" ORDER BY id")
		note("select: %v", err)
		if err == nil {
			types, err := rows.ColumnTypes()
			note("column types: %v", err)
			for _, ct := range types {
				nullable, ok := ct.Nullable()
				note("column %s: %s nullable=%v,%v scan=%v", ct.Name(), ct.DatabaseTypeName(), nullable, ok, ct.ScanType())
			}
			for rows.Next() {
				var id int
				var v sql.NullString
				note("scan: %v %d %v", rows.Scan(&id, &v), id, v)
			}
			note("rows: %v %v", rows.Err(), rows.Close())
		}
	}},
	{"commit and rollback", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		_, _ = db.ExecContext(ctx, "CREATE TABLE "+tbl+" (id INTEGER PRIMARY KEY)")
		for _, commit := range []bool{true, false} {
			tx, err := db.BeginTxx(ctx, nil)
			note("begin: %v", err)
			if err != nil {
				continue
			}
			_, err = tx.ExecContext(ctx, db.Rebind("INSERT INTO "+tbl+" (id) VALUES (?)"), map[bool]int{true: 1, false: 2}[commit])
			note("insert: %v", err)
			if commit {
				note("commit: %v", tx.Commit())
			} else {
				note("rollback: %v", tx.Rollback())
			}
			note("commit twice: %v", tx.Commit())
		}
		var ids []int
		note("ids: %v %v", db.SelectContext(ctx, &ids, "SELECT id FROM "+tbl+" ORDER BY id"), ids)
	}},
	{"read-only and isolation", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		_, _ = db.ExecContext(ctx, "CREATE TABLE "+tbl+" (id INTEGER PRIMARY KEY)")
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		note("begin read-only: %v", err)
		if err == nil {
			_, err = tx.ExecContext(ctx, "INSERT INTO "+tbl+" (id) VALUES (1)")
			note("write in read-only: %v", err)
			note("rollback: %v", tx.Rollback())
		}
		for _, level := range []sql.IsolationLevel{sql.LevelSerializable, sql.LevelSnapshot, sql.LevelLinearizable} {
			tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: level})
			note("begin %s: %v", level, err)
			if err == nil {
				note("rollback: %v", tx.Rollback())
			}
		}
	}},
	{"savepoints", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		_, _ = db.ExecContext(ctx, "CREATE TABLE "+tbl+" (id INTEGER PRIMARY KEY)")
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			note("begin: %v", err)
			return
		}
		for _, q := range []string{
			"INSERT INTO " + tbl + " (id) VALUES (1)", "SAVEPOINT sp1", "INSERT INTO " + tbl + " (id) VALUES (2)",
			"ROLLBACK TO SAVEPOINT sp1", "RELEASE SAVEPOINT sp1", "RELEASE SAVEPOINT sp1",
		} {
			_, err := tx.ExecContext(ctx, q)
			note("%s: %v", q, err)
		}
		// On PostgreSQL the second RELEASE aborted the transaction: the
		// bare driver's COMMIT says so in its words, the wrapper's in its
		// own (TestAbortedPostgres).
		note("commit: %s", errClass(tx.Commit()))
		var n int
		note("count: %v %d", db.GetContext(ctx, &n, "SELECT COUNT(*) FROM "+tbl), n)
	}},
	{"arguments", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		var n int64
		for _, arg := range []any{int64(7), "8", sql.Named("x", 1), struct{}{}, []int{1}, time.Unix(0, 0).UTC(), nil} {
			err := db.QueryRowContext(ctx, db.Rebind("SELECT COUNT(*) FROM (SELECT ? AS a) t"), arg).Scan(&n)
			note("arg %T: %v %d", arg, err, n)
		}
		_, err := db.ExecContext(ctx, db.Rebind("SELECT ?"))
		note("missing arg: %v", errClass(err))
		st, err := db.PreparexContext(ctx, db.Rebind("SELECT ? + 1"))
		note("prepare: %v", err)
		if err == nil {
			for _, arg := range []any{1, "x", struct{}{}} {
				var v sql.NullInt64
				err := st.QueryRowContext(ctx, arg).Scan(&v)
				note("stmt arg %T: %v", arg, errClass(err))
			}
			note("stmt close: %v", st.Close())
		}
	}},
	{"cancellation", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := db.ExecContext(cctx, "SELECT 1")
		note("cancelled before: %s", errClass(err))
		_, err = db.BeginTx(cctx, nil)
		note("begin cancelled: %s", errClass(err))
		slow := map[string]string{
			"postgres": "SELECT pg_sleep(2)",
			"mysql":    "SELECT SLEEP(2)",
			"sqlite3":  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c",
		}[db.DriverName()]
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		var n int
		err = db.QueryRowContext(dctx, slow).Scan(&n)
		note("interrupted: %v", err != nil)
		tx, err := db.BeginTx(dctx, nil)
		note("begin on an ended ctx: %s", errClass(err))
		if err == nil {
			_ = tx.Rollback()
		}
		note("pool still works: %v", db.QueryRowContext(ctx, "SELECT 1").Scan(&n))
	}},
	{"bad connections", func(ctx context.Context, db *sqlx.DB, tbl string, note func(string, ...any)) {
		conn, err := db.Conn(ctx)
		if err != nil {
			note("conn: %v", err)
			return
		}
		note("raw bad conn: %v", conn.Raw(func(any) error { return driver.ErrBadConn }))
		_, err = conn.ExecContext(ctx, "SELECT 1")
		note("exec on it: %v", err)
		note("close: %v", conn.Close())
		if db.DriverName() != "sqlite3" {
			conn, _ := db.Conn(ctx)
			var id int64
			q := map[string]string{"postgres": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}[db.DriverName()]
			note("id: %v", conn.QueryRowContext(ctx, q).Scan(&id))
			kill := map[string]string{"postgres": "SELECT pg_terminate_backend(%d)", "mysql": "KILL %d"}[db.DriverName()]
			_, err := db.ExecContext(ctx, fmt.Sprintf(kill, id))
			note("kill: %v", err)
			_, err = conn.ExecContext(ctx, "SELECT 1")
			note("exec on a killed connection fails: %v", err != nil)
			_ = conn.Close()
		}
		var n int
		note("pool still works: %v", db.QueryRowContext(ctx, "SELECT 1").Scan(&n))
	}},
}

// TestWrappedBehavesAsBare runs every behaviour on the bare driver, on
// the wrapped one with a monitor (that traces), a leak threshold and a
// lifetime, and on the wrapped one with no monitor, as dbfx opens it
// without one; all three must see the same.
func TestWrappedBehavesAsBare(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		tr := newTracer()
		bare := openBare(t, cfg)
		wrapped, _ := openWrapped(t, cfg, connwrap.Options{
			DB: "w", Monitor: tr, SlowQuery: time.Millisecond, LeakThreshold: time.Minute, MaxLifetime: time.Hour,
		})
		plain, _ := openWrapped(t, cfg, connwrap.Options{MaxLifetime: time.Hour})
		for _, b := range behaviours {
			t.Run(b.name, func(t *testing.T) {
				ctx := testContext(t)
				tbl := "t_" + strings.NewReplacer(" ", "_", "-", "_").Replace(b.name)
				see := func(db *sqlx.DB, tbl string) string {
					var out []string
					b.run(ctx, db, tbl, func(format string, args ...any) {
						out = append(out, strings.ReplaceAll(fmt.Sprintf(format, args...), tbl, "T"))
					})
					return strings.Join(out, "\n\t")
				}
				want := see(bare, tbl+"_bare")
				if got := see(wrapped, tbl+"_wrapped"); got != want {
					t.Errorf("wrapped saw:\n\t%s\nbare saw:\n\t%s", got, want)
				}
				if got := see(plain, tbl+"_plain"); got != want {
					t.Errorf("wrapped without a monitor saw:\n\t%s\nbare saw:\n\t%s", got, want)
				}
				if testing.Verbose() {
					t.Logf("saw:\n\t%s", want)
				}
			})
		}
		tr.check(t)
		ok := 0
		for _, e := range tr.queries() {
			if e.Op == monitor.OpQuery && e.Err == nil && e.DB == "w" {
				ok++
			}
		}
		if ok == 0 {
			t.Error("the wrapped pool's statements were not observed")
		}
	})
}
