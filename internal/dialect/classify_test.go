package dialect_test

// These tests make each error happen for real on the real database, then
// classify what the driver returned. The PostgreSQL and MariaDB ones skip
// unless ENGINEKIT_TEST_POSTGRES_DSN / ENGINEKIT_TEST_MYSQL_DSN are set (and
// fail when ENGINEKIT_TEST_REQUIRE names the engine); the SQLite ones always
// run.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/testdb"
)

// classString spells a Class out for failure messages.
func classString(c dialect.Class) string {
	if c == 0 {
		return "0"
	}
	var parts []string
	for _, b := range []struct {
		c    dialect.Class
		name string
	}{
		{dialect.Retryable, "Retryable"},
		{dialect.Aborting, "Aborting"},
		{dialect.Unique, "Unique"},
		{dialect.ConnLost, "ConnLost"},
		{dialect.ReadOnly, "ReadOnly"},
		{dialect.Stale, "Stale"},
		{dialect.Locked, "Locked"},
		{dialect.ForeignKey, "ForeignKey"},
		{dialect.NotNull, "NotNull"},
		{dialect.Check, "Check"},
		{dialect.Canceled, "Canceled"},
	} {
		if c&b.c != 0 {
			parts = append(parts, b.name)
			c &^= b.c
		}
	}
	if c != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint16(c)))
	}
	return strings.Join(parts, "|")
}

// checkClass checks that err is an error of exactly class want, and that
// wrapping it does not change that.
func checkClass(t *testing.T, d *dialect.Dialect, err error, want dialect.Class) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one of class %s", classString(want))
	}
	t.Logf("%T %q: want %s", err, err, classString(want))
	if got := d.Classify(err); got != want {
		t.Errorf("%v.Classify(%T %q) = %s, want %s", d, err, err, classString(got), classString(want))
	}
	wrapped := fmt.Errorf("enginekit: %w", err)
	if got := d.Classify(wrapped); got != want {
		t.Errorf("%v.Classify(wrapped %T %q) = %s, want %s", d, err, err, classString(got), classString(want))
	}
	// Classified once (as the connection wrapper does), it keeps its class.
	if got := d.Classify(fmt.Errorf("enginekit: %w", &dialect.Error{Err: err, Class: d.Classify(err)})); got != want {
		t.Errorf("Classify(Error{%T %q}) = %s, want %s", err, err, classString(got), classString(want))
	}
}

// pinned takes one connection from the pool for a session of its own.
func pinned(t *testing.T, ctx context.Context, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("take a connection: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mustExec(t *testing.T, ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func mustBegin(t *testing.T, ctx context.Context, db *sql.DB, opts *sql.TxOptions) *sql.Tx {
	t.Helper()
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

// deadlock runs first1 on tx1 and first2 on tx2, each taking a lock, then
// second1 and second2 at once, each wanting the other's lock. It returns the
// error of the side the database chose as the victim, and fails the test
// unless exactly one side failed. Each side rolls back as soon as its
// statement returns, so the survivor is never left waiting.
func deadlock(t *testing.T, ctx context.Context, tx1, tx2 *sql.Tx, first1, first2, second1, second2 string) error {
	t.Helper()
	mustExec(t, ctx, tx1, first1)
	mustExec(t, ctx, tx2, first2)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, side := range []struct {
		tx *sql.Tx
		q  string
	}{{tx1, second1}, {tx2, second2}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = side.tx.ExecContext(ctx, side.q)
			_ = side.tx.Rollback()
		}()
	}
	wg.Wait()
	switch {
	case errs[0] != nil && errs[1] != nil:
		t.Fatalf("both sides failed: %v; %v", errs[0], errs[1])
	case errs[0] != nil:
		return errs[0]
	case errs[1] != nil:
		return errs[1]
	}
	t.Fatal("no deadlock: both sides succeeded")
	return nil
}

// closedPort returns a port on 127.0.0.1 nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// waitFor polls the server until query returns a row, e.g. until another
// session is seen running a statement. It is bounded by ctx.
func waitFor(t *testing.T, ctx context.Context, db *sql.DB, query string, args ...any) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var one int
		err := db.QueryRowContext(ctx, query, args...).Scan(&one)
		if err == nil {
			return
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("%s: %v", query, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", query, ctx.Err())
		case <-tick.C:
		}
	}
}

