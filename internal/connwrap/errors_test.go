package connwrap_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/internal/dialect"
)

// driverCode is the code of the driver's own error inside err (found with
// errors.As), "" when there is none.
func driverCode(err error) string {
	var pe *pq.Error
	var me *mysql.MySQLError
	var se sqlite3.Error
	switch {
	case errors.As(err, &pe):
		return string(pe.Code)
	case errors.As(err, &me):
		return strconv.Itoa(int(me.Number))
	case errors.As(err, &se):
		return strconv.Itoa(int(se.ExtendedCode))
	}
	return ""
}

// tagged returns the class err carries as a *dialect.Error, failing the
// test when it is none.
func tagged(t *testing.T, what string, err error) dialect.Class {
	t.Helper()
	var de *dialect.Error
	if !errors.As(err, &de) {
		t.Errorf("%s: %T %v is not a *dialect.Error", what, err, err)
		return 0
	}
	return de.Class
}

// count is the number of rows of table, read on db.
func count(t *testing.T, db *sqlx.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(testContext(t), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func mustExec(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(testContext(t), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestDriverErrorsTagged: a driver error of a class the dialect knows
// comes back as a *dialect.Error of that class, on every path a statement
// takes (the pool, a prepared statement, a transaction), with the
// driver's text, and errors.As still finds the driver's own error inside.
// An error the dialect does not know comes back as the driver returned it.
// A unique violation does not abort a transaction on MySQL and SQLite: it
// goes on and commits.
func TestDriverErrorsTagged(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		wantCode := map[string]string{"postgres": "23505", "mysql": "1062", "sqlite3": "2067"}[cfg.Driver]
		bare := openBare(t, cfg)
		mustExec(t, bare, "CREATE TABLE u (id INTEGER PRIMARY KEY, email VARCHAR(50) NOT NULL UNIQUE)")
		mustExec(t, bare, "INSERT INTO u (id, email) VALUES (1, 'a@x')")
		db, _ := openWrapped(t, cfg, connwrap.Options{DB: "tags", Monitor: newRecorder()})
		ctx := testContext(t)
		insert := db.Rebind("INSERT INTO u (id, email) VALUES (?, ?)")
		checkDup := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Fatalf("%s: a duplicate email was inserted", what)
			}
			c := tagged(t, what, err)
			if !c.Has(dialect.Unique) || c.Has(dialect.Retryable) {
				t.Errorf("%s: class %b, want Unique and not Retryable", what, c)
			}
			if got := driverCode(err); got != wantCode {
				t.Errorf("%s: driver code %q, want %q (%v)", what, got, wantCode, err)
			}
			var de *dialect.Error
			if errors.As(err, &de) && err.Error() != de.Err.Error() {
				t.Errorf("%s: text %q, the driver's %q", what, err, de.Err)
			}
			if got := dialectOf(t, cfg).Classify(err); !got.Has(dialect.Unique) {
				t.Errorf("%s: the dialect classifies it %b", what, got)
			}
		}
		_, err := db.ExecContext(ctx, insert, 2, "a@x")
		checkDup("pool", err)
		st, err := db.PrepareContext(ctx, insert)
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.ExecContext(ctx, 3, "a@x")
		checkDup("prepared", err)
		st.Close()
		_, err = db.ExecContext(ctx, "INSERT INTO u (id, email) VALUES (4, 'a@x')")
		checkDup("no arguments", err)

		// An error the dialect does not know: PostgreSQL's abort the
		// transaction, so each is known there.
		_, err = db.ExecContext(ctx, "SELECT nothing FROM u")
		var de *dialect.Error
		if err == nil {
			t.Fatal("a statement naming a missing column succeeded")
		}
		if got, want := errors.As(err, &de), cfg.Driver == "postgres"; got != want {
			t.Errorf("a missing column's error %T %v: tagged %v, want %v", err, err, got, want)
		}
		if driverCode(err) == "" {
			t.Errorf("a missing column's error %T %v: the driver's error is not inside", err, err)
		}

		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.ExecContext(ctx, insert, 5, "a@x")
		checkDup("in a transaction", err)
		c := tagged(t, "in a transaction", err)
		if c.Has(dialect.Aborting) != (cfg.Driver == "postgres") {
			t.Errorf("a unique violation's class %b: Aborting %v, want %v", c, c.Has(dialect.Aborting), cfg.Driver == "postgres")
		}
		if cfg.Driver == "postgres" {
			_ = tx.Rollback()
			return // TestAbortedPostgres goes on from here
		}
		if _, err := tx.ExecContext(ctx, insert, 6, "b@x"); err != nil {
			t.Errorf("a statement after a unique violation: %v", err)
		}
		if err := tx.Commit(); err != nil {
			t.Errorf("commit after a unique violation: %v", err)
		}
		if n := count(t, bare, "u"); n != 2 {
			t.Errorf("%d rows after the commit, want 2", n)
		}
	})
}

