package monitor_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// slogRecords is a slog.Handler that keeps every record.
type slogRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *slogRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *slogRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *slogRecords) WithGroup(string) slog.Handler            { return h }
func (h *slogRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// lines are the records as "level: message", in order.
func (h *slogRecords) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		out = append(out, strings.ToLower(r.Level.String())+": "+r.Message)
	}
	return out
}

// attr is the value of the attribute key of the i-th record.
func (h *slogRecords) attr(i int, key string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var v string
	h.records[i].Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// sameLines reports whether a and b hold the same lines, in any order:
// events of other goroutines (a connection opened, a cancel sent) may
// reach the monitors of a Multi in different orders.
func sameLines(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func zapLines(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Level.String()+": "+e.Message)
	}
	return out
}

// TestFailureLevelsOnEveryDatabase: failures met on each database are
// logged at their class's level, by the zap and the slog monitor alike:
// constraint violations (duplicate, foreign key, not null, check) at
// debug, a missing table and a write in a read-only scope at error; with
// FailureLevel, a duplicate at error and a missing table at info.
func TestFailureLevelsOnEveryDatabase(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		core, logs := observer.New(zapcore.DebugLevel)
		optCore, optLogs := observer.New(zapcore.DebugLevel)
		records := &slogRecords{}
		opts := []monitor.LogOption{
			monitor.FailureLevel(session.ErrDuplicate, slog.LevelError),
			monitor.FailureLevel(sql.ErrNoRows, slog.LevelWarn), // matches nothing here
			monitor.FailureLevel(errors.New("no such table"), slog.LevelWarn),
		}
		e := openEngine(t, cfg, dbfx.WithMonitor(monitor.Multi(
			monitor.NewZap(zap.New(core)),
			monitor.NewSlog(slog.New(records)),
			monitor.NewZap(zap.New(optCore), opts...))))
		mustExec(t, e, `CREATE TABLE parent (id INTEGER PRIMARY KEY)`)
		mustExec(t, e, `CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER, n INTEGER NOT NULL CHECK (n >= 0),
			FOREIGN KEY (parent_id) REFERENCES parent (id))`)
		mustExec(t, e, `INSERT INTO parent (id) VALUES (1)`)
		before := logs.Len()
		m := e.Sessions()
		ctx := testContext(t)
		for _, q := range []string{
			`INSERT INTO parent (id) VALUES (1)`,                     // duplicate
			`INSERT INTO child (id, parent_id, n) VALUES (1, 9, 0)`,  // foreign key
			`INSERT INTO child (id, parent_id) VALUES (1, 1)`,        // not null
			`INSERT INTO child (id, parent_id, n) VALUES (1, 1, -1)`, // check
			`SELECT * FROM no_such_table`,
		} {
			if _, err := e.DB().ExecContext(ctx, q); err == nil {
				t.Fatalf("%s succeeded", q)
			}
		}
		err := m.ReadOnly(ctx, func(ctx context.Context) error {
			_, err := m.Q(ctx).ExecContext(ctx, `INSERT INTO parent (id) VALUES (2)`)
			return err
		})
		if !errors.Is(err, session.ErrReadOnly) {
			t.Fatalf("write in a read-only scope: %v", err)
		}
		var got []string
		for _, l := range zapLines(logs)[before:] {
			if strings.HasPrefix(l, "debug: statement failed") || strings.HasPrefix(l, "error: statement failed") {
				got = append(got, l)
			}
		}
		want := []string{
			"debug: statement failed", "debug: statement failed", "debug: statement failed", "debug: statement failed",
			"error: statement failed", "error: statement failed",
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("zap lines = %q, want %q", got, want)
		}
		// The slog monitor wrote the same lines at the same levels.
		var slogGot []string
		for _, l := range records.lines() {
			if strings.Contains(l, "statement failed") {
				slogGot = append(slogGot, l)
			}
		}
		if strings.Join(slogGot, "|") != strings.Join(want, "|") {
			t.Errorf("slog lines = %q, want %q", slogGot, want)
		}
		if !sameLines(records.lines(), zapLines(logs)) {
			t.Errorf("slog and zap wrote different lines:\n%q\n%q", records.lines(), zapLines(logs))
		}
		// A FailureLevel rule decides before the class; a target that is
		// no error of this database matches nothing.
		var optGot []string
		for _, l := range zapLines(optLogs) {
			if strings.Contains(l, "statement failed") {
				optGot = append(optGot, l)
			}
		}
		wantOpt := []string{"error: statement failed", "debug: statement failed", "debug: statement failed",
			"debug: statement failed", "error: statement failed", "error: statement failed"}
		if strings.Join(optGot, "|") != strings.Join(wantOpt, "|") {
			t.Errorf("zap lines with FailureLevel = %q, want %q", optGot, wantOpt)
		}
	})
}

