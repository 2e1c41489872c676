package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// prepares counts the statements an engine prepares on its connections,
// by text, and the transactions it retries. (On MySQL database/sql
// prepares every statement with arguments that is sent as it is, and
// closes it after: session.StmtCacheCounts tells the cache's own.)
type prepares struct {
	mu      sync.Mutex
	n       map[string]int
	retries atomic.Int64
}

func (p *prepares) Query(_ context.Context, e monitor.QueryEvent) {
	if e.Op != monitor.OpPrepare || e.Err != nil {
		return
	}
	p.mu.Lock()
	p.n[e.SQL]++
	p.mu.Unlock()
}

func (p *prepares) Tx(_ context.Context, e monitor.TxEvent) {
	if e.Kind == monitor.TxRetry {
		p.retries.Add(1)
	}
}

func (p *prepares) count(query string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[query]
}

// openCounted opens an engine on cfg that counts its prepares, with an
// items table holding rows 1 to 10 (note "n1" ... "n10").
func openCounted(t *testing.T, cfg dbfx.Config, opts ...dbfx.Option) (*dbfx.Engine, *prepares) {
	t.Helper()
	p := &prepares{n: map[string]int{}}
	e := openEngine(t, cfg, append(opts, dbfx.WithMonitor(p))...)
	for i := 1; i <= 10; i++ {
		mustExec(t, e, "INSERT INTO items (id, note) VALUES (?, ?)", i, fmt.Sprintf("n%d", i))
	}
	return e, p
}

// note reads the note of item id through q.
func note(ctx context.Context, q session.Querier, id int) (string, error) {
	var n string
	err := q.GetContext(ctx, &n, q.Rebind("SELECT note FROM items WHERE id = ?"), id)
	return n, err
}