// checkRefused: a statement sent after an aborting error is refused with
// that error, and never reaches the database (whose own error would be
// another).
func checkRefused(t *testing.T, tx *sql.Tx, query string, cause error) {
	t.Helper()
	ctx := testContext(t)
	_, err := tx.ExecContext(ctx, query)
	if !errors.Is(err, cause) {
		t.Errorf("exec after an aborting error: %v, want it refused with %v", err, cause)
	}
	if got, want := driverCode(err), driverCode(cause); got != want {
		t.Errorf("exec after an aborting error: driver code %q, want %q (the statement reached the database)", got, want)
	}
	rows, err := tx.QueryContext(ctx, "SELECT 1")
	if err == nil {
		rows.Close()
	}
	if !errors.Is(err, cause) {
		t.Errorf("query after an aborting error: %v, want it refused with %v", err, cause)
	}
	st, err := tx.PrepareContext(ctx, query)
	if err == nil {
		st.Close()
	}
	if !errors.Is(err, cause) {
		t.Errorf("prepare after an aborting error: %v, want it refused with %v", err, cause)
	}
}

// checkCommitFails: COMMIT after an aborting error rolls back and returns
// that error.
func checkCommitFails(t *testing.T, tx *sql.Tx, cause error) {
	t.Helper()
	err := tx.Commit()
	if !errors.Is(err, cause) {
		t.Errorf("commit after an aborting error: %v, want %v", err, cause)
	}
	if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("rollback after the commit: %v, want sql.ErrTxDone", err)
	}
}

