package connwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/monitor"
)

// tracer is a recorder that is also a monitor.QueryTracer: QueryStart
// opens a span, put in the ctx it returns, which the Query call that
// ends the statement must find there and close.
type tracer struct {
	recorder
	mu      sync.Mutex
	spans   []*span
	bad     []string
	caller  any                                             // when set, the value of callerKey every QueryStart must see
	onStart func(ctx context.Context, e monitor.QueryStart) // when set, called by QueryStart
	onEnd   func(ctx context.Context, e monitor.QueryEvent) // when set, called by Query
}

var _ monitor.QueryTracer = (*tracer)(nil)

type (
	spanKey   struct{}
	callerKey struct{}
)

type span struct {
	op    monitor.Op
	sql   string
	ended int
}

func newTracer() *tracer {
	return &tracer{recorder: recorder{leaks: make(chan monitor.LeakEvent, 64)}}
}

func (t *tracer) QueryStart(ctx context.Context, e monitor.QueryStart) context.Context {
	s := &span{op: e.Op, sql: e.SQL}
	t.mu.Lock()
	t.spans = append(t.spans, s)
	if t.caller != nil && ctx.Value(callerKey{}) != t.caller {
		t.bad = append(t.bad, fmt.Sprintf("QueryStart(%s %q) was not given the caller's ctx", e.Op, e.SQL))
	}
	t.mu.Unlock()
	if t.onStart != nil {
		t.onStart(ctx, e)
	}
	return context.WithValue(ctx, spanKey{}, s)
}

func (t *tracer) Query(ctx context.Context, e monitor.QueryEvent) {
	t.recorder.Query(ctx, e)
	s, _ := ctx.Value(spanKey{}).(*span)
	t.mu.Lock()
	switch {
	case s == nil:
		t.bad = append(t.bad, fmt.Sprintf("Query(%s %q) without the ctx of a QueryStart", e.Op, e.SQL))
	case s.op != e.Op || s.sql != e.SQL:
		t.bad = append(t.bad, fmt.Sprintf("Query(%s %q) with the ctx of QueryStart(%s %q)", e.Op, e.SQL, s.op, s.sql))
	default:
		s.ended++
	}
	t.mu.Unlock()
	if t.onEnd != nil {
		t.onEnd(ctx, e)
	}
}

// check fails the test unless every Query had the ctx of its own
// QueryStart and every QueryStart was ended by exactly one Query.
func (t *tracer) check(tb testing.TB) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.bad {
		tb.Error(b)
	}
	for _, s := range t.spans {
		if s.ended != 1 {
			tb.Errorf("QueryStart(%s %q) ended by %d Query calls, want 1", s.op, s.sql, s.ended)
		}
	}
}

// ops are the operations the tracer saw start.
func (t *tracer) ops() map[monitor.Op]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ops := map[monitor.Op]int{}
	for _, s := range t.spans {
		ops[s.op]++
	}
	return ops
}

// TestQueryTracer runs every kind of statement on a real database through
// a wrapped pool whose monitor traces: QueryStart is given the caller's
// ctx and runs before the statement is sent (an INSERT's row is not there
// yet), and the Query call that ends the statement gets the ctx
// QueryStart returned, once per QueryStart, failed statements included.
func TestQueryTracer(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		bare := openBare(t, cfg)
		ctx := testContext(t)
		if _, err := bare.ExecContext(ctx, "CREATE TABLE traced (id INTEGER PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		tr := newTracer()
		tr.caller = "caller"
		count := func() int {
			var n int
			if err := bare.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM traced").Scan(&n); err != nil {
				t.Errorf("count: %v", err)
			}
			return n
		}
		var before, after []int
		tr.onStart = func(_ context.Context, e monitor.QueryStart) {
			if e.Op == monitor.OpExec && strings.HasPrefix(e.SQL, "INSERT INTO traced") {
				before = append(before, count())
			}
		}
		tr.onEnd = func(_ context.Context, e monitor.QueryEvent) {
			if e.Op == monitor.OpExec && strings.HasPrefix(e.SQL, "INSERT INTO traced") {
				after = append(after, count())
			}
		}
		db, _ := openWrapped(t, cfg, connwrap.Options{DB: "traced", Monitor: tr})
		cctx := context.WithValue(ctx, callerKey{}, "caller")
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		_, err := db.ExecContext(cctx, db.Rebind("INSERT INTO traced (id) VALUES (?)"), 1)
		must("insert", err)
		var n int
		must("query", db.QueryRowContext(cctx, db.Rebind("SELECT COUNT(*) FROM traced WHERE id >= ?"), 0).Scan(&n))
		if _, err := db.ExecContext(cctx, "SELECT * FROM no_such_table"); err == nil {
			t.Error("a statement on a missing table succeeded")
		}
		st, err := db.PrepareContext(cctx, db.Rebind("SELECT id FROM traced WHERE id = ?"))
		must("prepare", err)
		must("stmt query", st.QueryRowContext(cctx, 1).Scan(&n))
		must("stmt close", st.Close())
		if cfg.Driver == "mysql" {
			// The driver declines (driver.ErrSkip) to write the arguments
			// into a statement whose ? marks it miscounts: database/sql
			// prepares it and runs it prepared, or fails.
			must("declined query", db.QueryRowContext(cctx, "SELECT COUNT(*) FROM traced WHERE id >= ? OR 'x?' = ''", 0).Scan(&n))
			if _, err := db.ExecContext(cctx, "UPDATE traced SET id = id WHERE nothing = ? OR 'x?' = ''", 0); err == nil {
				t.Error("a declined statement naming a missing column succeeded")
			}
			if _, err := db.ExecContext(cctx, "UPDATE traced SET id = id WHERE id = ? OR id = ?", 0); err == nil {
				t.Error("a declined statement short of an argument succeeded")
			}
		}
		tx, err := db.BeginTx(cctx, nil)
		must("begin", err)
		_, err = tx.ExecContext(cctx, "INSERT INTO traced (id) VALUES (2)")
		must("insert in tx", err)
		rows, err := tx.QueryContext(cctx, "SELECT id FROM traced ORDER BY id")
		must("query in tx", err)
		for rows.Next() {
		}
		must("rows", rows.Err())
		must("commit", tx.Commit())
		tx, err = db.BeginTx(cctx, nil)
		must("begin", err)
		must("rollback", tx.Rollback())

		tr.check(t)
		ops := tr.ops()
		for _, op := range []monitor.Op{monitor.OpExec, monitor.OpQuery, monitor.OpPrepare, monitor.OpBegin, monitor.OpCommit, monitor.OpRollback} {
			if ops[op] == 0 {
				t.Errorf("no QueryStart for %s (saw %v)", op, ops)
			}
		}
		// The second INSERT is in a transaction: its row is not seen from
		// another connection until the commit.
		if fmt.Sprint(before) != "[0 1]" || fmt.Sprint(after) != "[1 1]" {
			t.Errorf("rows in the table when the INSERTs started %v and ended %v, want [0 1] and [1 1]", before, after)
		}
	})
}