// onRetry is a monitor that calls fn at the first "retry" event.
type onRetry struct {
	once sync.Once
	fn   func()
}

func (o *onRetry) Query(context.Context, monitor.QueryEvent) {}
func (o *onRetry) Tx(_ context.Context, e monitor.TxEvent) {
	if e.Kind == monitor.TxRetry {
		o.once.Do(o.fn)
	}
}

// TestRetriedConflictLoggedAtWarn: a transaction whose first attempt
// conflicts with another transaction and whose second commits leaves
// warnings (the conflict, the retry) and no error line. On PostgreSQL
// the conflict is a serialization failure (another transaction updated
// the row after the attempt's snapshot), on SQLite a busy database (a
// connection of another program holds the write lock until the retry).
func TestRetriedConflictLoggedAtWarn(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		if cfg.Driver == "mysql" {
			t.Skip("a conflict on MySQL needs two transactions waiting on each other: the classes are shown in dbfx's error tests")
		}
		if cfg.Driver == "sqlite3" {
			cfg.DSN += "?_busy_timeout=1"
		}
		core, logs := observer.New(zapcore.DebugLevel)
		records := &slogRecords{}
		var release func()
		retry := &onRetry{fn: func() { release() }}
		e := openEngine(t, cfg, dbfx.WithMonitor(monitor.Multi(
			monitor.NewZap(zap.New(core)), monitor.NewSlog(slog.New(records)), retry)))
		mustExec(t, e, `CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`)
		mustExec(t, e, `INSERT INTO counter (id, n) VALUES (1, 0)`)
		m := e.Sessions()
		ctx := testContext(t)
		release = func() {}
		if cfg.Driver == "sqlite3" {
			other, err := sql.Open("sqlite3", cfg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = other.Close() })
			holder, err := other.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
				t.Fatal(err)
			}
			release = func() {
				_, _ = holder.ExecContext(ctx, `ROLLBACK`)
				_ = holder.Close()
			}
		}
		before := logs.Len()
		attempts := 0
		err := m.Tx(ctx, func(ctx context.Context) error {
			attempts++
			q := m.Q(ctx)
			var n int
			if err := q.GetContext(ctx, &n, `SELECT n FROM counter WHERE id = 1`); err != nil {
				return err
			}
			if attempts == 1 && cfg.Driver == "postgres" {
				// Another transaction changes the row after this one's
				// snapshot was taken.
				if _, err := e.DB().ExecContext(ctx, `UPDATE counter SET n = n + 1 WHERE id = 1`); err != nil {
					return err
				}
			}
			_, err := q.ExecContext(ctx, q.Rebind(`UPDATE counter SET n = ? WHERE id = 1`), n+1)
			return err
		}, session.Isolation(sql.LevelSerializable))
		if err != nil {
			t.Fatalf("the retried transaction failed: %v", err)
		}
		got := zapLines(logs)[before:]
		t.Logf("lines: %q", got)
		var warned, retried bool
		for _, l := range got {
			warned = warned || strings.HasPrefix(l, "warn: ") && strings.Contains(l, "failed")
			retried = retried || l == "warn: transaction retried"
			if strings.HasPrefix(l, "error: ") {
				t.Errorf("a conflict that the retry won was logged at error: %q", got)
			}
		}
		if !warned || !retried {
			t.Errorf("lines %q, want the conflict and the retry at warn", got)
		}
		if !sameLines(records.lines(), zapLines(logs)) {
			t.Errorf("slog and zap wrote different lines:\n%q\n%q", records.lines(), zapLines(logs))
		}
	})
}

