package prommon_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/monitor/prommon"
	"github.com/enginekit/enginekit/session"
)

// TestCounts runs known statements and finds each counted once in the
// duration histogram, by operation and error type, with the database's
// system and namespace.
func TestCounts(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		reg := prometheus.NewRegistry()
		prom, err := prommon.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		e := openEngine(t, cfg, dbfx.WithMonitor(prom))
		ctx := testContext(t)
		db := e.DB()
		mustExec(t, e, "CREATE TABLE m (id INTEGER PRIMARY KEY, v VARCHAR(32) NOT NULL)")
		for i := range 5 {
			mustExec(t, e, "INSERT INTO m (id, v) VALUES ("+string(rune('1'+i))+", 'x')")
		}
		for range 3 {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM m").Scan(&n); err != nil || n != 5 {
				t.Fatalf("count = %d, %v", n, err)
			}
		}
		// A statement prepared on a pinned connection: one prepare, two queries.
		conn, err := db.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stmt, err := conn.PrepareContext(ctx, db.Rebind("SELECT v FROM m WHERE id = ?"))
		if err != nil {
			t.Fatal(err)
		}
		for id := 1; id <= 2; id++ {
			var v string
			if err := stmt.QueryRowContext(ctx, id).Scan(&v); err != nil {
				t.Fatal(err)
			}
		}
		stmt.Close()
		conn.Close()
		// One transaction committed, one rolled back.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE m SET v = 'y' WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		// And two statements that fail: a duplicate key, a missing table.
		if _, err := db.ExecContext(ctx, "INSERT INTO m (id, v) VALUES (1, 'x')"); err == nil {
			t.Fatal("a duplicate key was inserted")
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO no_such_table (id) VALUES (1)"); err == nil {
			t.Fatal("insert into a missing table succeeded")
		}
		// A missing table is of no class of enginekit's: its error type is
		// PostgreSQL's SQLSTATE, or the driver's error type.
		missing := map[string]string{"postgres": "42P01", "mysql": "*mysql.MySQLError", "sqlite3": "sqlite3.Error"}[e.Driver()]

		tests := []struct {
			op, errType string
			want        uint64
		}{
			{"CREATE", "", 1},
			{"INSERT", "", 5},
			{"UPDATE", "", 1},
			{"SELECT", "", 5}, // 3 counts, 2 reads of the prepared statement
			{"PREPARE", "", 1},
			{"BEGIN", "", 2},
			{"COMMIT", "", 1},
			{"ROLLBACK", "", 1},
			{"INSERT", "duplicate", 1},
			{"INSERT", missing, 1},
			{"SELECT", missing, 0},
		}
		for _, tt := range tests {
			if got := opCount(t, reg, e.Name(), tt.op, tt.errType); got != tt.want {
				t.Errorf("%s/%s count = %d, want %d", tt.op, tt.errType, got, tt.want)
			}
		}
		system := map[string]string{"postgres": "postgresql", "mysql": "mysql", "sqlite3": "sqlite"}[e.Driver()]
		var namespace string
		switch e.Driver() {
		case "postgres":
			namespace = queryString(t, e, "SELECT current_database()")
		case "mysql":
			namespace = queryString(t, e, "SELECT DATABASE()")
		default:
			namespace, _, _ = strings.Cut(cfg.DSN, "?")
		}
		if sample(t, reg, "db_client_operation_duration_seconds", map[string]string{"engine": e.Name(),
			"db_system_name": system, "db_namespace": namespace, "db_operation_name": "CREATE"}) == nil {
			t.Errorf("no CREATE series with db_system_name %s and db_namespace %s", system, namespace)
		}
		// Pool figures are read at scrape time.
		if got := counter(t, reg, "db_client_connection_max", map[string]string{"engine": e.Name()}); got < 1 {
			t.Errorf("db_client_connection_max = %v, want at least 1", got)
		}
		if got := counter(t, reg, "db_client_connection_count", map[string]string{"engine": e.Name(), "state": "idle"}); got < 1 {
			t.Errorf("idle connections = %v, want at least 1", got)
		}
	})
}

