package monitor_test

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
)

// TestZapLogsNoLiteral runs statements with a secret in every kind of
// literal and comment each database has, slow (every statement is) or
// failing with an error that quotes the secret: no log line holds it, and
// each statement is logged with ? for its literals.
func TestZapLogsNoLiteral(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var b [6]byte
		_, _ = rand.Read(b[:])
		secret := "Secr3t" + hex.EncodeToString(b[:])
		core, logs := observer.New(zapcore.DebugLevel)
		log := zap.New(core)
		cfg.SlowQuery = time.Nanosecond
		e := openEngine(t, cfg, dbfx.WithLogger(log), dbfx.WithMonitor(monitor.Multi(monitor.NewZap(log), newRecorder())))
		ctx := testContext(t)
		type stmt struct {
			sql  string
			args []any
			fail bool // the driver's error quotes the secret
		}
		var stmts []stmt
		switch e.Driver() {
		case "postgres":
			stmts = []stmt{
				{sql: "SELECT md5('" + secret + "')"},
				{sql: "SELECT E'" + secret + "\\'s', 'it''s " + secret + "'"},
				{sql: "SELECT $$" + secret + "$$, $tag$ " + secret + " $tag$"},
				{sql: "SELECT 'host=db password=" + secret + "'"},
				{sql: "SELECT 1 /* '" + secret + "' /* nested */ " + secret + " */"},
				{sql: "SELECT 1 -- " + secret + "\n"},
				{sql: "SELECT '" + secret + "'::int", fail: true},
				{sql: "SELECT $1::int", args: []any{secret}, fail: true},
			}
		case "mysql":
			mustExec(t, e, "CREATE TABLE secrets (v VARCHAR(64) PRIMARY KEY)")
			mustExec(t, e, "INSERT INTO secrets (v) VALUES (?)", secret)
			stmts = []stmt{
				{sql: "SELECT SHA2('" + secret + "', 256)"},
				{sql: `SELECT "` + secret + `", 'it\'s ` + secret + `'`},
				{sql: "SELECT 'password=" + secret + "'"},
				{sql: "SELECT /*!50000 '" + secret + "', */ 1"},
				{sql: "SELECT 1 # " + secret + "\n"},
				{sql: "SELECT 1 /* " + secret + " */"},
				{sql: "INSERT INTO secrets (v) VALUES ('" + secret + "')", fail: true},
				{sql: "INSERT INTO secrets (v) VALUES (?)", args: []any{secret}, fail: true},
			}
		case "sqlite3":
			stmts = []stmt{
				{sql: "SELECT 'password=" + secret + "', X'" + hex.EncodeToString([]byte(secret)) + "'"},
				{sql: "SELECT 'it''s " + secret + "'"},
				{sql: "SELECT 1 /* '" + secret + "' */ -- " + secret + "\n"},
				{sql: "SELECT json('" + secret + "')", fail: true},
			}
		}
		for _, s := range stmts {
			_, err := e.DB().ExecContext(ctx, s.sql, s.args...)
			if s.fail != (err != nil) {
				t.Fatalf("%s: %v", s.sql, err)
			}
		}
		if e.Driver() != "sqlite3" && !strings.Contains(fmt.Sprint(errorsOf(logs)), "?") {
			t.Errorf("no error line has a scrubbed value: %v", errorsOf(logs))
		}
		for _, s := range stmts {
			want := monitor.NormalizeSQL(s.sql, map[string]monitor.System{
				"postgres": monitor.PostgreSQL, "mysql": monitor.MySQL, "sqlite3": monitor.SQLite}[e.Driver()])
			if logs.FilterField(zap.String("sql", want)).Len() == 0 {
				t.Errorf("%q was not logged as %q", s.sql, want)
			}
		}
		for _, entry := range logs.All() {
			line := entry.Message + fmt.Sprint(entry.ContextMap())
			if strings.Contains(line, secret) || strings.Contains(line, hex.EncodeToString([]byte(secret))) {
				t.Fatalf("a log line leaks the secret: %s", line)
			}
		}
	})
}