// TestSlogFields: the slog monitor's lines carry the zap monitor's fields,
// SQL normalised and arguments only with LogArgs.
func TestSlogFields(t *testing.T) {
	records := &slogRecords{}
	m := monitor.NewSlog(slog.New(records), monitor.LogArgs())
	ctx := context.Background()
	m.Query(ctx, monitor.QueryEvent{DB: "main", Op: monitor.OpExec, SQL: "UPDATE t SET pw = 'hunter22' WHERE id = ?",
		Args: argsOf("visible"), Rows: 3, Slow: true})
	m.Query(ctx, monitor.QueryEvent{DB: "main", Op: monitor.OpQuery, SQL: "SELECT 1", Rows: -1,
		Err: errors.New(`pq: invalid input syntax for type integer: "secret-arg"`), Args: argsOf("secret-arg")})
	m.Query(ctx, monitor.QueryEvent{DB: "main", Op: monitor.OpQuery, Err: context.Canceled})
	m.Tx(ctx, monitor.TxEvent{DB: "main", Kind: monitor.TxRetry, Attempt: 1, Err: errors.New("deadlock")})
	m.(monitor.PoolMonitor).Pool(ctx, monitor.PoolEvent{DB: "main", Kind: monitor.PoolConnectFailed, Err: errors.New("dial postgres://u:pw@h/db")})
	m.(monitor.LeakMonitor).Leak(monitor.LeakEvent{DB: "main", Stack: "goroutine 1"})
	want := []string{"warn: slow statement", "error: statement failed", "debug: statement cut short by its context",
		"warn: transaction retried", "warn: connect failed", "error: connection held longer than the leak threshold"}
	if got := records.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines = %q, want %q", got, want)
	}
	for _, c := range []struct {
		i         int
		key, want string
	}{
		{0, "sql", "UPDATE t SET pw = ? WHERE id = ?"},
		{0, "args", "[visible]"},
		{0, "rows", "3"},
		{0, "engine", "main"},
		{1, "error", `pq: invalid input syntax for type integer: "?"`},
		{3, "attempt", "1"},
		{4, "error", "dial postgres://u:xxxxx@h/db"},
		{5, "taken_at", "goroutine 1"},
	} {
		if got := records.attr(c.i, c.key); got != c.want {
			t.Errorf("line %d: %s = %q, want %q", c.i, c.key, got, c.want)
		}
	}
	// Without LogArgs, no arguments; a nil logger logs nothing.
	quiet := &slogRecords{}
	monitor.NewSlog(slog.New(quiet)).Query(ctx, monitor.QueryEvent{SQL: "SELECT ?", Args: argsOf("x"), Slow: true})
	if quiet.attr(0, "args") != "" {
		t.Error("arguments logged without LogArgs")
	}
	monitor.NewSlog(nil).Query(ctx, monitor.QueryEvent{Slow: true})
}

// TestCanceledAndTimedOutLevels: a statement its caller gave up on (its
// ctx's deadline passed) is logged at debug on every database, lib/pq's
// 57014 included; one the server stopped at its statement timeout at warn.
func TestCanceledAndTimedOutLevels(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		core, logs := observer.New(zapcore.DebugLevel)
		records := &slogRecords{}
		e := openEngine(t, cfg, dbfx.WithMonitor(monitor.Multi(monitor.NewZap(zap.New(core)), monitor.NewSlog(slog.New(records)))))
		m := e.Sessions()
		endless := map[string]string{
			"postgres": `SELECT pg_sleep(30)`,
			"mysql":    `SELECT SLEEP(30)`,
			"sqlite3":  `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT max(n) FROM c`,
		}[cfg.Driver]
		failures := func(from int) []string {
			var out []string
			for _, l := range zapLines(logs)[from:] {
				if strings.HasSuffix(l, ": statement failed") || strings.HasSuffix(l, ": statement cut short by its context") {
					out = append(out, l)
				}
			}
			return out
		}

		before := logs.Len()
		ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
		_, err := e.DB().ExecContext(ctx, endless)
		cancel()
		if err == nil {
			t.Fatal("an endless statement ended")
		}
		got := failures(before)
		if len(got) != 1 || !strings.HasPrefix(got[0], "debug: ") {
			t.Errorf("statement past its deadline (%v) logged as %q, want one line at debug", err, got)
		}
		if cfg.Driver == "sqlite3" {
			return // no statement timeout on the server
		}

		before = logs.Len()
		ctx = testContext(t)
		err = m.Tx(ctx, func(ctx context.Context) error {
			q := m.Q(ctx)
			if cfg.Driver == "postgres" {
				if _, err := q.ExecContext(ctx, `SET LOCAL statement_timeout = '100ms'`); err != nil {
					return err
				}
				_, err := q.ExecContext(ctx, endless)
				return err
			}
			_, err := q.ExecContext(ctx, `SET STATEMENT max_statement_time = 0.1 FOR `+endless)
			return err
		}, session.NoRetry())
		if !errors.Is(err, session.ErrCanceled) {
			t.Fatalf("statement timeout: %v, want ErrCanceled", err)
		}
		if got := failures(before); strings.Join(got, "|") != "warn: statement failed" {
			t.Errorf("statement timeout logged as %q, want one line at warn", got)
		}
		if !sameLines(records.lines(), zapLines(logs)) {
			t.Errorf("slog and zap wrote different lines:\n%q\n%q", records.lines(), zapLines(logs))
		}
	})
}