// cancelRunning runs query on conn, cancels it once running shows the
// server is executing it, and returns the error the driver gave.
func cancelRunning(t *testing.T, ctx context.Context, db *sql.DB, conn *sql.Conn, query, running string, runningArgs ...any) error {
	t.Helper()
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(qctx, query)
		done <- err
	}()
	waitFor(t, ctx, db, running, runningArgs...)
	cancel()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatalf("%s went on after its context was cancelled", query)
		return nil
	}
}

func TestClassifyNoError(t *testing.T) {
	for _, d := range []*dialect.Dialect{pgDialect, myDialect, liteDialect} {
		if got := d.Classify(nil); got != 0 {
			t.Errorf("%v.Classify(nil) = %s, want 0", d, classString(got))
		}
	}
}

// TestClassifyContext: a statement given up by its caller is not a lost
// connection, nor anything else, whatever the driver did with the
// connection underneath. These are the very values the mysql and sqlite3
// drivers and database/sql return (the engine tests below produce them for
// real, with a server); here they are checked without one.
func TestClassifyContext(t *testing.T) {
	for _, d := range []*dialect.Dialect{pgDialect, myDialect, liteDialect} {
		for _, err := range []error{context.Canceled, context.DeadlineExceeded} {
			checkClass(t, d, err, 0)
		}
	}
}

func pgCode(err error) string {
	var e *pq.Error
	if errors.As(err, &e) {
		return string(e.Code)
	}
	return ""
}

func wantPgCode(t *testing.T, err error, codes ...string) {
	t.Helper()
	got := pgCode(err)
	for _, c := range codes {
		if got == c {
			return
		}
	}
	t.Fatalf("error %v (%T) has SQLSTATE %q, want one of %q", err, err, got, codes)
}

