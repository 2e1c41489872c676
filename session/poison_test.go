package session_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// A fn that swallows a statement error and goes on. On PostgreSQL the error
// aborted the transaction: the next statements are refused and nothing is
// committed. On MySQL and SQLite a duplicate key fails the statement only.
func TestSwallowedStatementErrorPoisonsAnAbortedTransaction(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		mustExec(t, e, "INSERT INTO items (id) VALUES (1)")
		attempts := 0
		var dupErr, afterErr error
		err := m.Tx(ctx, func(ctx context.Context) error {
			attempts++
			if err := insert(ctx, m, 2); err != nil {
				return err
			}
			dupErr = insert(ctx, m, 1) // duplicate primary key, swallowed
			afterErr = insert(ctx, m, 3)
			return nil
		})
		if dupErr == nil {
			t.Fatal("inserting a duplicate primary key succeeded")
		}
		if attempts != 1 {
			t.Errorf("fn ran %d times, want 1 (a unique violation is not retried)", attempts)
		}
		if e.Driver() != "postgres" {
			wantErrIs(t, "statement after the error", afterErr, nil)
			wantErrIs(t, "Tx", err, nil)
			wantIDs(t, e, 1, 2, 3)
			fxtest.RequireNoLeaks(t, e)
			return
		}
		wantErrIs(t, "statement after the error", afterErr, session.ErrAborted)
		wantErrIs(t, "Tx", err, session.ErrUnexpectedRollback)
		var pqErr *pq.Error
		if !errors.As(err, &pqErr) || pqErr.Code != "23505" {
			t.Errorf("Tx = %v, want it to wrap the unique violation", err)
		}
		if session.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = true", err)
		}
		wantIDs(t, e, 1)
		fxtest.RequireNoLeaks(t, e)
	})
}

// In a Nested scope a statement error aborts the savepoint only: the
// nested scope reports ErrUnexpectedRollback, refuses statements after the
// error, and the outer transaction goes on and commits.
func TestSwallowedStatementErrorInNestedAbortsOnlyTheSavepoint(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		mustExec(t, e, "INSERT INTO items (id) VALUES (1)")
		var dupErr, afterErr, nestedErr error
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 2); err != nil {
				return err
			}
			nestedErr = m.Tx(ctx, func(ctx context.Context) error {
				if err := insert(ctx, m, 3); err != nil {
					return err
				}
				dupErr = insert(ctx, m, 1) // swallowed
				afterErr = insert(ctx, m, 4)
				return nil
			}, session.Propagation(session.Nested))
			return insert(ctx, m, 5)
		})
		if dupErr == nil {
			t.Fatal("inserting a duplicate primary key succeeded")
		}
		wantErrIs(t, "Tx", err, nil)
		if e.Driver() != "postgres" {
			wantErrIs(t, "statement after the error", afterErr, nil)
			wantErrIs(t, "nested", nestedErr, nil)
			wantIDs(t, e, 1, 2, 3, 4, 5)
			fxtest.RequireNoLeaks(t, e)
			return
		}
		wantErrIs(t, "statement after the error", afterErr, session.ErrAborted)
		wantErrIs(t, "nested", nestedErr, session.ErrUnexpectedRollback)
		wantIDs(t, e, 1, 2, 5)
		fxtest.RequireNoLeaks(t, e)
	})
}

