package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/enginekit/enginekit/monitor"
)

func TestOperation(t *testing.T) {
	tests := []struct {
		give string
		op   monitor.Op
		want string
	}{
		{`SELECT 1`, monitor.OpQuery, "SELECT"},
		{`  select id from t`, monitor.OpQuery, "SELECT"},
		{"-- a comment\n/* another */ insert into t values (1)", monitor.OpExec, "INSERT"},
		{`(SELECT 1) UNION (SELECT 2)`, monitor.OpQuery, "SELECT"},
		{`WITH x AS (SELECT 1), y AS (SELECT 2) UPDATE t SET a = 1`, monitor.OpExec, "UPDATE"},
		{`WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT n FROM r`, monitor.OpQuery, "SELECT"},
		{`SAVEPOINT sp_1`, monitor.OpExec, "SAVEPOINT"},
		{`RELEASE SAVEPOINT sp_1`, monitor.OpExec, "RELEASE SAVEPOINT"},
		{`ROLLBACK TO SAVEPOINT sp_1`, monitor.OpExec, "ROLLBACK TO SAVEPOINT"},
		{`ROLLBACK`, monitor.OpExec, "ROLLBACK"},
		{`PRAGMA query_only = 1`, monitor.OpExec, "PRAGMA"},
		{`frobnicate the table`, monitor.OpExec, ""},
		{`'SELECT'`, monitor.OpExec, ""},
		{``, monitor.OpExec, ""},
		{``, monitor.OpBegin, "BEGIN"},
		{``, monitor.OpCommit, "COMMIT"},
		{``, monitor.OpRollback, "ROLLBACK"},
		{`SELECT 1`, monitor.OpPrepare, "PREPARE"},
	}
	for _, tt := range tests {
		if got := monitor.Operation(tt.op, tt.give); got != tt.want {
			t.Errorf("Operation(%s, %q) = %q, want %q", tt.op, tt.give, got, tt.want)
		}
	}
}

func TestCollection(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{`SELECT id, name FROM users WHERE id = $1`, "users"},
		{`SELECT "id" FROM "public"."users" AS u JOIN orders o ON o.u = u.id`, "public.users"},
		{`SELECT "id" FROM "we""ird" WHERE id = 1`, `we"ird`},
		{`SELECT "id" FROM public."users"`, "public.users"},
		{"SELECT `id` FROM `users` LIMIT 1", "users"},
		{`SELECT (SELECT max(x) FROM inner_t), 'FROM fake' FROM outer_t`, "outer_t"},
		{`SELECT 1`, ""},
		{`SELECT * FROM (SELECT 1) AS s`, ""},
		{`INSERT INTO items (a) VALUES (1)`, "items"},
		{`INSERT IGNORE INTO items (a) VALUES (1)`, "items"},
		{`REPLACE INTO items (a) VALUES (1)`, "items"},
		{`UPDATE items SET a = 1`, "items"},
		{`UPDATE ONLY s.items SET a = 1`, "s.items"},
		{`DELETE FROM items WHERE id = ?`, "items"},
		{`DELETE FROM ONLY items`, "items"},
		{`CREATE TABLE items (id int)`, ""},
		{`SELECT $$FROM x$$ FROM y`, "y"},
	}
	for _, tt := range tests {
		if got := monitor.Collection(tt.give); got != tt.want {
			t.Errorf("Collection(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestSemconvAllocations(t *testing.T) {
	const q = `SELECT "id", "name" FROM "users" WHERE "id" = $1`
	n := testing.AllocsPerRun(100, func() {
		if monitor.Operation(monitor.OpQuery, q) != "SELECT" || monitor.Collection(q) != "users" {
			t.Fatal("wrong answer")
		}
	})
	if n != 0 {
		t.Errorf("Operation and Collection allocated %v times, want 0", n)
	}
}

type codeError struct{ code string }

func (e *codeError) Error() string    { return "server said " + e.code }
func (e *codeError) SQLState() string { return e.code }

type driverError struct{}

func (driverError) Error() string { return "driver error" }

func TestErrorTypeUnclassified(t *testing.T) {
	tests := []struct {
		name string
		give error
		want string
	}{
		{"nil", nil, ""},
		{"canceled", fmt.Errorf("run: %w", context.Canceled), "canceled"},
		{"deadline", context.DeadlineExceeded, "deadline_exceeded"},
		{"sqlstate", fmt.Errorf("q: %w", &codeError{"42P01"}), "42P01"},
		{"driver type", fmt.Errorf("q: %w", driverError{}), "monitor_test.driverError"},
		{"plain", errors.New("something"), "_OTHER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := monitor.ErrorType(tt.give); got != tt.want {
				t.Errorf("ErrorType(%v) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}