func TestClassifyPostgres(t *testing.T) {
	t.Parallel()
	d := pgDialect
	ctx := testContext(t)
	db := openDB(t, "postgres", testdb.Postgres(t))
	mustExec(t, ctx, db, `CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL)`)
	mustExec(t, ctx, db, `INSERT INTO kv VALUES (1, 0), (2, 0)`)

	t.Run("unique violation 23505", func(t *testing.T) {
		ctx := testContext(t)
		_, err := db.ExecContext(ctx, `INSERT INTO kv VALUES (1, 1)`)
		wantPgCode(t, err, "23505")
		checkClass(t, d, err, dialect.Unique|dialect.Aborting)
	})

	t.Run("constraints 23503 23502 23514", func(t *testing.T) {
		ctx := testContext(t)
		mustExec(t, ctx, db, `CREATE TABLE child (k int PRIMARY KEY, parent int REFERENCES kv (k), n int NOT NULL CHECK (n >= 0))`)
		mustExec(t, ctx, db, `INSERT INTO child VALUES (1, 1, 0)`)
		for _, c := range []struct {
			query string
			code  string
			class dialect.Class
		}{
			{`INSERT INTO child VALUES (2, 99, 0)`, "23503", dialect.ForeignKey}, // no such parent
			{`DELETE FROM kv WHERE k = 1`, "23503", dialect.ForeignKey},          // a parent still referred to
			{`INSERT INTO child VALUES (2, 1, NULL)`, "23502", dialect.NotNull},
			{`INSERT INTO child (k, parent) VALUES (2, 1)`, "23502", dialect.NotNull}, // no value, no default
			{`INSERT INTO child VALUES (2, 1, -1)`, "23514", dialect.Check},
		} {
			_, err := db.ExecContext(ctx, c.query)
			wantPgCode(t, err, c.code)
			checkClass(t, d, err, c.class|dialect.Aborting)
		}
	})

	t.Run("statement timeout 57014", func(t *testing.T) {
		ctx := testContext(t)
		tx := mustBegin(t, ctx, db, nil)
		mustExec(t, ctx, tx, `SET LOCAL statement_timeout = '100ms'`)
		_, err := tx.ExecContext(ctx, `SELECT pg_sleep(10)`)
		wantPgCode(t, err, "57014")
		if !strings.Contains(err.Error(), "statement timeout") {
			t.Errorf("57014 of a statement timeout says %q", err)
		}
		checkClass(t, d, err, dialect.Canceled|dialect.Aborting)
	})

	t.Run("serialization failure 40001", func(t *testing.T) {
		ctx := testContext(t)
		mustExec(t, ctx, db, `CREATE TABLE oncall (name text PRIMARY KEY, on_call bool NOT NULL)`)
		mustExec(t, ctx, db, `INSERT INTO oncall VALUES ('alice', true), ('bob', true)`)
		// Write skew: each transaction checks that two are on call, then
		// takes a different one off. Both cannot commit under SERIALIZABLE.
		// No statement waits for the other transaction, so one goroutine
		// drives both.
		serializable := &sql.TxOptions{Isolation: sql.LevelSerializable}
		tx1 := mustBegin(t, ctx, db, serializable)
		tx2 := mustBegin(t, ctx, db, serializable)
		const count = `SELECT count(*) FROM oncall WHERE on_call`
		for _, tx := range []*sql.Tx{tx1, tx2} {
			var n int
			if err := tx.QueryRowContext(ctx, count).Scan(&n); err != nil || n != 2 {
				t.Fatalf("%s = %d, %v; want 2", count, n, err)
			}
		}
		mustExec(t, ctx, tx1, `UPDATE oncall SET on_call = false WHERE name = 'alice'`)
		_, err := tx2.ExecContext(ctx, `UPDATE oncall SET on_call = false WHERE name = 'bob'`)
		if err := tx1.Commit(); err != nil {
			t.Fatalf("first commit: %v", err)
		}
		if err == nil {
			// The failure usually comes at COMMIT.
			err = tx2.Commit()
		}
		wantPgCode(t, err, "40001")
		checkClass(t, d, err, dialect.Retryable|dialect.Aborting)
	})

	t.Run("deadlock 40P01", func(t *testing.T) {
		ctx := testContext(t)
		tx1 := mustBegin(t, ctx, db, nil)
		tx2 := mustBegin(t, ctx, db, nil)
		err := deadlock(t, ctx, tx1, tx2,
			`UPDATE kv SET v = v + 1 WHERE k = 1`, `UPDATE kv SET v = v + 1 WHERE k = 2`,
			`UPDATE kv SET v = v + 1 WHERE k = 2`, `UPDATE kv SET v = v + 1 WHERE k = 1`)
		wantPgCode(t, err, "40P01")
		checkClass(t, d, err, dialect.Retryable|dialect.Aborting)
	})

	t.Run("read-only transaction 25006", func(t *testing.T) {
		ctx := testContext(t)
		// lib/pq sends BEGIN READ ONLY.
		tx := mustBegin(t, ctx, db, &sql.TxOptions{ReadOnly: true})
		_, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES (3, 0)`)
		wantPgCode(t, err, "25006")
		checkClass(t, d, err, dialect.ReadOnly|dialect.Aborting)
	})

	t.Run("terminated connection", func(t *testing.T) {
		ctx := testContext(t)
		victim := pinned(t, ctx, db)
		var pid int
		if err := victim.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		// The second argument makes the call wait until the backend is gone.
		var ok bool
		if err := db.QueryRowContext(ctx, `SELECT pg_terminate_backend($1, 30000)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
		}
		_, err := victim.ExecContext(ctx, `SELECT 1`)
		checkClass(t, d, err, dialect.ConnLost|dialect.Aborting)
	})

	t.Run("connection refused", func(t *testing.T) {
		checkClass(t, d, refusedPostgres(t), dialect.ConnLost|dialect.Aborting)
	})

	t.Run("commit of a failed transaction", func(t *testing.T) {
		ctx := testContext(t)
		tx := mustBegin(t, ctx, db, nil)
		_, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES (1, 1)`)
		wantPgCode(t, err, "23505")
		// lib/pq rolls back instead and says so.
		err = tx.Commit()
		if !errors.Is(err, pq.ErrInFailedTransaction) {
			t.Fatalf("commit after an error: %v (%T), want pq.ErrInFailedTransaction", err, err)
		}
		checkClass(t, d, err, dialect.Aborting)
	})

	// A statement prepared before a DDL changed its result's columns fails
	// on its next run; so does one the session no longer has (DEALLOCATE
	// ALL, or a pooler in transaction mode). Preparing it again cures both.
	t.Run("stale plan 0A000", func(t *testing.T) {
		ctx := testContext(t)
		mustExec(t, ctx, db, `CREATE TABLE reshaped (k int PRIMARY KEY, v int NOT NULL)`)
		conn := pinned(t, ctx, db)
		st, err := conn.PrepareContext(ctx, `SELECT * FROM reshaped WHERE k = $1`)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		mustExec(t, ctx, conn, `ALTER TABLE reshaped ADD COLUMN w int`)
		_, err = st.ExecContext(ctx, 1)
		wantPgCode(t, err, "0A000")
		checkClass(t, d, err, dialect.Stale|dialect.Aborting)
	})

	t.Run("prepared statement gone 26000", func(t *testing.T) {
		ctx := testContext(t)
		conn := pinned(t, ctx, db)
		st, err := conn.PrepareContext(ctx, `SELECT v FROM kv WHERE k = $1`)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		mustExec(t, ctx, conn, `DEALLOCATE ALL`)
		_, err = st.ExecContext(ctx, 1)
		wantPgCode(t, err, "26000")
		checkClass(t, d, err, dialect.Stale|dialect.Aborting)
	})

	// Other feature_not_supported errors are not stale plans.
	t.Run("feature not supported 0A000", func(t *testing.T) {
		checkClass(t, d, &pq.Error{Code: "0A000", Message: "cached plan must not change result type"}, dialect.Stale|dialect.Aborting)
		checkClass(t, d, &pq.Error{Code: "0A000", Message: "LOCK TABLE is not supported"}, dialect.Aborting)
	})

	// lib/pq stops a statement whose context ends by asking the server to
	// cancel it, and returns the server's query_canceled (57014), not the
	// context's error; then it discards the connection. The caller gave up:
	// enginekit answers with the context's error, and the statement's class
	// says that it was canceled and the transaction is aborted.
	t.Run("cancelled statement", func(t *testing.T) {
		ctx := testContext(t)
		conn := pinned(t, ctx, db)
		var pid int
		if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		err := cancelRunning(t, ctx, db, conn, `SELECT pg_sleep(60)`,
			`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'`, pid)
		wantPgCode(t, err, "57014")
		checkClass(t, d, err, dialect.Canceled|dialect.Aborting)
		if _, err := conn.ExecContext(ctx, `SELECT 1`); !errors.Is(err, driver.ErrBadConn) {
			t.Errorf("next statement after a cancel: %v, want driver.ErrBadConn", err)
		}
	})

	t.Run("statement past its deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testContext(t), 50*time.Millisecond)
		defer cancel()
		_, err := db.ExecContext(ctx, `SELECT pg_sleep(60)`)
		if errors.Is(err, context.DeadlineExceeded) {
			// The deadline passed before the statement was even sent
			// (database/sql checks first): only on a very loaded machine.
			checkClass(t, d, err, 0)
			return
		}
		wantPgCode(t, err, "57014")
		checkClass(t, d, err, dialect.Canceled|dialect.Aborting)
	})
}

