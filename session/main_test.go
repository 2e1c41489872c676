package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The engines some scope tests run on: every database, and SQLite
// in memory, where one connection serves every scope.
func eachWithMemory(t *testing.T, fn func(t *testing.T, cfg dbfx.Config)) {
	t.Helper()
	fxtest.Each(t, fn)
	t.Run("sqlite3-memory", func(t *testing.T) { fn(t, dbfx.Config{DSN: ":memory:"}) })
}

// testTimeout bounds every test: none may wait longer for anything.
const testTimeout = 60 * time.Second

// testContext returns a context that ends when the test does, or after
// testTimeout.
func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// openEngine opens an engine on cfg, closed when the test ends, with an
// empty items table.
func openEngine(tb testing.TB, cfg dbfx.Config, opts ...dbfx.Option) *dbfx.Engine {
	tb.Helper()
	ctx := testContext(tb)
	e, err := dbfx.Open(ctx, cfg, append([]dbfx.Option{fxtest.WithDrivers()}, opts...)...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	mustExec(tb, e, "CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(64) NOT NULL DEFAULT '')")
	return e
}

// mustExec runs a statement on the engine's pool, outside any scope.
func mustExec(tb testing.TB, e *dbfx.Engine, query string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.DB().ExecContext(ctx, e.DB().Rebind(query), args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

// insert adds item id through the scope in ctx (the pool outside one).
func insert(ctx context.Context, m *session.Manager, id int) error {
	q := m.Q(ctx)
	_, err := q.ExecContext(ctx, q.Rebind("INSERT INTO items (id) VALUES (?)"), id)
	return err
}

// count returns the number of items through the scope in ctx.
func count(ctx context.Context, m *session.Manager) (int, error) {
	var n int
	err := m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM items")
	return n, err
}

// ids returns the ids of the committed items, read on the raw pool.
func ids(tb testing.TB, e *dbfx.Engine) []int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := []int{}
	if err := e.DB().SelectContext(ctx, &got, "SELECT id FROM items ORDER BY id"); err != nil {
		tb.Fatalf("select ids: %v", err)
	}
	return got
}

// wantIDs fails the test unless exactly the items want are committed.
func wantIDs(tb testing.TB, e *dbfx.Engine, want ...int) {
	tb.Helper()
	if want == nil {
		want = []int{}
	}
	if got := ids(tb, e); !slices.Equal(got, want) {
		tb.Fatalf("committed items = %v, want %v", got, want)
	}
}

// wantErrIs fails the test unless errors.Is(err, target) (err == nil when
// target is nil).
func wantErrIs(tb testing.TB, what string, err, target error) {
	tb.Helper()
	if target == nil {
		if err != nil {
			tb.Fatalf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, target) {
		tb.Fatalf("%s = %v, want an error matching %v", what, err, target)
	}
}

// catch runs f and returns what it panicked with (nil if it did not).
func catch(f func()) (recovered any) {
	defer func() { recovered = recover() }()
	f()
	return nil
}

// panicValue is what test scopes panic with: a pointer, so the recovered
// value is the original only if it is the very same pointer.
type panicValue struct{ msg string }

func (p *panicValue) String() string { return fmt.Sprintf("panicValue(%s)", p.msg) }
