package monitor_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
)

// baseConnector is the driver's own connector for cfg, as dbfx opens it.
func baseConnector(t testing.TB, cfg dbfx.Config) driver.Connector {
	t.Helper()
	var c driver.Connector
	var err error
	switch cfg.Driver {
	case "postgres":
		c, err = pq.NewConnector(cfg.DSN)
	case "mysql":
		var mc *mysql.Config
		if mc, err = mysql.ParseDSN(cfg.DSN); err == nil {
			mc.Logger = quiet{} // connections killed on purpose
			c, err = mysql.NewConnector(mc)
		}
	default:
		c, err = monitor.DSNConnector(&sqlite3.SQLiteDriver{}, cfg.DSN+"?_busy_timeout=5000&_journal_mode=WAL")
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type quiet struct{}

func (quiet) Print(...any) {}

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

var behaviours = []behaviour{
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
		note("commit: %v", tx.Commit())
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

// TestWrappedBehavesAsBare runs every behaviour on the bare driver and on
// the wrapped one (with a monitor, a leak threshold and a lifetime) and
// compares what each saw.
func TestWrappedBehavesAsBare(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		if cfg.Driver == "mysql" {
			cfg.DSN += "?parseTime=true"
		}
		reg := prometheus.NewRegistry()
		prom, err := monitor.NewPrometheus(reg)
		if err != nil {
			t.Fatal(err)
		}
		bare := sqlx.NewDb(sql.OpenDB(baseConnector(t, cfg)), cfg.Driver)
		wrappedConn := monitor.WrapConnector(baseConnector(t, cfg), monitor.ConnectorOptions{
			DB: "w", Monitor: monitor.Multi(prom, newRecorder()), SlowQuery: time.Millisecond,
			LeakThreshold: time.Minute, MaxLifetime: time.Hour,
		})
		if _, ok := wrappedConn.(*monitor.Connector); !ok {
			t.Fatalf("WrapConnector returned %T", wrappedConn)
		}
		wrapped := sqlx.NewDb(sql.OpenDB(wrappedConn), cfg.Driver)
		// Wrapped for the lifetime alone, as dbfx does without a monitor.
		aged := sqlx.NewDb(sql.OpenDB(monitor.WrapConnector(baseConnector(t, cfg),
			monitor.ConnectorOptions{MaxLifetime: time.Hour})), cfg.Driver)
		for _, db := range []*sqlx.DB{bare, wrapped, aged} {
			defer db.Close()
			if cfg.Driver == "sqlite3" {
				db.SetMaxOpenConns(1)
			}
		}
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
				if got := see(aged, tbl+"_aged"); got != want {
					t.Errorf("wrapped without a monitor saw:\n\t%s\nbare saw:\n\t%s", got, want)
				}
			})
		}
		var n int
		if err := wrapped.QueryRowContext(testContext(t), "SELECT 1").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if opCount(t, reg, "w", "query", "ok") == 0 {
			t.Error("the wrapped pool's statements were not observed")
		}
	})
}