// TestPoolEvents: each connection opened is a PoolConnected event; one
// that fails to open is a PoolConnectFailed event carrying the error the
// caller gets, on a real driver (a server that is not there) and on a
// connector that fails.
func TestPoolEvents(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		rec := newRecorder()
		db, _ := openWrapped(t, cfg, connwrap.Options{DB: "events", Monitor: rec})
		ctx := testContext(t)
		if cfg.Driver != "sqlite3" {
			db.SetMaxIdleConns(2)
			c1, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c1.Close()
			c2.Close()
		} else if err := db.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		want := db.Stats().OpenConnections
		evs := rec.poolEvents()
		if len(evs) != want || want == 0 {
			t.Fatalf("%d pool events for %d connections opened: %+v", len(evs), want, evs)
		}
		for _, ev := range evs {
			if ev.Kind != monitor.PoolConnected || ev.DB != "events" || ev.Err != nil || ev.Duration <= 0 {
				t.Errorf("pool event %+v, want a PoolConnected of engine events with a duration", ev)
			}
		}
	})
	t.Run("closed port", func(t *testing.T) {
		cfg := dbfx.Config{Driver: "postgres", DSN: "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=10"}
		rec := newRecorder()
		db, _ := openWrapped(t, cfg, connwrap.Options{DB: "nowhere", Monitor: rec})
		err := db.PingContext(testContext(t))
		if err == nil {
			t.Fatal("a ping to a closed port succeeded")
		}
		evs := rec.poolEvents()
		if len(evs) != 1 || evs[0].Kind != monitor.PoolConnectFailed || evs[0].DB != "nowhere" || !errors.Is(err, evs[0].Err) {
			t.Fatalf("pool events %+v for the error %v: want one PoolConnectFailed with that error", evs, err)
		}
	})
	t.Run("failing connector", func(t *testing.T) {
		rec := newRecorder()
		errDown := errors.New("the database is down")
		db := sql.OpenDB(connwrap.Wrap(failingConnector{errDown}, connwrap.Options{DB: "down", Monitor: rec}))
		defer db.Close()
		err := db.PingContext(testContext(t))
		if !errors.Is(err, errDown) {
			t.Fatalf("ping: %v, want %v", err, errDown)
		}
		evs := rec.poolEvents()
		if len(evs) != 1 || evs[0].Kind != monitor.PoolConnectFailed || !errors.Is(evs[0].Err, errDown) {
			t.Fatalf("pool events %+v: want one PoolConnectFailed with %v", evs, errDown)
		}
	})
	t.Run("unknown database", func(t *testing.T) {
		// The server refuses: its error is tagged with its class, as a
		// statement's would be.
		cfg := fxtest.Postgres(t)
		u, err := url.Parse(cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/no_such_database"
		cfg.DSN = u.String()
		rec := newRecorder()
		db, _ := openWrapped(t, cfg, connwrap.Options{DB: "unknown", Monitor: rec})
		err = db.PingContext(testContext(t))
		if driverCode(err) != "3D000" {
			t.Fatalf("ping: %v, want invalid_catalog_name (3D000)", err)
		}
		tagged(t, "unknown database", err)
		evs := rec.poolEvents()
		if len(evs) != 1 || evs[0].Kind != monitor.PoolConnectFailed || !errors.Is(err, evs[0].Err) {
			t.Fatalf("pool events %+v for the error %v: want one PoolConnectFailed with that error", evs, err)
		}
	})
}

type failingConnector struct{ err error }

func (c failingConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }
func (c failingConnector) Driver() driver.Driver                        { return nil }