// MariaDB/MySQL: a deadlock rolls the whole transaction back but the
// session goes on in autocommit. A fn that swallows the 1213 error and
// goes on must commit nothing of that attempt; with retries the
// transaction runs again and both transactions land exactly once.
func TestMySQLSwallowedDeadlockIsNeverCommittedInPart(t *testing.T) {
	tests := []struct {
		name      string
		give      []session.TxOption
		wantRetry bool
	}{
		{name: "no retry", give: []session.TxOption{session.NoRetry()}},
		{name: "retried", give: []session.TxOption{session.Retry(session.RetryPolicy{MaxAttempts: 3})}, wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := openEngine(t, fxtest.MySQL(t))
			m := e.Sessions()
			ctx := testContext(t)
			mustExec(t, e, "CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
			mustExec(t, e, "INSERT INTO counters (id, n) VALUES (1, 0), (2, 0)")

			type result struct {
				attempts         int
				stmtErr, partErr error // the swallowed deadlock, the statement sent after it
				err              error
			}
			var results [2]result
			locked := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
			var wg sync.WaitGroup
			for g := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := &results[g]
					first, second := g+1, 2-g // opposite lock orders
					r.err = m.Tx(ctx, func(ctx context.Context) error {
						r.attempts++
						q := m.Q(ctx)
						if _, err := q.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = ?", first); err != nil {
							return err
						}
						if r.attempts == 1 { // both hold their first row before either asks for the second
							close(locked[g])
							select {
							case <-locked[1-g]:
							case <-ctx.Done():
								return ctx.Err()
							}
						}
						if _, err := q.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = ?", second); err != nil {
							r.stmtErr = err
							r.partErr = insert(ctx, m, 100*(g+1)+r.attempts) // must never land
							return nil                                       // swallowed
						}
						return insert(ctx, m, 10*(g+1)+r.attempts)
					}, tt.give...)
				}()
			}
			wg.Wait()

			victim := -1
			for g, r := range results {
				if r.stmtErr != nil {
					if victim >= 0 {
						t.Fatalf("both transactions saw an error: %v; %v", results[0].stmtErr, results[1].stmtErr)
					}
					victim = g
				}
			}
			if victim < 0 {
				t.Fatal("no deadlock happened")
			}
			winner := 1 - victim
			v := results[victim]
			var me *mysql.MySQLError
			if !errors.As(v.stmtErr, &me) || me.Number != 1213 {
				t.Fatalf("the victim's statement failed with %v, want a 1213 deadlock", v.stmtErr)
			}
			wantErrIs(t, "statement after the deadlock", v.partErr, session.ErrAborted)
			wantErrIs(t, "winner", results[winner].err, nil)
			if results[winner].attempts != 1 {
				t.Errorf("the winner ran %d times", results[winner].attempts)
			}
			var counters []int
			if err := e.DB().SelectContext(ctx, &counters, "SELECT n FROM counters ORDER BY id"); err != nil {
				t.Fatal(err)
			}
			if tt.wantRetry {
				wantErrIs(t, "victim", v.err, nil)
				if v.attempts != 2 {
					t.Errorf("the victim ran %d times, want 2", v.attempts)
				}
				if !slices.Equal(counters, []int{2, 2}) {
					t.Errorf("counters = %v, want [2 2]: each transaction exactly once", counters)
				}
				want := []int{10*(winner+1) + 1, 10*(victim+1) + 2}
				slices.Sort(want)
				wantIDs(t, e, want...)
			} else {
				wantErrIs(t, "victim", v.err, session.ErrUnexpectedRollback)
				if !errors.As(v.err, &me) || me.Number != 1213 || !session.IsRetryable(v.err) {
					t.Errorf("victim = %v, want it to wrap the retryable deadlock", v.err)
				}
				if v.attempts != 1 {
					t.Errorf("the victim ran %d times without retries", v.attempts)
				}
				if !slices.Equal(counters, []int{1, 1}) {
					t.Errorf("counters = %v, want [1 1]: the winner's updates only", counters)
				}
				wantIDs(t, e, 10*(winner+1)+1)
			}
			fxtest.RequireNoLeaks(t, e)
		})
	}
}

// PostgreSQL SERIALIZABLE: two transactions that each read what the other
// writes (write skew). One fails with 40001, on a statement or at COMMIT;
// the retry makes both land exactly once, in an order that is serial.
func TestPostgresSerializableWriteSkewIsRetried(t *testing.T) {
	e := openEngine(t, fxtest.Postgres(t))
	m := e.Sessions()
	ctx := testContext(t)
	mustExec(t, e, "CREATE TABLE skew (id SERIAL PRIMARY KEY, class INT NOT NULL, value INT NOT NULL)")
	mustExec(t, e, "INSERT INTO skew (class, value) VALUES (1, 10), (1, 20), (2, 100), (2, 200)")

	var attempts [2]int
	var errs [2]error
	read := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := g+1, 2-g // g 0 sums class 1 into class 2, g 1 the reverse
			errs[g] = m.Tx(ctx, func(ctx context.Context) error {
				attempts[g]++
				q := m.Q(ctx)
				var sum int
				if err := q.GetContext(ctx, &sum, "SELECT SUM(value) FROM skew WHERE class = $1", from); err != nil {
					return err
				}
				if attempts[g] == 1 { // both have read before either writes
					close(read[g])
					select {
					case <-read[1-g]:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				_, err := q.ExecContext(ctx, "INSERT INTO skew (class, value) VALUES ($1, $2)", to, sum)
				return err
			}, session.Isolation(sql.LevelSerializable), session.Retry(session.RetryPolicy{MaxAttempts: 10, BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}))
		}()
	}
	wg.Wait()
	wantErrIs(t, "first", errs[0], nil)
	wantErrIs(t, "second", errs[1], nil)
	// The retried one may fail again while the other has not committed yet.
	if total := attempts[0] + attempts[1]; total < 3 {
		t.Errorf("attempts = %v, want a retry", attempts)
	}
	type row struct {
		Class int `db:"class"`
		Value int `db:"value"`
	}
	var added []row
	if err := e.DB().SelectContext(ctx, &added, "SELECT class, value FROM skew WHERE id > 4 ORDER BY class"); err != nil {
		t.Fatal(err)
	}
	// Serial orders: 0 then 1 adds (2, 30) then (1, 330); 1 then 0 adds
	// (1, 300) then (2, 330).
	serial := [][]row{{{1, 330}, {2, 30}}, {{1, 300}, {2, 330}}}
	if !slices.Equal(added, serial[0]) && !slices.Equal(added, serial[1]) {
		t.Errorf("rows added = %v, want one of the serial outcomes %v", added, serial)
	}
	fxtest.RequireNoLeaks(t, e)
}