// TestAbortedPostgres: on PostgreSQL any error aborts the transaction,
// met on a statement or while reading rows. The connection then refuses
// statements with that error, COMMIT returns it and commits nothing; a
// ROLLBACK TO SAVEPOINT recovers the transaction, which then commits.
func TestAbortedPostgres(t *testing.T) {
	cfg := fxtest.Postgres(t)
	bare := openBare(t, cfg)
	mustExec(t, bare, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	rec := newRecorder()
	db, _ := openWrapped(t, cfg, connwrap.Options{DB: "pg", Monitor: rec})
	ctx := testContext(t)
	begin := func(t *testing.T) *sql.Tx {
		t.Helper()
		mustExec(t, bare, "DELETE FROM t")
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback() }) // a test that failed half-way holds no lock
		mustExec(t, tx, "INSERT INTO t (id) VALUES (1)")
		return tx
	}
	t.Run("statement", func(t *testing.T) {
		tx := begin(t)
		_, cause := tx.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)")
		if c := tagged(t, "duplicate", cause); !c.Has(dialect.Aborting | dialect.Unique) {
			t.Fatalf("duplicate key: class %b, want Aborting and Unique", c)
		}
		checkRefused(t, tx, "INSERT INTO t (id) VALUES (2)", cause)
		checkCommitFails(t, tx, cause)
		if n := count(t, bare, "t"); n != 0 {
			t.Errorf("%d rows committed, want none", n)
		}
	})
	t.Run("rows", func(t *testing.T) {
		tx := begin(t)
		rows, err := tx.QueryContext(ctx, "SELECT 10 / (3 - x) FROM generate_series(1, 5) x")
		if err != nil {
			t.Fatalf("the error came at the query, not while its rows were read: %v", err)
		}
		read := 0
		for rows.Next() {
			read++
		}
		cause := rows.Err()
		rows.Close()
		if read != 2 || cause == nil {
			t.Fatalf("%d rows read, then %v; want 2 rows and a division by zero", read, cause)
		}
		if c := tagged(t, "division by zero", cause); !c.Has(dialect.Aborting) || driverCode(cause) != "22012" {
			t.Fatalf("division by zero: class %b, code %s; want Aborting, 22012", c, driverCode(cause))
		}
		checkRefused(t, tx, "INSERT INTO t (id) VALUES (2)", cause)
		checkCommitFails(t, tx, cause)
		if n := count(t, bare, "t"); n != 0 {
			t.Errorf("%d rows committed, want none", n)
		}
	})
	t.Run("savepoint", func(t *testing.T) {
		tx := begin(t)
		mustExec(t, tx, "SAVEPOINT sp")
		_, cause := tx.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)")
		if cause == nil {
			t.Fatal("a duplicate key was inserted")
		}
		checkRefused(t, tx, "INSERT INTO t (id) VALUES (2)", cause)
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT sp"); err != nil {
			t.Fatalf("ROLLBACK TO SAVEPOINT: %v", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO t (id) VALUES (2)"); err != nil {
			t.Fatalf("a statement after ROLLBACK TO SAVEPOINT: %v", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if n := count(t, bare, "t"); n != 2 {
			t.Errorf("%d rows committed, want 2", n)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		// A ROLLBACK of an aborted transaction is a rollback like any.
		tx := begin(t)
		if _, err := tx.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)"); err == nil {
			t.Fatal("a duplicate key was inserted")
		}
		if err := tx.Rollback(); err != nil {
			t.Errorf("rollback after an aborting error: %v", err)
		}
		if n := count(t, bare, "t"); n != 0 {
			t.Errorf("%d rows committed, want none", n)
		}
		if n := count(t, db, "t"); n != 0 { // the connection is fine afterwards
			t.Errorf("%d rows committed, want none", n)
		}
	})
	var commits, rollbacks int
	for _, e := range rec.queries() {
		switch e.Op {
		case "commit":
			commits++
		case "rollback":
			rollbacks++
		}
	}
	if commits != 1 || rollbacks != 3 {
		t.Errorf("the monitor saw %d commits and %d rollbacks, want 1 and 3", commits, rollbacks)
	}
}