// The first prepare of a text is shared: 64 callers that want the same
// statement at once prepare it on the pool once; database/sql then
// prepares it on each connection that runs it, at most once there.
func TestPreparedSharesFirstPrepare(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.MaxOpenConns = 4
		e, p := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if n, err := note(ctx, m.Prepared(ctx), 7); err != nil || n != "n7" {
					t.Errorf("note 7 = %q, %v", n, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		_, prepared, _ := session.StmtCacheCounts(m)
		if prepared != 1 {
			t.Errorf("the statement was prepared on the pool %d times, want 1", prepared)
		}
		query := m.Rebind("SELECT note FROM items WHERE id = ?")
		if n := p.count(query); (n < 1 || n > cfg.MaxOpenConns) && e.Driver() != "mysql" {
			t.Errorf("the statement was prepared on %d connections, want 1 to %d", n, cfg.MaxOpenConns)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// 64 goroutines run statements of a few texts, the same and different,
// outside and inside transactions, through a cache smaller than the
// number of texts, so that statements are evicted while others run them.
// Every result is right, and a transaction's statements see its own
// uncommitted writes.
func TestPreparedConcurrent(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.MaxOpenConns, cfg.StatementCache = 8, 3
		e, _ := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		texts := make([]string, 6)
		for i := range texts {
			texts[i] = m.Rebind(fmt.Sprintf("SELECT note FROM items WHERE id = ? AND %d = %d", i, i))
		}
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					id := (g+i)%10 + 1
					text := texts[(g*7+i)%len(texts)]
					if g%4 == 0 {
						if err := txReadsOwnWrite(ctx, m, 1000+g*100+i, text); err != nil {
							t.Errorf("goroutine %d, transaction %d: %v", g, i, err)
							return
						}
						continue
					}
					var n string
					if err := m.Prepared(ctx).GetContext(ctx, &n, text, id); err != nil || n != fmt.Sprintf("n%d", id) {
						t.Errorf("goroutine %d: note %d = %q, %v", g, id, n, err)
						return
					}
					// Rows read after the statement may have been evicted.
					rows, err := m.Prepared(ctx).QueryContext(ctx, text, id)
					if err != nil {
						t.Errorf("goroutine %d: query: %v", g, err)
						return
					}
					for rows.Next() {
						if err := rows.Scan(&n); err != nil {
							t.Errorf("goroutine %d: scan: %v", g, err)
						}
					}
					if err := errors.Join(rows.Err(), rows.Close()); err != nil {
						t.Errorf("goroutine %d: rows: %v", g, err)
					}
				}
			}()
		}
		wg.Wait()
		if cached, _, _ := session.StmtCacheCounts(m); cached > 3 {
			t.Errorf("%d statements cached, want at most 3", cached)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// txReadsOwnWrite inserts item id in a transaction and reads it back with
// text there; outside, before the commit, it must not be seen. The
// transaction commits.
func txReadsOwnWrite(ctx context.Context, m *session.Manager, id int, text string) error {
	return m.Tx(ctx, func(ctx context.Context) error {
		q := m.Prepared(ctx)
		if _, err := q.ExecContext(ctx, q.Rebind("INSERT INTO items (id, note) VALUES (?, ?)"), id, "mine"); err != nil {
			return err
		}
		var n string
		if err := q.GetContext(ctx, &n, text, id); err != nil || n != "mine" {
			return fmt.Errorf("the transaction reads %q, %v of its own write", n, err)
		}
		return nil
	})
}

// A transaction's prepared statements run in it: they see its writes,
// and what it rolled back is gone.
func TestPreparedInTransaction(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e, p := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		// Prepared outside first: the transaction binds the cached statement.
		if n, err := note(ctx, m.Prepared(ctx), 1); err != nil || n != "n1" {
			t.Fatalf("note 1 = %q, %v", n, err)
		}
		errUndo := errors.New("undo")
		err := m.Tx(ctx, func(ctx context.Context) error {
			q := m.Prepared(ctx)
			if _, err := q.ExecContext(ctx, q.Rebind("UPDATE items SET note = ? WHERE id = ?"), "changed", 1); err != nil {
				return err
			}
			for range 3 { // the transaction's statement is reused
				if n, err := note(ctx, q, 1); err != nil || n != "changed" {
					t.Errorf("in the transaction, note 1 = %q, %v; want its own write", n, err)
				}
			}
			// A read-only scope inside joins the transaction: same view.
			if err := m.ReadOnly(ctx, func(ctx context.Context) error {
				n, err := note(ctx, m.Prepared(ctx), 1)
				if err == nil && n != "changed" {
					err = fmt.Errorf("note 1 = %q", n)
				}
				return err
			}); err != nil {
				t.Errorf("read-only scope inside the transaction: %v", err)
			}
			return errUndo
		})
		wantErrIs(t, "Tx", err, errUndo)
		if n, err := note(ctx, m.Prepared(ctx), 1); err != nil || n != "n1" {
			t.Errorf("after the rollback, note 1 = %q, %v; want n1", n, err)
		}
		if n := p.count(m.Rebind("SELECT note FROM items WHERE id = ?")); n == 0 {
			t.Error("the statement was never prepared")
		}
		// A statement a transaction met first, when its pool had no
		// connection to spare (SQLite's writer has one), is prepared
		// after it.
		_, before, _ := session.StmtCacheCounts(m)
		upd := m.Rebind("UPDATE items SET note = ? WHERE id = ? AND 2 = 2")
		if err := m.Tx(ctx, func(ctx context.Context) error {
			_, err := m.Prepared(ctx).ExecContext(ctx, upd, "again", 2)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, after, _ := session.StmtCacheCounts(m); after != before+1 {
			t.Errorf("the transaction's statement was not prepared, during it or after it")
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// A text a transaction runs again when its pool has no connection to
// spare for the cache (here the transaction holds the only one) is
// prepared on the transaction's connection at its second run, and that
// statement serves the rest of the transaction: the chunks of a large
// InsertMany are not parsed and planned one by one.
func TestPreparedRepeatedInATransactionWithNoConnectionToSpare(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.MaxOpenConns = 1
		e, p := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		upd := m.Rebind("UPDATE items SET note = ? WHERE id = ? AND 3 = 3")
		errUndo := errors.New("undo")
		if err := m.Tx(ctx, func(ctx context.Context) error {
			q := m.Prepared(ctx)
			for i := 1; i <= 5; i++ {
				res, err := q.ExecContext(ctx, upd, fmt.Sprintf("loop%d", i), i)
				if err != nil {
					return err
				}
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					return fmt.Errorf("run %d: %d rows affected, %v", i, n, err)
				}
			}
			if n := p.count(upd); n != 1 {
				t.Errorf("in the transaction the statement was prepared %d times, want 1 (at its second run)", n)
			}
			// A statement that fails to prepare fails as it would have run.
			bad := m.Rebind("UPDATE no_such_table SET note = ? WHERE id = ?")
			for range 2 {
				if _, err := q.ExecContext(ctx, bad, "x", 1); err == nil {
					return errors.New("an UPDATE of a table that does not exist succeeded")
				}
			}
			return errUndo
		}); !errors.Is(err, errUndo) {
			t.Fatalf("Tx = %v, want %v", err, errUndo)
		}
		for i := 1; i <= 5; i++ {
			if n, err := note(ctx, m.Q(ctx), i); err != nil || n != fmt.Sprintf("n%d", i) {
				t.Errorf("after the rollback, note %d = %q, %v", i, n, err)
			}
		}
		if err := m.Tx(ctx, func(ctx context.Context) error {
			for i := 1; i <= 3; i++ {
				if _, err := m.Prepared(ctx).ExecContext(ctx, upd, "kept", i); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("Tx: %v", err)
		}
		if n, err := note(ctx, m.Q(ctx), 3); err != nil || n != "kept" {
			t.Errorf("after the commit, note 3 = %q, %v; want kept", n, err)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// The cache never holds more statements than its size, and the ones it
// evicts are closed, on the server too.
func TestStatementCacheBounded(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		const size, texts = 8, 40
		cfg.MaxOpenConns, cfg.StatementCache = 1, size
		e, _ := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		for i := range texts {
			var n string
			err := m.Prepared(ctx).GetContext(ctx, &n, m.Rebind(fmt.Sprintf("SELECT note FROM items WHERE id = ? AND %d = %d", i, i)), 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Stats().Statements; got > size {
				t.Fatalf("after %d texts, %d statements cached, want at most %d", i+1, got, size)
			}
		}
		cached, prepared, closed := session.StmtCacheCounts(m)
		if cached != size || prepared != texts || closed != texts-size {
			t.Errorf("cached, prepared, closed = %d, %d, %d; want %d, %d, %d", cached, prepared, closed, size, texts, texts-size)
		}
		if e.Driver() == "postgres" {
			// The pool's one connection holds the statements still cached.
			var onServer int
			if err := e.DB().GetContext(ctx, &onServer, "SELECT COUNT(*) FROM pg_prepared_statements"); err != nil {
				t.Fatal(err)
			}
			if onServer > size {
				t.Errorf("the server holds %d prepared statements, want at most %d", onServer, size)
			}
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// A DDL that changes a table's columns makes a prepared SELECT * stale on
// PostgreSQL ("cached plan must not change result type"): the statement
// is prepared again, outside a transaction at once, inside one by running
// the transaction again. MySQL and SQLite prepare it again themselves.
func TestPreparedAfterDDL(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.MaxOpenConns = 1 // the statement meets the DDL on the connection it was prepared on
		e, p := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		query := m.Rebind("SELECT * FROM items WHERE id = ?")
		columns := func(ctx context.Context) (int, error) {
			row := map[string]any{}
			rows, err := m.Prepared(ctx).QueryxContext(ctx, query, 3)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			if !rows.Next() {
				return 0, errors.Join(errors.New("no row"), rows.Err())
			}
			if err := rows.MapScan(row); err != nil {
				return 0, err
			}
			return len(row), rows.Close()
		}
		if n, err := columns(ctx); err != nil || n != 2 {
			t.Fatalf("columns = %d, %v; want 2", n, err)
		}
		mustExec(t, e, "ALTER TABLE items ADD COLUMN extra1 INTEGER")
		if n, err := columns(ctx); err != nil || n != 3 {
			t.Fatalf("after a DDL, columns = %d, %v; want 3", n, err)
		}
		mustExec(t, e, "ALTER TABLE items ADD COLUMN extra2 INTEGER")
		attempts := 0
		err := m.Tx(ctx, func(ctx context.Context) error {
			attempts++
			n, err := columns(ctx)
			if err == nil && n != 4 {
				err = fmt.Errorf("columns = %d, want 4", n)
			}
			return err
		})
		if err != nil {
			t.Fatalf("after a DDL, in a transaction: %v", err)
		}
		want := 1
		if e.Driver() == "postgres" {
			want = 2
		}
		if attempts != want || p.retries.Load() != int64(want-1) {
			t.Errorf("the transaction ran %d times (%d retries), want %d", attempts, p.retries.Load(), want)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

// A statement the server no longer has (PostgreSQL 26000: DEALLOCATE ALL,
// or a pooler that moved the session) is prepared again.
func TestPreparedStatementGone(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		if cfg.Driver != "postgres" {
			t.Skip("PostgreSQL: DEALLOCATE ALL drops the session's prepared statements")
		}
		cfg.MaxOpenConns = 1
		e, _ := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		if n, err := note(ctx, m.Prepared(ctx), 4); err != nil || n != "n4" {
			t.Fatalf("note 4 = %q, %v", n, err)
		}
		if err := m.Conn(ctx, func(ctx context.Context) error {
			_, err := m.Q(ctx).ExecContext(ctx, "DEALLOCATE ALL")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n, err := note(ctx, m.Prepared(ctx), 4); err != nil || n != "n4" {
			t.Fatalf("after DEALLOCATE ALL, note 4 = %q, %v", n, err)
		}
		if _, prepared, _ := session.StmtCacheCounts(m); prepared != 2 {
			t.Errorf("prepared %d times, want 2", prepared)
		}
	})
}

// In a Conn scope without a transaction statements are sent as they are;
// with the cache off, everywhere; and statements without arguments always.
func TestPreparedRunsPlain(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e, p := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		query := m.Rebind("SELECT note FROM items WHERE id = ?")
		if err := m.Conn(ctx, func(ctx context.Context) error {
			n, err := note(ctx, m.Prepared(ctx), 5)
			if err == nil && n != "n5" {
				err = fmt.Errorf("note 5 = %q", n)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var count int
		if err := m.Prepared(ctx).GetContext(ctx, &count, "SELECT COUNT(*) FROM items"); err != nil || count != 10 {
			t.Fatalf("count = %d, %v", count, err)
		}
		// Q sends statements as they are, unless WithPreparedQueries.
		if _, err := note(ctx, m.Q(ctx), 5); err != nil {
			t.Fatal(err)
		}
		if _, prepared, _ := session.StmtCacheCounts(m); prepared != 0 {
			t.Errorf("%d statements prepared in the cache, want none", prepared)
		}
		if n := p.count(query) + p.count("SELECT COUNT(*) FROM items"); n != 0 && e.Driver() != "mysql" {
			t.Errorf("%d statements prepared, want none", n)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestStatementCacheOff(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		cfg.StatementCache = -1
		e, p := openCounted(t, cfg, dbfx.WithPreparedQueries())
		m := e.Sessions()
		ctx := testContext(t)
		if m.Prepared(ctx) != m.Q(ctx) {
			t.Error("with the cache off, Prepared is not Q")
		}
		for _, q := range []session.Querier{m.Prepared(ctx), m.Q(ctx)} {
			if n, err := note(ctx, q, 6); err != nil || n != "n6" {
				t.Fatalf("note 6 = %q, %v", n, err)
			}
		}
		if err := m.Tx(ctx, func(ctx context.Context) error {
			_, err := note(ctx, m.Prepared(ctx), 6)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n := p.count(m.Rebind("SELECT note FROM items WHERE id = ?")); n != 0 && e.Driver() != "mysql" {
			t.Errorf("prepared %d times with the cache off, want none", n)
		}
		if m.Stats().Statements != 0 {
			t.Errorf("%d statements cached with the cache off", m.Stats().Statements)
		}
	})
}

func TestWithPreparedQueries(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e, p := openCounted(t, cfg, dbfx.WithPreparedQueries())
		m := e.Sessions()
		ctx := testContext(t)
		for range 3 {
			if n, err := note(ctx, m.Q(ctx), 8); err != nil || n != "n8" {
				t.Fatalf("note 8 = %q, %v", n, err)
			}
		}
		if _, prepared, _ := session.StmtCacheCounts(m); prepared != 1 || p.count(m.Rebind("SELECT note FROM items WHERE id = ?")) != 1 {
			t.Errorf("Q's statement was prepared on the pool %d times, want 1", prepared)
		}
		// Named statements bind to ? first, then run prepared too.
		if _, err := m.Q(ctx).NamedExecContext(ctx, "UPDATE items SET note = :note WHERE id = :id",
			map[string]any{"note": "named", "id": 8}); err != nil {
			t.Fatal(err)
		}
		if n, err := note(ctx, m.Q(ctx), 8); err != nil || n != "named" {
			t.Fatalf("note 8 = %q, %v", n, err)
		}
		if _, prepared, _ := session.StmtCacheCounts(m); prepared != 2 {
			t.Errorf("%d statements prepared on the pool, want 2", prepared)
		}
		// A text with more than one statement is sent as it is.
		if e.Driver() == "sqlite3" {
			if _, err := m.Q(ctx).ExecContext(ctx, "UPDATE items SET note = ? WHERE id = 9; UPDATE items SET note = ? WHERE id = 10",
				"nine", "ten"); err != nil {
				t.Fatal(err)
			}
			for id, want := range map[int]string{9: "nine", 10: "ten"} {
				if n, err := note(ctx, m.Q(ctx), id); err != nil || n != want {
					t.Errorf("note %d = %q, %v; want %q", id, n, err, want)
				}
			}
		}
	})
}

// Close closes every cached statement; statements sent after it run as
// they are.
func TestStatementCacheClosedAtClose(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e, _ := openCounted(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		for i := range 3 {
			var n string
			if err := m.Prepared(ctx).GetContext(ctx, &n, m.Rebind(fmt.Sprintf("SELECT note FROM items WHERE id = ? AND %d = %d", i, i)), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if cached, prepared, closed := session.StmtCacheCounts(m); cached != 0 || prepared != 3 || closed != 3 {
			t.Errorf("after Close: cached, prepared, closed = %d, %d, %d; want 0, 3, 3", cached, prepared, closed)
		}
		if n, err := note(ctx, m.Prepared(ctx), 2); err != nil || n != "n2" {
			t.Errorf("after Close, note 2 = %q, %v", n, err)
		}
		if _, prepared, _ := session.StmtCacheCounts(m); prepared != 3 {
			t.Errorf("a statement was prepared after Close")
		}
	})
}
