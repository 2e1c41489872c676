package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// groupPgBouncer: PgBouncer in transaction pooling mode in front of
// pg-primary (scripts/faultdb-pgbouncer.sh).
const groupPgBouncer = "pgbouncer"

// bouncerClients is how many goroutines use an engine at once through
// PgBouncer: eight times its server pool.
const bouncerClients = 32

// bouncerItem is the repository entity of the PgBouncer test.
type bouncerItem struct {
	ID      int64  `db:"id,pk,auto"`
	Owner   int64  `db:"owner"`
	Name    string `db:"name"`
	Version int64  `db:"version,version"`
}

func (bouncerItem) TableName() string { return "items" }

// bouncerSetup starts PgBouncer, creates the test's database and tables on
// pg-primary, and returns the DSN of that database through PgBouncer, a
// direct pool on it, and PgBouncer's server pool size.
func bouncerSetup(t *testing.T) (string, *sql.DB, int) {
	t.Helper()
	s := begin(t)
	env := s.up(t, groupPgBouncer)
	bouncer := env["ENGINEKIT_FAULT_PGBOUNCER_DSN"]
	poolSize, err := strconv.Atoi(env["ENGINEKIT_FAULT_PGBOUNCER_POOL_SIZE"])
	if bouncer == "" || err != nil {
		t.Fatalf("faultdb up %s: %v (%v)", groupPgBouncer, env, err)
	}
	dsn := s.database(t, "postgres")
	primary := direct(t, "postgres", dsn)
	createTables(t, primary)
	for _, q := range []string{
		"CREATE TABLE items (id BIGSERIAL PRIMARY KEY, owner BIGINT NOT NULL, name TEXT NOT NULL, version BIGINT NOT NULL)",
		"CREATE TABLE acc (id INT PRIMARY KEY, n INT NOT NULL)",
		"INSERT INTO acc VALUES (1, 0), (2, 0)",
	} {
		if _, err := primary.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return withPGDatabase(t, bouncer, pgDatabaseName(t, dsn)), primary, poolSize
}

// TestPgBouncerTransactionPooling runs the session and repository
// behaviour through PgBouncer in transaction pooling mode, with 32
// clients on its 4 server connections: first without
// Config.TransactionPooling, where statements with arguments outside a
// transaction fail or meet another client's statement, then with it,
// where everything works.
func TestPgBouncerTransactionPooling(t *testing.T) {
	bouncer, primary, poolSize := bouncerSetup(t)
	if poolSize >= bouncerClients {
		t.Fatalf("PgBouncer's pool (%d) should be smaller than the clients (%d)", poolSize, bouncerClients)
	}
	cfg := dbfx.Config{DSN: bouncer, MaxOpenConns: bouncerClients, MaxIdleConns: bouncerClients,
		AcquireTimeout: 10 * time.Second, ConnectTimeout: 10 * time.Second}

	before := bouncerWithout(t, cfg)

	cfg.TransactionPooling = true
	e := openEngine(t, cfg)
	m := e.Sessions()
	tb := newTable(fmt.Sprintf("pgbouncer 1.18 transaction pooling (server pool %d, %d clients)", poolSize, bouncerClients))
	ran := map[string]int{}
	var mu sync.Mutex
	count := func(what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		ran[what]++
		tb.add(err)
		if err != nil {
			t.Errorf("%s through PgBouncer: %v", what, err)
		}
	}

	items, err := repo.New[bouncerItem, int64](m)
	if err != nil {
		t.Fatal(err)
	}
	// A RequiresNew scope holds a server connection (its outer
	// transaction's) while it waits for another: as many of them at once
	// as PgBouncer has server connections would wait for ever. Half the
	// pool may run them at once.
	requiresNew := make(chan struct{}, poolSize/2)
	var wg sync.WaitGroup
	for g := range bouncerClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				bouncerWork(ctx, m, items, requiresNew, g, i, count)
				cancel()
			}
		}()
	}
	wg.Wait()

	// A real serialization failure (40001) and a real deadlock (40P01)
	// through PgBouncer, each retried by its scope.
	retries := map[string]int{}
	for _, fault := range []string{"40001", "40P01"} {
		attempts, err := bouncerConflict(t, m, fault)
		count("retry after "+fault, err)
		// 3: one retried. 4 happens: under SERIALIZABLE a retry that read
		// before the winner committed meets it again; two deadlock checks
		// running at once may each end their own transaction.
		if err == nil && attempts < 3 {
			t.Errorf("%s: the two transactions took %d attempts between them, want at least 3 (one retried)", fault, attempts)
		}
		retries[fault] = attempts - 2
	}

	// Page: the items of one owner, 7 at a time, in order.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = m.Tx(ctx, func(ctx context.Context) error {
		vs := make([]bouncerItem, 23)
		for i := range vs {
			vs[i] = bouncerItem{Owner: 999, Name: fmt.Sprintf("p%02d", i)}
		}
		return items.InsertMany(ctx, vs)
	})
	count("repo InsertMany", err)
	var paged []string
	req := repo.PageRequest{Limit: 7}
	for pages := 0; ; pages++ {
		p, err := items.Page(ctx, req, repo.Where(repo.Eq("owner", 999)), repo.OrderBy("name", false))
		count("repo Page", err)
		if err != nil || pages > 10 {
			break
		}
		for _, it := range p.Items {
			paged = append(paged, it.Name)
		}
		if p.Next == "" {
			break
		}
		req.After = p.Next
	}
	if len(paged) != 23 || !slices.IsSorted(paged) {
		t.Errorf("Page through PgBouncer read %d items (%v), want 23 in order", len(paged), paged)
	}

	// Nothing was lost: every committed write of bouncerWork is there.
	var fa, fb, kept int
	if err := primary.QueryRow("SELECT (SELECT COUNT(*) FROM fa), (SELECT COUNT(*) FROM fb), (SELECT COUNT(*) FROM items WHERE owner < 999)").Scan(&fa, &fb, &kept); err != nil {
		t.Fatal(err)
	}
	if want := bouncerClients * 5; fa != want || fb != want || kept != want {
		t.Errorf("after the load: fa %d, fb %d, items %d; want %d each", fa, fb, kept, want)
	}

	// A Conn scope keeps one connection to PgBouncer, not to a server:
	// while another client's transaction holds the server connection its
	// first statement ran on, its next statement runs on another one.
	var pids [2]int
	err = m.Conn(ctx, func(ctx context.Context) error {
		q := m.Q(ctx)
		if err := q.GetContext(ctx, &pids[0], "SELECT pg_backend_pid()"); err != nil {
			return err
		}
		// PgBouncer hands out the server connection released last: the
		// other client's transaction takes the one just used.
		return m.Tx(ctx, func(ctx context.Context) error {
			var held int
			if err := m.Q(ctx).GetContext(ctx, &held, "SELECT pg_backend_pid()"); err != nil {
				return err
			}
			if err := q.GetContext(ctx, &pids[1], "SELECT pg_backend_pid()"); err != nil {
				return err
			}
			if held == pids[1] {
				return fmt.Errorf("the Conn scope's statement ran on server process %d, which a transaction holds", held)
			}
			return nil
		}, session.Propagation(session.RequiresNew))
	})
	count("Conn scope without server affinity", err)
	if err == nil && pids[0] == pids[1] {
		t.Errorf("a Conn scope's two statements ran on server process %d both, though another client held it in between", pids[0])
	}

	// binary_parameters sends a []byte argument in binary: right for bytea,
	// text and json, refused for jsonb (whose binary form starts with a
	// version byte); a string is sent as text.
	var doc string
	if err := m.Q(ctx).GetContext(ctx, &doc, "SELECT $1::jsonb::text", `{"a": 1}`); err != nil || doc != `{"a": 1}` {
		t.Errorf("a jsonb argument given as a string: %q, %v", doc, err)
	}
	if err := m.Q(ctx).GetContext(ctx, &doc, "SELECT $1::jsonb::text", []byte(`{"a": 1}`)); err == nil || !strings.Contains(err.Error(), "jsonb version") {
		t.Errorf("a jsonb argument given as []byte: %q, %v; want PostgreSQL's unsupported jsonb version", doc, err)
	}

	tb.note("without TransactionPooling: %s", before)
	var names []string
	for _, k := range slices.Sorted(maps.Keys(ran)) {
		names = append(names, fmt.Sprintf("%s %d", k, ran[k]))
	}
	tb.note("ran through it with TransactionPooling: %s", strings.Join(names, ", "))
	tb.note("retries: 40001 %d, 40P01 %d", retries["40001"], retries["40P01"])
	tb.log(t)
}

