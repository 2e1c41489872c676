package session_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/session"
)

// A transfer in one transaction: both updates or neither.
func ExampleManager_Tx() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	e, err := dbfx.Open(ctx, dbfx.Config{DSN: filepath.Join(dir, "bank.db")}, dbfx.WithDriver(sqlite3.Driver()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close(ctx)
	m := e.Sessions()
	q := m.Q(ctx)
	_, _ = q.ExecContext(ctx, `CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))`)
	_, _ = q.ExecContext(ctx, `INSERT INTO accounts VALUES (1, 100), (2, 0)`)

	transfer := func(ctx context.Context, from, to, amount int) error {
		return m.Tx(ctx, func(ctx context.Context) error {
			q := m.Q(ctx)
			if _, err := q.ExecContext(ctx, `UPDATE accounts SET balance = balance + ? WHERE id = ?`, amount, to); err != nil {
				return err
			}
			_, err := q.ExecContext(ctx, `UPDATE accounts SET balance = balance - ? WHERE id = ?`, amount, from)
			return err // the CHECK fails when the balance would go negative: both updates roll back
		})
	}
	fmt.Println("transfer 60:", transfer(ctx, 1, 2, 60))
	fmt.Println("transfer 60 again fails:", transfer(ctx, 1, 2, 60) != nil)

	balances, err := session.ReadOnly(ctx, m, func(ctx context.Context) ([]int, error) {
		var b []int
		err := m.Q(ctx).SelectContext(ctx, &b, `SELECT balance FROM accounts ORDER BY id`)
		return b, err
	})
	fmt.Println(balances, err)
	// Output:
	// transfer 60: <nil>
	// transfer 60 again fails: true
	// [40 60] <nil>
}

// Nested runs in a savepoint: its failure leaves the outer transaction
// usable.
func ExamplePropagation() {
	ctx := context.Background()
	e, err := dbfx.Open(ctx, dbfx.Config{DSN: ":memory:"}, dbfx.WithDriver(sqlite3.Driver()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close(ctx)
	m := e.Sessions()
	_, _ = m.Q(ctx).ExecContext(ctx, `CREATE TABLE log (msg TEXT)`)
	insert := func(ctx context.Context, msg string) error {
		_, err := m.Q(ctx).ExecContext(ctx, `INSERT INTO log VALUES (?)`, msg)
		return err
	}
	err = m.Tx(ctx, func(ctx context.Context) error {
		if err := insert(ctx, "kept"); err != nil {
			return err
		}
		err := m.Tx(ctx, func(ctx context.Context) error {
			_ = insert(ctx, "undone")
			return errors.New("optional step failed")
		}, session.Propagation(session.Nested))
		fmt.Println("nested:", err)
		return nil
	})
	var n int
	_ = m.Q(ctx).GetContext(ctx, &n, `SELECT COUNT(*) FROM log`)
	fmt.Println("outer:", err, "rows:", n)
	// Output:
	// nested: optional step failed
	// outer: <nil> rows: 1
}