func errorsOf(logs *observer.ObservedLogs) []any {
	var out []any
	for _, l := range logs.FilterMessage("statement failed").All() {
		out = append(out, l.ContextMap()["error"])
	}
	return out
}

// TestZapReadsEachEngineInItsDialect: the zap monitor learns each
// engine's database when it opens (EngineMonitor, forwarded by Multi), so
// PostgreSQL's and SQLite's "names" are shown and MySQL's "strings"
// hidden; an engine it was not told of is read as any database.
func TestZapReadsEachEngineInItsDialect(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	z := monitor.NewZap(zap.New(core), monitor.LogEveryStatement())
	em, ok := monitor.Multi(z, newRecorder()).(monitor.EngineMonitor)
	if !ok {
		t.Fatal("Multi is not an EngineMonitor")
	}
	removePG := em.AddEngine(monitor.EngineInfo{DB: "pg", System: monitor.PostgreSQL})
	removeMy := em.AddEngine(monitor.EngineInfo{DB: "my", System: monitor.MySQL})
	const q = `SELECT "x" FROM t WHERE a = 'y'`
	for _, db := range []string{"pg", "my", "other"} {
		z.Query(context.Background(), monitor.QueryEvent{DB: db, Op: monitor.OpQuery, SQL: q, Rows: -1})
	}
	removePG()
	removePG() // a second call does nothing
	z.Query(context.Background(), monitor.QueryEvent{DB: "pg", Op: monitor.OpQuery, SQL: q, Rows: -1})
	removeMy()
	var got []string
	for _, l := range logs.All() {
		got = append(got, l.ContextMap()["sql"].(string))
	}
	want := []string{`SELECT "x" FROM t WHERE a = ?`, `SELECT ? FROM t WHERE a = ?`, `SELECT ? FROM t WHERE a = ?`, `SELECT ? FROM t WHERE a = ?`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("logged %q, want %q", got, want)
	}
}

// TestZapOpenedEnginesAreKnown: an engine opened with the zap monitor is
// read in its dialect: a quoted name shows on PostgreSQL and SQLite.
func TestZapOpenedEnginesAreKnown(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		core, logs := observer.New(zapcore.DebugLevel)
		e := openEngine(t, cfg, dbfx.WithMonitor(monitor.NewZap(zap.New(core), monitor.LogEveryStatement())))
		q := `SELECT 1 AS "one"`
		want := `SELECT ? AS "one"`
		if e.Driver() == "mysql" {
			q, want = "SELECT 1 AS `one`", "SELECT ? AS `one`"
		}
		mustExec(t, e, q)
		if logs.FilterField(zap.String("sql", want)).Len() != 1 {
			t.Fatalf("%q not logged as %q: %v", q, want, logs.All())
		}
	})
}

// TestZapErrorScrub: a failed statement's error is logged with the values
// of its literals and string arguments replaced, and as it is when it
// quotes none.
func TestZapErrorScrub(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	z := monitor.NewZap(zap.New(core))
	ctx := context.Background()
	z.Query(ctx, monitor.QueryEvent{DB: "x", Op: monitor.OpExec, Rows: -1,
		SQL:  `INSERT INTO t (a, b) VALUES ('alice@example.com', $1)`,
		Args: argsOf("s3cr3t-token"),
		Err:  errors.New(`duplicate entry 'alice@example.com' / s3cr3t-token for key 't.a'`)})
	z.Query(ctx, monitor.QueryEvent{DB: "x", Op: monitor.OpExec, Rows: -1, SQL: `SELECT 1`,
		Err: errors.New("relation t does not exist")})
	all := logs.All()
	if got := all[0].ContextMap()["error"]; got != `duplicate entry '?' / ? for key 't.a'` {
		t.Errorf("error = %q", got)
	}
	if got := all[1].ContextMap()["error"]; got != "relation t does not exist" {
		t.Errorf("error = %q", got)
	}
}

func argsOf(vs ...any) []driver.NamedValue {
	out := make([]driver.NamedValue, len(vs))
	for i, v := range vs {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}