// TestTransactions counts session transactions by outcome and
// their retries, under the scope's label.
func TestTransactions(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		reg := prometheus.NewRegistry()
		prom, err := prommon.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		e := openEngine(t, cfg, dbfx.WithMonitor(monitor.Multi(prom, rec)))
		mustExec(t, e, "CREATE TABLE m (id INTEGER PRIMARY KEY)")
		ctx := testContext(t)
		m := e.Sessions()
		insert := func(ctx context.Context, id int) error {
			q := m.Q(ctx)
			_, err := q.ExecContext(ctx, q.Rebind("INSERT INTO m (id) VALUES (?)"), id)
			return err
		}
		// Committed at the second attempt.
		attempts := 0
		err = m.Tx(ctx, func(ctx context.Context) error {
			attempts++
			if err := insert(ctx, attempts); err != nil {
				return err
			}
			if attempts == 1 {
				return errAgain
			}
			return nil
		}, session.Label("transfer"), session.Retry(session.RetryPolicy{
			MaxAttempts: 2, RetryOn: func(err error) bool { return errors.Is(err, errAgain) },
		}))
		if err != nil {
			t.Fatalf("Tx: %v", err)
		}
		// Rolled back.
		err = m.Tx(ctx, func(ctx context.Context) error { return errors.New("no") }, session.Label("transfer"))
		if err == nil {
			t.Fatal("Tx returned nil")
		}
		labels := func(outcome string) map[string]string {
			return map[string]string{"engine": e.Name(), "label": "transfer", "outcome": outcome}
		}
		for _, tt := range []struct {
			outcome string
			want    float64
		}{{"committed", 1}, {"rolled_back", 2}, {"failed", 0}} {
			if got := counter(t, reg, "db_client_transactions_total", labels(tt.outcome)); got != tt.want {
				t.Errorf("transactions %s = %v, want %v", tt.outcome, got, tt.want)
			}
		}
		if got := counter(t, reg, "db_client_transaction_retries_total",
			map[string]string{"engine": e.Name(), "label": "transfer"}); got != 1 {
			t.Errorf("retries = %v, want 1", got)
		}
		var kinds []string
		for _, ev := range rec.txEvents() {
			kinds = append(kinds, string(ev.Kind)+"#"+string(rune('0'+ev.Attempt)))
			if ev.DB != e.Name() || ev.Label != "transfer" {
				t.Errorf("event %+v: want DB %q and label transfer", ev, e.Name())
			}
		}
		want := []string{"begin#1", "rollback#1", "retry#1", "begin#2", "commit#2", "begin#1", "rollback#1"}
		if len(kinds) != len(want) {
			t.Fatalf("events = %v, want %v", kinds, want)
		}
		for i := range want {
			if kinds[i] != want[i] {
				t.Fatalf("events = %v, want %v", kinds, want)
			}
		}
	})
}

// TestTwoEnginesOneRegistry runs two engines of one Fx app on Module and
// one *prometheus.Registry, supplied as itself: no duplicate registration,
// series told apart by engine.
func TestTwoEnginesOneRegistry(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		reg := prometheus.NewRegistry()
		var first, second *dbfx.Engine
		app := fxtest.New(t,
			fx.Supply(cfg, reg),
			dbfx.Named("second", fxtest.SQLite(t)),
			prommon.Module,
			fx.Populate(&first),
			fx.Populate(fx.Annotate(&second, fx.ParamTags(`name:"second"`))),
		)
		app.RequireStart()
		ctx := testContext(t)
		for _, e := range []*dbfx.Engine{first, second} {
			if _, err := e.DB().ExecContext(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := second.DB().ExecContext(ctx, "SELECT 2"); err != nil {
			t.Fatal(err)
		}
		if got := opCount(t, reg, "primary", "SELECT", ""); got != 1 {
			t.Errorf("primary exec count = %d, want 1", got)
		}
		if got := opCount(t, reg, "second", "SELECT", ""); got != 2 {
			t.Errorf("second exec count = %d, want 2", got)
		}
		for _, name := range []string{"primary", "second"} {
			if sample(t, reg, "db_client_connection_max", map[string]string{"engine": name}) == nil {
				t.Errorf("no pool figures for engine %s", name)
			}
		}
		app.RequireStop()
		// Closed engines leave the scrapes.
		if sample(t, reg, "db_client_connection_max", map[string]string{"engine": "second"}) != nil {
			t.Error("a closed engine's pool is still scraped")
		}
	})
}