// bouncerWithout runs statements with arguments outside any transaction,
// repository reads (prepared, cached statements) and plain ones, from 32
// goroutines through PgBouncer on an engine without TransactionPooling: the
// failure is shown. It returns what happened, for the table.
func bouncerWithout(t *testing.T, cfg dbfx.Config) string {
	t.Helper()
	e := openEngine(t, cfg)
	m := e.Sessions()
	items, err := repo.New[bouncerItem, int64](m)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	codes := map[string]int{}
	var statements, wrong int
	var wg sync.WaitGroup
	for g := range bouncerClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				// Each goroutine's own statement text: a Bind that reaches
				// another client's unnamed statement answers another sum.
				var got int64
				err := m.Q(ctx).GetContext(ctx, &got, fmt.Sprintf("SELECT $1::bigint + %d", g), int64(i))
				bad := err == nil && got != int64(i+g)
				var rerr error
				if i%2 == 0 {
					_, rerr = items.Get(ctx, int64(g*100+i))
					if errors.Is(rerr, repo.ErrNotFound) {
						rerr = nil
					}
				}
				cancel()
				mu.Lock()
				statements += 1 + (1 - i%2)
				if bad {
					wrong++
				}
				for _, err := range []error{err, rerr} {
					if err != nil {
						codes[pqCode(err)]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	failed := 0
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(codes)) {
		failed += codes[c]
		parts = append(parts, fmt.Sprintf("%s:%d", c, codes[c]))
	}
	// 26000: prepared statement "..." does not exist (a cached statement,
	// or lib/pq's unnamed one, met another server connection); 42P05:
	// prepared statement "..." already exists (a cached statement
	// prepared on a server connection where another client had prepared
	// its own of that name); 08P01: a Bind met another client's unnamed
	// statement of another shape. Which of them a run meets depends on
	// how PgBouncer hands out its server connections.
	if codes["26000"]+codes["42P05"] == 0 || failed+wrong == 0 {
		t.Errorf("without TransactionPooling, %d of %d statements failed (%v) and %d answered wrong: want failures with 26000 (prepared statement does not exist) or 42P05 (already exists)",
			failed, statements, codes, wrong)
	}
	return fmt.Sprintf("%d of %d statements failed (%s), %d answered another client's statement",
		failed, statements, strings.Join(parts, ", "), wrong)
}

// pqCode is the SQLSTATE of a lib/pq error, or "other".
func pqCode(err error) string {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	return "other"
}

// bouncerWork is one round of client g's work through PgBouncer: a
// statement with arguments outside a transaction, repository CRUD outside
// and inside a transaction, a Nested scope that fails inside one that
// commits, a RequiresNew scope that commits inside one that rolls back,
// and a read-only scope that reads and refuses a write.
func bouncerWork(ctx context.Context, m *session.Manager, items *repo.Repository[bouncerItem, int64], requiresNew chan struct{}, g, i int, count func(string, error)) {
	id := int64(g*1000 + i)
	var got int64
	err := m.Q(ctx).GetContext(ctx, &got, fmt.Sprintf("SELECT $1::bigint + %d", g), id)
	if err == nil && got != id+int64(g) {
		err = fmt.Errorf("SELECT $1 + %d with %d answered %d: another statement's", g, id, got)
	}
	count("statement with arguments outside a transaction", err)

	// CRUD outside a transaction: each statement on its own.
	it := bouncerItem{Owner: int64(g), Name: "x"}
	err = items.Insert(ctx, &it)
	count("repo Insert", err)
	if err == nil {
		it.Name = "y"
		err = items.Update(ctx, &it)
		count("repo Update", err)
		back, err := items.Get(ctx, it.ID)
		if err == nil && (back.Name != "y" || back.Version != it.Version) {
			err = fmt.Errorf("read back %+v, want %+v", back, it)
		}
		count("repo Get", err)
		count("repo Delete", items.Delete(ctx, it.ID))
	}

	// Nested: the savepoint's failure is undone, the outer commits.
	errInner := errors.New("inner fails")
	err = m.Tx(ctx, func(ctx context.Context) error {
		if err := insert(ctx, m, id, ""); err != nil {
			return err
		}
		if err := m.Tx(ctx, func(ctx context.Context) error {
			if _, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO fa (id) VALUES ($1)", -id-1); err != nil {
				return err
			}
			return errInner
		}, session.Propagation(session.Nested)); !errors.Is(err, errInner) {
			return fmt.Errorf("nested scope returned %v, want its own error", err)
		}
		kept := bouncerItem{Owner: int64(g), Name: "kept"}
		return items.Insert(ctx, &kept)
	})
	count("Tx with a failed Nested savepoint", err)

	// RequiresNew commits on its own although the outer rolls back.
	errOuter := errors.New("outer fails")
	var innerErr error
	requiresNew <- struct{}{}
	err = m.Tx(ctx, func(ctx context.Context) error {
		if _, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO fb (id) VALUES ($1)", -id-2); err != nil {
			return err
		}
		innerErr = m.Tx(ctx, func(ctx context.Context) error {
			_, err := m.Q(ctx).ExecContext(ctx, "UPDATE acc SET n = n WHERE id = $1", 1+g%2)
			return err
		}, session.Propagation(session.RequiresNew), session.NoRetry())
		return errOuter
	})
	<-requiresNew
	if errors.Is(err, errOuter) {
		err = innerErr
	} else if err == nil {
		err = errors.New("the outer scope committed")
	}
	count("RequiresNew inside a Tx that rolls back", err)

	// Read-only: reads, and a write is refused.
	err = m.ReadOnly(ctx, func(ctx context.Context) error {
		var n int
		if err := m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM fa WHERE id = $1", id); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("read-only scope sees %d rows of %d, want 1", n, id)
		}
		return nil
	})
	count("ReadOnly read", err)
	err = m.ReadOnly(ctx, func(ctx context.Context) error {
		_, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO fa (id) VALUES ($1)", -id-3)
		return err
	})
	if errors.Is(err, session.ErrReadOnly) {
		err = nil
	} else {
		err = fmt.Errorf("a write in a read-only scope returned %v, want ErrReadOnly", err)
	}
	count("ReadOnly refuses a write", err)
}