// refusedPostgres returns lib/pq's error for a server that refuses the
// connection. It needs no server.
func refusedPostgres(t *testing.T) error {
	t.Helper()
	ctx := testContext(t)
	db := openDB(t, "postgres",
		fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable&connect_timeout=10", closedPort(t)))
	err := db.PingContext(ctx)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("ping a closed port: %v (%T), want ECONNREFUSED", err, err)
	}
	return err
}

// refusedMySQL is refusedPostgres for go-sql-driver/mysql.
func refusedMySQL(t *testing.T) error {
	t.Helper()
	ctx := testContext(t)
	db := openDB(t, "mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/test?timeout=10s", closedPort(t)))
	err := db.PingContext(ctx)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("ping a closed port: %v (%T), want ECONNREFUSED", err, err)
	}
	return err
}

// TestClassifyConnRefused needs no server: nothing listens on the port.
func TestClassifyConnRefused(t *testing.T) {
	checkClass(t, pgDialect, refusedPostgres(t), dialect.ConnLost|dialect.Aborting)
	checkClass(t, myDialect, refusedMySQL(t), dialect.ConnLost|dialect.Aborting)
}

func wantMySQLNumber(t *testing.T, err error, numbers ...uint16) {
	t.Helper()
	var e *mysqldrv.MySQLError
	if errors.As(err, &e) {
		for _, n := range numbers {
			if e.Number == n {
				return
			}
		}
	}
	t.Fatalf("error %v (%T), want MySQL error %v", err, err, numbers)
}