// TestNewTwice shares the metrics of the first registration.
func TestNewTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := prommon.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := prommon.New(reg)
	if err != nil {
		t.Fatalf("second New: %v", err)
	}
	ctx := context.Background()
	a.Query(ctx, monitor.QueryEvent{DB: "x", Op: monitor.OpExec, SQL: "SELECT 1"})
	b.Query(ctx, monitor.QueryEvent{DB: "x", Op: monitor.OpExec, SQL: "SELECT 1", Err: sql.ErrConnDone})
	b.Query(ctx, monitor.QueryEvent{DB: "x", Op: monitor.OpExec, SQL: "SELECT 1"})
	if got := opCount(t, reg, "x", "SELECT", ""); got != 2 {
		t.Errorf("ok count = %d, want 2", got)
	}
	if got := opCount(t, reg, "x", "SELECT", "_OTHER"); got != 1 {
		t.Errorf("error count = %d, want 1", got)
	}
	// Two sources under one name add up.
	r1 := a.AddStatsSource("x", func() monitor.PoolStats { return monitor.PoolStats{MaxOpen: 2, Leaks: 1} })
	r2 := b.AddStatsSource("x", func() monitor.PoolStats { return monitor.PoolStats{MaxOpen: 3} })
	if got := counter(t, reg, "db_client_connection_max", map[string]string{"engine": "x"}); got != 5 {
		t.Errorf("max = %v, want 5", got)
	}
	if got := counter(t, reg, "db_client_connection_leaks_total", map[string]string{"engine": "x"}); got != 1 {
		t.Errorf("leaks = %v, want 1", got)
	}
	r1()
	r1() // removing twice is harmless
	r2()
	if sample(t, reg, "db_client_connection_max", map[string]string{"engine": "x"}) != nil {
		t.Error("removed sources are still scraped")
	}
	if _, err := prommon.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// TestLeaksCounted holds a connection past the leak threshold and finds
// it in db_client_connection_leaks_total.
func TestLeaksCounted(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		reg := prometheus.NewRegistry()
		prom, err := prommon.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		leaks := make(leakWatcher, 1)
		cfg.LeakThreshold = time.Millisecond
		e := openEngine(t, cfg, dbfx.WithMonitor(monitor.Multi(prom, leaks)))
		ctx := testContext(t)
		conn, err := e.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-leaks: // counted before it is reported
		case <-ctx.Done():
			t.Fatal("no leak reported")
		}
		if got := counter(t, reg, "db_client_connection_leaks_total", map[string]string{"engine": e.Name()}); got < 1 {
			t.Errorf("db_client_connection_leaks_total = %v, want at least 1", got)
		}
	})
}

// leakWatcher is a monitor that passes leak reports on.
type leakWatcher chan monitor.LeakEvent

func (leakWatcher) Query(context.Context, monitor.QueryEvent) {}
func (leakWatcher) Tx(context.Context, monitor.TxEvent)       {}

func (w leakWatcher) Leak(e monitor.LeakEvent) {
	select {
	case w <- e:
	default:
	}
}

// TestBuckets: the histogram has DefaultBuckets' bounds unless Buckets
// sets others, and DefaultBuckets' slice is the caller's own.
func TestBuckets(t *testing.T) {
	b := prommon.DefaultBuckets()
	b[0] = 42
	tests := []struct {
		name string
		opts []prommon.Option
		want []float64
	}{
		{"default", nil, prommon.DefaultBuckets()},
		{"set", []prommon.Option{prommon.Buckets(append(prommon.DefaultBuckets(), 30)...)},
			append(prommon.DefaultBuckets(), 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want[0] == 42 {
				t.Fatal("DefaultBuckets returned the slice a caller changed")
			}
			reg := prometheus.NewRegistry()
			m, err := prommon.New(reg, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			m.Query(context.Background(), monitor.QueryEvent{DB: "x", Op: monitor.OpQuery})
			var got []float64
			for _, b := range sample(t, reg, "db_client_operation_duration_seconds", nil).GetHistogram().GetBucket() {
				got = append(got, b.GetUpperBound())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("bounds = %v, want %v", got, tt.want)
			}
		})
	}
}