// TestAbortedMySQL provokes a real deadlock (1213) between two
// transactions. The victim meets it while it reads the rows of a SELECT
// ... FOR UPDATE; InnoDB has rolled its transaction back, and a statement
// sent afterwards would run outside any transaction and be committed at
// once. The connection refuses it, ROLLBACK TO SAVEPOINT fails (the
// savepoint is gone) and leaves it refused, and COMMIT returns the
// deadlock: nothing of the victim is committed, the winner commits.
func TestAbortedMySQL(t *testing.T) {
	cfg := fxtest.MySQL(t)
	bare := openBare(t, cfg)
	mustExec(t, bare, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
	mustExec(t, bare, "INSERT INTO t (id, v) VALUES (1, 0), (2, 0), (3, 0), (4, 0)")
	mustExec(t, bare, "CREATE TABLE heavy (id INTEGER PRIMARY KEY)")
	db, _ := openWrapped(t, cfg, connwrap.Options{DB: "my", Monitor: newRecorder()})
	ctx := testContext(t)

	// The winner: heavy (InnoDB rolls back the transaction that changed
	// fewer rows), and holding row 3.
	winner, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer winner.Rollback()
	values := make([]string, 500)
	for i := range values {
		values[i] = fmt.Sprintf("(%d)", i+1)
	}
	mustExec(t, winner, "INSERT INTO heavy (id) VALUES "+strings.Join(values, ", "))
	mustExec(t, winner, "UPDATE t SET v = v + 10 WHERE id = 3")

	// The victim holds row 1 and then reads every row for update: it
	// reads rows 1 and 2 and waits for row 3.
	victim, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Rollback()
	mustExec(t, victim, "SAVEPOINT sp")
	mustExec(t, victim, "UPDATE t SET v = v + 1 WHERE id = 1")
	type outcome struct {
		read    int
		atQuery bool
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		rows, err := victim.QueryContext(ctx, "SELECT id, v FROM t ORDER BY id FOR UPDATE")
		if err != nil {
			done <- outcome{atQuery: true, err: err}
			return
		}
		defer rows.Close()
		read := 0
		for rows.Next() {
			read++
		}
		done <- outcome{read: read, err: rows.Err()}
	}()
	// The winner closes the cycle: it waits for row 1, which the victim
	// holds, while the victim waits (or is about to) for row 3, which the
	// winner holds. In either order InnoDB finds the deadlock and rolls
	// back the lighter transaction, so the winner's UPDATE goes through.
	if _, err := winner.ExecContext(ctx, "UPDATE t SET v = v + 10 WHERE id = 1"); err != nil {
		t.Fatalf("the heavy transaction was chosen as the deadlock's victim: %v", err)
	}
	o := <-done
	cause := o.err
	if cause == nil || driverCode(cause) != "1213" {
		t.Fatalf("the victim read %d rows and then got %v, want a deadlock (1213)", o.read, cause)
	}
	if o.atQuery {
		t.Errorf("the deadlock came at the query, not while its rows were read: this test then checks the statement path only")
	}
	if c := tagged(t, "deadlock", cause); !c.Has(dialect.Aborting | dialect.Retryable) {
		t.Errorf("deadlock: class %b, want Aborting and Retryable", c)
	}
	checkRefused(t, victim, "INSERT INTO t (id, v) VALUES (100, 0)", cause)
	_, err = victim.ExecContext(ctx, "ROLLBACK TO SAVEPOINT sp")
	if driverCode(err) != "1305" {
		t.Errorf("ROLLBACK TO SAVEPOINT after the deadlock: %v, want 1305 (the savepoint is gone)", err)
	}
	checkRefused(t, victim, "INSERT INTO t (id, v) VALUES (101, 0)", cause)
	checkCommitFails(t, victim, cause)
	if err := winner.Commit(); err != nil {
		t.Fatalf("the winner's commit: %v", err)
	}
	var got []string
	rows, err := bare.QueryContext(ctx, "SELECT id, v FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, v int
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d=%d", id, v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(got, " "); s != "1=10 2=0 3=10 4=0" {
		t.Errorf("rows after both ended: %s, want 1=10 2=0 3=10 4=0 (the winner's changes alone)", s)
	}
}

// TestAbortedSQLite: a constraint error does not abort a SQLite
// transaction (TestDriverErrorsTagged), but a locked table (SQLITE_LOCKED,
// a DROP TABLE while a read of that table is still open on the
// connection) is classified as aborting: the connection refuses further
// statements with it and COMMIT returns it, committing nothing.
func TestAbortedSQLite(t *testing.T) {
	cfg := fxtest.SQLite(t)
	bare := openBare(t, cfg)
	mustExec(t, bare, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	mustExec(t, bare, "INSERT INTO t (id) VALUES (1), (2), (3)")
	mustExec(t, bare, "CREATE TABLE other (id INTEGER PRIMARY KEY)")
	db, _ := openWrapped(t, cfg, connwrap.Options{DB: "lite", Monitor: newRecorder()})
	ctx := testContext(t)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	mustExec(t, tx, "INSERT INTO other (id) VALUES (1)")
	rows, err := tx.QueryContext(ctx, "SELECT id FROM t")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	_, cause := tx.ExecContext(ctx, "DROP TABLE t")
	rows.Close()
	var se sqlite3.Error
	if !errors.As(cause, &se) || se.Code != sqlite3.ErrLocked {
		t.Fatalf("DROP TABLE while reading it: %v, want SQLITE_LOCKED", cause)
	}
	if c := tagged(t, "locked", cause); !c.Has(dialect.Aborting) {
		t.Fatalf("SQLITE_LOCKED: class %b, want Aborting", c)
	}
	checkRefused(t, tx, "INSERT INTO other (id) VALUES (2)", cause)
	checkCommitFails(t, tx, cause)
	if n := count(t, bare, "other"); n != 0 {
		t.Errorf("%d rows committed, want none", n)
	}
	if n := count(t, db, "t"); n != 3 {
		t.Errorf("%d rows in t, want 3", n)
	}
}