func TestClassifyMySQL(t *testing.T) {
	t.Parallel()
	d := myDialect
	ctx := testContext(t)
	dsn := testdb.MySQL(t)
	db := openDB(t, "mysql", dsn)
	mustExec(t, ctx, db, `CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB`)
	mustExec(t, ctx, db, `INSERT INTO kv VALUES (1, 0), (2, 0)`)

	t.Run("duplicate key 1062", func(t *testing.T) {
		ctx := testContext(t)
		_, err := db.ExecContext(ctx, `INSERT INTO kv VALUES (1, 1)`)
		wantMySQLNumber(t, err, 1062)
		checkClass(t, d, err, dialect.Unique)
	})

	t.Run("constraints 1452 1451 1048 1364 4025", func(t *testing.T) {
		ctx := testContext(t)
		mustExec(t, ctx, db, `CREATE TABLE child (k int PRIMARY KEY, parent int, n int NOT NULL CHECK (n >= 0),
			FOREIGN KEY (parent) REFERENCES kv (k)) ENGINE=InnoDB`)
		mustExec(t, ctx, db, `INSERT INTO child VALUES (1, 1, 0)`)
		for _, c := range []struct {
			query   string
			numbers []uint16
			class   dialect.Class
		}{
			{`INSERT INTO child VALUES (2, 99, 0)`, []uint16{1452}, dialect.ForeignKey}, // no such parent
			{`DELETE FROM kv WHERE k = 1`, []uint16{1451}, dialect.ForeignKey},          // a parent still referred to
			{`INSERT INTO child VALUES (2, 1, NULL)`, []uint16{1048}, dialect.NotNull},
			{`INSERT INTO child (k, parent) VALUES (2, 1)`, []uint16{1364}, dialect.NotNull}, // strict mode: no value, no default
			{`INSERT INTO child VALUES (2, 1, -1)`, []uint16{4025, 3819}, dialect.Check},     // MariaDB, MySQL 8
		} {
			_, err := db.ExecContext(ctx, c.query)
			wantMySQLNumber(t, err, c.numbers...)
			checkClass(t, d, err, c.class)
		}
	})

	// MariaDB's max_statement_time (1969); MySQL 8's max_execution_time
	// is 3024, for SELECT only.
	t.Run("statement timeout 1969", func(t *testing.T) {
		ctx := testContext(t)
		_, err := db.ExecContext(ctx, `SET STATEMENT max_statement_time = 0.1 FOR SELECT SLEEP(10)`)
		wantMySQLNumber(t, err, 1969, 3024)
		checkClass(t, d, err, dialect.Canceled)
	})

	// KILL QUERY from another session (enginekit sends one when a
	// statement's ctx ends, but by then its caller has the ctx's error).
	t.Run("killed query 1317", func(t *testing.T) {
		ctx := testContext(t)
		conn := pinned(t, ctx, db)
		var id int64
		if err := conn.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := conn.ExecContext(ctx, `SELECT SLEEP(60)`)
			done <- err
		}()
		waitFor(t, ctx, db, `SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'`, id)
		mustExec(t, ctx, db, fmt.Sprintf(`KILL QUERY %d`, id))
		err := <-done
		wantMySQLNumber(t, err, 1317)
		checkClass(t, d, err, dialect.Canceled)
	})

	t.Run("deadlock 1213", func(t *testing.T) {
		ctx := testContext(t)
		tx1 := mustBegin(t, ctx, db, nil)
		tx2 := mustBegin(t, ctx, db, nil)
		err := deadlock(t, ctx, tx1, tx2,
			`UPDATE kv SET v = v + 1 WHERE k = 1`, `UPDATE kv SET v = v + 1 WHERE k = 2`,
			`UPDATE kv SET v = v + 1 WHERE k = 2`, `UPDATE kv SET v = v + 1 WHERE k = 1`)
		wantMySQLNumber(t, err, 1213)
		checkClass(t, d, err, dialect.Retryable|dialect.Aborting)
	})

	t.Run("lock wait timeout 1205", func(t *testing.T) {
		ctx := testContext(t)
		holder := mustBegin(t, ctx, db, nil)
		mustExec(t, ctx, holder, `UPDATE kv SET v = v + 1 WHERE k = 1`)

		waiter := pinned(t, ctx, db)
		mustExec(t, ctx, waiter, `SET SESSION innodb_lock_wait_timeout = 1`)
		tx, err := waiter.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		_, err = tx.ExecContext(ctx, `UPDATE kv SET v = v + 1 WHERE k = 1`)
		wantMySQLNumber(t, err, 1205)
		// Only the statement was rolled back; enginekit treats the
		// transaction as lost all the same (see classifyMySQL).
		checkClass(t, d, err, dialect.Retryable|dialect.Aborting|dialect.Locked)
	})

	t.Run("read-only transaction 1792", func(t *testing.T) {
		ctx := testContext(t)
		// The driver sends START TRANSACTION READ ONLY.
		tx := mustBegin(t, ctx, db, &sql.TxOptions{ReadOnly: true})
		_, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES (3, 0)`)
		wantMySQLNumber(t, err, 1792)
		checkClass(t, d, err, dialect.ReadOnly)
	})

	t.Run("killed connection", func(t *testing.T) {
		ctx := testContext(t)
		victim := pinned(t, ctx, db)
		var id int64
		if err := victim.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, db, fmt.Sprintf(`KILL CONNECTION %d`, id))
		_, err := victim.ExecContext(ctx, `SELECT 1`)
		checkClass(t, d, err, dialect.ConnLost|dialect.Aborting)
	})

	t.Run("connection refused", func(t *testing.T) {
		checkClass(t, d, refusedMySQL(t), dialect.ConnLost|dialect.Aborting)
	})

	// The server no longer knows a prepared statement: 1243. It asks for a
	// statement to be prepared again (1615) when its tables changed more
	// than its own re-prepare can follow; that one cannot be made on
	// purpose, so it is classified from the driver's error value.
	t.Run("unknown prepared statement 1243", func(t *testing.T) {
		ctx := testContext(t)
		_, err := db.ExecContext(ctx, `EXECUTE enginekit_nosuch`)
		wantMySQLNumber(t, err, 1243)
		checkClass(t, d, err, dialect.Stale)
		checkClass(t, d, &mysqldrv.MySQLError{Number: 1615, Message: "Prepared statement needs to be re-prepared"}, dialect.Stale)
	})

	// The mysql driver stops a statement whose context ends by closing the
	// connection, and returns the context's error.
	t.Run("cancelled statement", func(t *testing.T) {
		ctx := testContext(t)
		conn := pinned(t, ctx, db)
		var id int64
		if err := conn.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		err := cancelRunning(t, ctx, db, conn, `SELECT SLEEP(60)`,
			`SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'`, id)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled SLEEP: %v (%T), want context.Canceled", err, err)
		}
		checkClass(t, d, err, 0)
	})

	t.Run("statement past its deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testContext(t), 50*time.Millisecond)
		defer cancel()
		_, err := db.ExecContext(ctx, `SELECT SLEEP(60)`)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("SLEEP past its deadline: %v (%T), want context.DeadlineExceeded", err, err)
		}
		checkClass(t, d, err, 0)
	})

	// A read timeout set in the DSN is the network's, not the caller's: the
	// driver logs the i/o timeout, gives the connection up and returns
	// ErrInvalidConn.
	t.Run("read timeout", func(t *testing.T) {
		ctx := testContext(t)
		cfg, err := mysqldrv.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ReadTimeout = 300 * time.Millisecond
		slow := openDB(t, "mysql", cfg.FormatDSN())
		_, err = slow.ExecContext(ctx, `SELECT SLEEP(5)`)
		if !errors.Is(err, mysqldrv.ErrInvalidConn) {
			t.Fatalf("SLEEP past the read timeout: %v (%T), want mysql.ErrInvalidConn", err, err)
		}
		checkClass(t, d, err, dialect.ConnLost|dialect.Aborting)
	})
}