// An error met while a result set is read (rows.Err, Row.Scan) rather than
// returned by the query call poisons the transaction too. MySQL: a
// SELECT ... FOR UPDATE that deadlocks after its first rows; fn drops the
// error and goes on, and its next statements, which would run outside the
// transaction the deadlock rolled back, are refused.
func TestMySQLDeadlockWhileReadingRowsIsNeverCommittedInPart(t *testing.T) {
	type reader func(ctx context.Context, q session.Querier) error
	readers := []struct {
		name string
		read reader
	}{
		{"Queryx", func(ctx context.Context, q session.Querier) error {
			rows, err := q.QueryxContext(ctx, "SELECT id FROM items WHERE id <= 2 ORDER BY id FOR UPDATE")
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
			}
			return rows.Err()
		}},
		{"QueryRowx", func(ctx context.Context, q session.Querier) error {
			var id int
			return q.QueryRowxContext(ctx, "SELECT id FROM items WHERE id <= 2 ORDER BY id DESC LIMIT 1 FOR UPDATE").Scan(&id)
		}},
	}
	retries := []struct {
		name      string
		give      session.TxOption
		wantRetry bool
	}{
		{"no retry", session.NoRetry(), false},
		{"retried", session.Retry(session.RetryPolicy{MaxAttempts: 3}), true},
	}
	var b strings.Builder
	for i := 100; i < 200; i++ {
		if i > 100 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d)", i)
	}
	heavyRows := b.String()
	for _, r := range readers {
		for _, tt := range retries {
			t.Run(r.name+"/"+tt.name, func(t *testing.T) {
				e := openEngine(t, fxtest.MySQL(t))
				m := e.Sessions()
				ctx := testContext(t)
				mustExec(t, e, "INSERT INTO items (id) VALUES (1), (2)")
				locked := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
				barrier := func(ctx context.Context, g int) error {
					close(locked[g])
					select {
					case <-locked[1-g]:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				heavy := make(chan error, 1)
				go func() {
					// The heavier transaction (100 rows written): InnoDB
					// makes the other one the deadlock's victim.
					attempts := 0
					heavy <- m.Tx(ctx, func(ctx context.Context) error {
						attempts++
						q := m.Q(ctx)
						if _, err := q.ExecContext(ctx, "INSERT INTO items (id) VALUES "+heavyRows); err != nil {
							return err
						}
						if _, err := q.ExecContext(ctx, "UPDATE items SET note = 'heavy' WHERE id = 2"); err != nil {
							return err
						}
						if attempts == 1 {
							if err := barrier(ctx, 0); err != nil {
								return err
							}
						}
						_, err := q.ExecContext(ctx, "UPDATE items SET note = 'heavy' WHERE id = 1")
						return err
					}, session.NoRetry())
				}()
				var attempts int
				var readErr, partErr error
				err := m.Tx(ctx, func(ctx context.Context) error {
					attempts++
					q := m.Q(ctx)
					if _, err := q.ExecContext(ctx, "UPDATE items SET note = 'light' WHERE id = 1"); err != nil {
						return err
					}
					if attempts == 1 {
						if err := barrier(ctx, 1); err != nil {
							return err
						}
					}
					if err := r.read(ctx, q); err != nil && attempts == 1 {
						readErr = err
						partErr = insert(ctx, m, 50) // must never land
						return nil                   // swallowed
					} else if err != nil {
						return err
					}
					return insert(ctx, m, 60)
				}, tt.give)
				wantErrIs(t, "the heavy transaction", <-heavy, nil)

				var me *mysql.MySQLError
				if !errors.As(readErr, &me) || me.Number != 1213 {
					t.Fatalf("the read failed with %v, want a 1213 deadlock", readErr)
				}
				wantErrIs(t, "statement after the deadlock", partErr, session.ErrAborted)
				var notes []string
				if err := e.DB().SelectContext(ctx, &notes, "SELECT note FROM items WHERE id <= 2 ORDER BY id"); err != nil {
					t.Fatal(err)
				}
				got := ids(t, e)
				if slices.Contains(got, 50) {
					t.Error("a statement sent after the deadlock was committed")
				}
				if tt.wantRetry {
					wantErrIs(t, "Tx", err, nil)
					if attempts != 2 {
						t.Errorf("fn ran %d times, want 2", attempts)
					}
					if !slices.Contains(got, 60) || !slices.Equal(notes, []string{"light", "heavy"}) {
						t.Errorf("items %v with notes %v: the retried transaction did not land", got, notes)
					}
				} else {
					wantErrIs(t, "Tx", err, session.ErrUnexpectedRollback)
					if !errors.As(err, &me) || me.Number != 1213 {
						t.Errorf("Tx = %v, want it to wrap the deadlock", err)
					}
					if slices.Contains(got, 60) || !slices.Equal(notes, []string{"heavy", "heavy"}) {
						t.Errorf("items %v with notes %v: the victim left something behind", got, notes)
					}
				}
				fxtest.RequireNoLeaks(t, e)
			})
		}
	}
}

// PostgreSQL: a statement that fails on its third row. The error, met by
// rows.Err, aborts the transaction (or, in a Nested scope, its savepoint):
// the next statements are refused with the real cause, not 25P02.
func TestPostgresErrorWhileReadingRowsPoisons(t *testing.T) {
	read := func(ctx context.Context, q session.Querier) error {
		rows, err := q.QueryxContext(ctx, "SELECT 10 / (x - 3) FROM generate_series(1, 5) AS x")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
		}
		return rows.Err()
	}
	isDivisionByZero := func(err error) bool {
		var pe *pq.Error
		return errors.As(err, &pe) && pe.Code == "22012"
	}
	e := openEngine(t, fxtest.Postgres(t))
	m := e.Sessions()
	ctx := testContext(t)

	var readErr, afterErr error
	err := m.Tx(ctx, func(ctx context.Context) error {
		if err := insert(ctx, m, 1); err != nil {
			return err
		}
		readErr = read(ctx, m.Q(ctx)) // swallowed
		afterErr = insert(ctx, m, 2)
		return nil
	})
	if !isDivisionByZero(readErr) {
		t.Fatalf("the read failed with %v, want division by zero", readErr)
	}
	wantErrIs(t, "statement after the error", afterErr, session.ErrAborted)
	if !isDivisionByZero(afterErr) {
		t.Errorf("statement after the error = %v, want it to name the cause", afterErr)
	}
	wantErrIs(t, "Tx", err, session.ErrUnexpectedRollback)
	if !isDivisionByZero(err) {
		t.Errorf("Tx = %v, want it to name the cause", err)
	}
	wantIDs(t, e)

	// Swallowed, then nothing more: still not committed, cause named.
	err = m.Tx(ctx, func(ctx context.Context) error {
		if err := insert(ctx, m, 1); err != nil {
			return err
		}
		_ = read(ctx, m.Q(ctx))
		return nil
	})
	if !errors.Is(err, session.ErrUnexpectedRollback) || !isDivisionByZero(err) {
		t.Errorf("Tx = %v, want ErrUnexpectedRollback naming the division by zero", err)
	}
	wantIDs(t, e)

	// In a Nested scope: only the savepoint is lost.
	var nestedErr error
	err = m.Tx(ctx, func(ctx context.Context) error {
		if err := insert(ctx, m, 1); err != nil {
			return err
		}
		nestedErr = m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 2); err != nil {
				return err
			}
			_ = read(ctx, m.Q(ctx))
			return nil
		}, session.Propagation(session.Nested))
		return insert(ctx, m, 3)
	})
	wantErrIs(t, "Tx", err, nil)
	wantErrIs(t, "nested", nestedErr, session.ErrUnexpectedRollback)
	if !isDivisionByZero(nestedErr) {
		t.Errorf("nested = %v, want it to name the cause", nestedErr)
	}
	wantIDs(t, e, 1, 3)
	fxtest.RequireNoLeaks(t, e)
}
