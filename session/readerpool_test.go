package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/enginekit/enginekit/fxtest"
)

// On SQLite a SELECT outside any scope runs on the reader pool: it does
// not wait for a write transaction that holds the single writer, and it
// sees every write committed before it, outside a scope or in one.
func TestSQLiteSelectOutsideAScopeUsesTheReaderPool(t *testing.T) {
	e := openEngine(t, fxtest.SQLite(t))
	m := e.Sessions()
	ctx := testContext(t)
	if err := insert(ctx, m, 1); err != nil { // autocommit, on the writer
		t.Fatal(err)
	}
	sel := m.Rebind("SELECT COUNT(*) FROM items WHERE id <= ?")
	read := func(ctx context.Context) (int, int) {
		var a, b int
		if err := m.Q(ctx).GetContext(ctx, &a, sel, 10); err != nil {
			t.Fatalf("Q Get: %v", err)
		}
		if err := m.Prepared(ctx).QueryRowContext(ctx, sel, 10).Scan(&b); err != nil {
			t.Fatalf("Prepared QueryRow: %v", err)
		}
		return a, b
	}
	if a, b := read(ctx); a != 1 || b != 1 {
		t.Fatalf("read after an autocommit insert: %d, %d; want 1", a, b)
	}

	// A transaction holds the writer while reads run outside it. Were they
	// sent to the writer they would wait for it, and it waits for them:
	// the bound ctx would end them with an error instead.
	err := m.Tx(ctx, func(txCtx context.Context) error {
		if err := insert(txCtx, m, 2); err != nil {
			return err
		}
		bounded, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if a, b := read(bounded); a != 1 || b != 1 {
			t.Errorf("read beside the transaction: %d, %d; want 1 (its row is not committed)", a, b)
		}
		// A SELECT behind a comment or common table expressions is one too.
		var n int
		cte := m.Rebind("/* report */ WITH c AS (SELECT id FROM items WHERE id <= ?) SELECT COUNT(*) FROM c")
		if err := m.Q(bounded).GetContext(bounded, &n, cte, 10); err != nil || n != 1 {
			t.Errorf("WITH ... SELECT beside the transaction: %d, %v; want 1", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Tx: %v", err)
	}
	if a, b := read(ctx); a != 2 || b != 2 {
		t.Fatalf("read after the commit: %d, %d; want 2", a, b)
	}
	if st := e.Stats(); st.InUse != 0 {
		t.Fatalf("%d connections still in use", st.InUse)
	}
	fxtest.RequireNoLeaks(t, e)
}