func wantSQLiteCode(t *testing.T, err error, code sqlite3.ErrNo, ext sqlite3.ErrNoExtended) {
	t.Helper()
	var e sqlite3.Error
	if !errors.As(err, &e) || e.Code != code || (ext != 0 && e.ExtendedCode != ext) {
		t.Fatalf("error %v (%T), want SQLite error %d (extended %d)", err, err, code, ext)
	}
}

func TestClassifySQLite(t *testing.T) {
	t.Parallel()
	d := liteDialect
	ctx := testContext(t)
	path := testdb.SQLite(t)
	db := openDB(t, "sqlite3", path)
	mustExec(t, ctx, db, `CREATE TABLE kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL, u TEXT UNIQUE)`)
	mustExec(t, ctx, db, `INSERT INTO kv VALUES (1, 0, 'a'), (2, 0, 'b')`)

	t.Run("unique 2067", func(t *testing.T) {
		ctx := testContext(t)
		_, err := db.ExecContext(ctx, `INSERT INTO kv VALUES (3, 0, 'a')`)
		wantSQLiteCode(t, err, sqlite3.ErrConstraint, sqlite3.ErrConstraintUnique)
		checkClass(t, d, err, dialect.Unique)
	})

	t.Run("primary key 1555", func(t *testing.T) {
		ctx := testContext(t)
		_, err := db.ExecContext(ctx, `INSERT INTO kv VALUES (1, 0, 'c')`)
		wantSQLiteCode(t, err, sqlite3.ErrConstraint, sqlite3.ErrConstraintPrimaryKey)
		checkClass(t, d, err, dialect.Unique)
	})

	t.Run("constraints 787 1299 275", func(t *testing.T) {
		ctx := testContext(t)
		db := openDB(t, "sqlite3", "file:"+path+"?_foreign_keys=1")
		mustExec(t, ctx, db, `CREATE TABLE child (k INTEGER PRIMARY KEY, parent INTEGER REFERENCES kv (k),
			n INTEGER NOT NULL CHECK (n >= 0))`)
		mustExec(t, ctx, db, `INSERT INTO child VALUES (1, 1, 0)`)
		for _, c := range []struct {
			query string
			ext   sqlite3.ErrNoExtended
			class dialect.Class
		}{
			{`INSERT INTO child VALUES (2, 99, 0)`, sqlite3.ErrConstraintForeignKey, dialect.ForeignKey}, // no such parent
			{`DELETE FROM kv WHERE k = 1`, sqlite3.ErrConstraintForeignKey, dialect.ForeignKey},          // a parent still referred to
			{`INSERT INTO child VALUES (2, 1, NULL)`, sqlite3.ErrConstraintNotNull, dialect.NotNull},
			{`INSERT INTO child (k, parent) VALUES (2, 1)`, sqlite3.ErrConstraintNotNull, dialect.NotNull},
			{`INSERT INTO child VALUES (2, 1, -1)`, sqlite3.ErrConstraintCheck, dialect.Check},
		} {
			_, err := db.ExecContext(ctx, c.query)
			wantSQLiteCode(t, err, sqlite3.ErrConstraint, c.ext)
			checkClass(t, d, err, c.class)
		}
	})

	// go-sqlite3 interrupts a statement whose ctx ends and returns the
	// ctx's error (see "statement past its deadline"): SQLITE_INTERRUPT
	// reaches a caller only from an interrupt of another kind.
	t.Run("interrupt 9", func(t *testing.T) {
		checkClass(t, d, sqlite3.Error{Code: sqlite3.ErrInterrupt}, dialect.Canceled)
	})

	t.Run("busy 5", func(t *testing.T) {
		ctx := testContext(t)
		holder := pinned(t, ctx, db)
		mustExec(t, ctx, holder, `BEGIN IMMEDIATE`)
		defer func() { _, _ = holder.ExecContext(ctx, `ROLLBACK`) }()

		other := openDB(t, "sqlite3", "file:"+path+"?_busy_timeout=0")
		_, err := other.ExecContext(ctx, `UPDATE kv SET v = v + 1 WHERE k = 1`)
		wantSQLiteCode(t, err, sqlite3.ErrBusy, 0)
		checkClass(t, d, err, dialect.Retryable|dialect.Aborting)
	})

	t.Run("busy snapshot 517", func(t *testing.T) {
		ctx := testContext(t)
		wal := testdb.SQLite(t)
		db := openDB(t, "sqlite3", "file:"+wal+"?_journal_mode=WAL")
		mustExec(t, ctx, db, `CREATE TABLE kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)`)
		mustExec(t, ctx, db, `INSERT INTO kv VALUES (1, 0)`)
		// A deferred transaction reads, another connection commits a
		// write, then the first tries to write from its stale snapshot.
		reader := mustBegin(t, ctx, db, nil)
		var v int
		if err := reader.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = 1`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, db, `UPDATE kv SET v = v + 1 WHERE k = 1`)
		_, err := reader.ExecContext(ctx, `UPDATE kv SET v = v + 1 WHERE k = 1`)
		wantSQLiteCode(t, err, sqlite3.ErrBusy, sqlite3.ErrBusySnapshot)
		checkClass(t, d, err, dialect.Retryable|dialect.Aborting)
	})

	t.Run("query_only connection", func(t *testing.T) {
		ctx := testContext(t)
		ro := openDB(t, "sqlite3", "file:"+path+"?_query_only=1")
		var n int
		if err := ro.QueryRowContext(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil {
			t.Fatalf("read on a query_only connection: %v", err)
		}
		_, err := ro.ExecContext(ctx, `INSERT INTO kv VALUES (4, 0, 'd')`)
		wantSQLiteCode(t, err, sqlite3.ErrReadonly, 0)
		checkClass(t, d, err, dialect.ReadOnly)
	})

	t.Run("statement past its deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testContext(t), 50*time.Millisecond)
		defer cancel()
		// Counts for ever: only the interrupt on the deadline stops it.
		_, err := db.ExecContext(ctx, `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT max(n) FROM c`)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("endless query past its deadline: %v (%T), want context.DeadlineExceeded", err, err)
		}
		checkClass(t, d, err, 0)
	})
}