// bouncerConflict makes two transactions conflict for real through
// PgBouncer, each on its own server connection: for 40001 both read the
// two rows of acc under SERIALIZABLE and then each raises one (write
// skew); for 40P01 each locks one row and then wants the other's (at READ
// COMMITTED). Each
// waits for the other before its second step, on its first attempt only,
// so that exactly one fails and its retry commits. It returns the
// attempts of both.
func bouncerConflict(t *testing.T, m *session.Manager, fault string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var attempts atomic.Int32
	var ready sync.WaitGroup
	ready.Add(2)
	errs := make(chan error, 2)
	var seen sync.Map // SQLSTATEs met by the attempts
	// The deadlock at READ COMMITTED: under SERIALIZABLE the retried
	// victim would meet the winner's commit with a 40001 of its own.
	level := sql.LevelReadCommitted
	if fault == "40001" {
		level = sql.LevelSerializable
	}
	for side := range 2 {
		go func() {
			first := true
			errs <- m.Tx(ctx, func(ctx context.Context) error {
				attempts.Add(1)
				q := m.Q(ctx)
				var err error
				if fault == "40001" {
					var sum int
					err = q.GetContext(ctx, &sum, "SELECT SUM(n) FROM acc WHERE id IN ($1, $2)", 1, 2)
				} else {
					_, err = q.ExecContext(ctx, "UPDATE acc SET n = n + 1 WHERE id = $1", 1+side)
				}
				if err != nil {
					seen.Store(pqCode(err), true)
					return err
				}
				if first {
					first = false
					ready.Done()
					ready.Wait()
				}
				if fault == "40001" {
					_, err = q.ExecContext(ctx, "UPDATE acc SET n = n + 1 WHERE id = $1", 1+side)
				} else {
					_, err = q.ExecContext(ctx, "UPDATE acc SET n = n + 1 WHERE id = $1", 2-side)
				}
				if err != nil {
					seen.Store(pqCode(err), true)
				}
				return err
			}, session.Isolation(level), session.Label("conflict"))
		}()
	}
	var err error
	for range 2 {
		err = errors.Join(err, <-errs)
	}
	// A 40001 may come at COMMIT, which fn does not see: the retry (3
	// attempts) shows it; a deadlock comes on the UPDATE.
	if _, ok := seen.Load(fault); !ok && err == nil && (fault == "40P01" || attempts.Load() < 3) {
		var codes []string
		seen.Range(func(k, _ any) bool { codes = append(codes, k.(string)); return true })
		t.Errorf("the conflict met %v, not %s", codes, fault)
	}
	return int(attempts.Load()), err
}
