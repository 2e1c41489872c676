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

// TestZapSlowAndFailed logs slow statements at warn with their SQL text,
// failed ones at error, and never a password: not an argument, not a
// password literal in SQL, not the DSN's.
func TestZapSlowAndFailed(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var b [6]byte
		_, _ = rand.Read(b[:])
		secret := "Secr3t" + hex.EncodeToString(b[:])
		core, logs := observer.New(zapcore.DebugLevel)
		log := zap.New(core)
		cfg.SlowQuery = time.Nanosecond // every statement is slow
		e := openEngine(t, cfg, dbfx.WithLogger(log), dbfx.WithMonitor(monitor.NewZap(log)))
		ctx := testContext(t)
		mustExec(t, e, "CREATE TABLE accounts (name VARCHAR(32) NOT NULL, password VARCHAR(64) NOT NULL)")
		mustExec(t, e, "INSERT INTO accounts (name, password) VALUES (?, ?)", "alice", secret)
		if _, err := e.DB().ExecContext(ctx, "INSERT INTO no_such_table (id) VALUES (1)"); err == nil {
			t.Fatal("insert into a missing table succeeded")
		}
		switch e.Driver() {
		case "postgres":
			role := "ek_role_" + hex.EncodeToString(b[:])
			mustExec(t, e, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, secret))
			t.Cleanup(func() { _, _ = e.DB().ExecContext(context.Background(), "DROP ROLE "+role) })
		case "mysql":
			user := "ek_user_" + hex.EncodeToString(b[:])
			mustExec(t, e, fmt.Sprintf("CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'", user, secret))
			t.Cleanup(func() { _, _ = e.DB().ExecContext(context.Background(), "DROP USER '"+user+"'@'localhost'") })
		}

		slow := logs.FilterMessage("slow statement").FilterField(zap.String("sql", e.DB().Rebind(
			"INSERT INTO accounts (name, password) VALUES (?, ?)"))).FilterField(zap.String("operation", "exec")).All()
		if len(slow) != 1 || slow[0].Level != zapcore.WarnLevel {
			t.Fatalf("slow insert logged %d times (%v), want once at warn", len(slow), slow)
		}
		if _, ok := slow[0].ContextMap()["duration"]; !ok {
			t.Error("the slow statement's line has no duration")
		}
		failed := logs.FilterMessage("statement failed").All()
		if len(failed) != 1 || failed[0].Level != zapcore.ErrorLevel ||
			!strings.Contains(fmt.Sprint(failed[0].ContextMap()["sql"]), "no_such_table") {
			t.Fatalf("failed statement logged as %v, want once at error with its SQL", failed)
		}
		for _, entry := range logs.All() {
			line := entry.Message + fmt.Sprint(entry.ContextMap())
			if strings.Contains(line, secret) {
				t.Fatalf("a log line leaks the password: %s", line)
			}
		}
		if e.Driver() != "sqlite3" && logs.FilterMessageSnippet("slow statement").FilterFieldKey("sql").
			Filter(func(le observer.LoggedEntry) bool {
				sql := le.ContextMap()["sql"].(string)
				return strings.HasSuffix(sql, "PASSWORD ?") || strings.HasSuffix(sql, "IDENTIFIED BY ?")
			}).Len() != 1 {
			t.Error("the statement with a password literal was not logged with ? for it")
		}
	})
}

// TestZapLogArgs logs arguments only when asked.
func TestZapLogArgs(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	z := monitor.NewZap(zap.New(core), monitor.LogArgs(), monitor.MaxSQLLength(10))
	z.Query(context.Background(), monitor.QueryEvent{DB: "x", Op: monitor.OpExec, SQL: "SELECT abcdefghijklm, 'x'", Slow: true})
	all := logs.All()
	if len(all) != 1 {
		t.Fatalf("%d lines, want 1", len(all))
	}
	if got := all[0].ContextMap()["sql"]; got != "SELECT abc..." {
		t.Errorf("sql = %q, want it cut after 10 bytes", got)
	}
	z.Query(context.Background(), monitor.QueryEvent{DB: "x", Op: monitor.OpQuery, SQL: "SELECT ?", Slow: true,
		Args: []driver.NamedValue{{Ordinal: 1, Value: "visible"}}})
	if got := fmt.Sprint(logs.All()[1].ContextMap()["args"]); got != "[visible]" {
		t.Errorf("args = %s, want [visible] with LogArgs", got)
	}
	// Cancelled statements are the caller's choice: debug, not error.
	core2, logs2 := observer.New(zapcore.InfoLevel)
	monitor.NewZap(zap.New(core2)).Query(context.Background(),
		monitor.QueryEvent{DB: "x", Op: monitor.OpQuery, Err: fmt.Errorf("q: %w", context.Canceled)})
	if logs2.Len() != 0 {
		t.Errorf("a cancelled statement was logged at info or above: %v", logs2.All())
	}
}

// TestZapTransactions logs retries at warn and failed commits at error.
func TestZapTransactions(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	z := monitor.NewZap(zap.New(core))
	ctx := context.Background()
	z.Tx(ctx, monitor.TxEvent{DB: "x", Kind: monitor.TxBegin, Attempt: 1})
	z.Tx(ctx, monitor.TxEvent{DB: "x", Kind: monitor.TxRetry, Attempt: 1, Err: errAgain})
	z.Tx(ctx, monitor.TxEvent{DB: "x", Kind: monitor.TxCommit, Attempt: 2, Err: errors.New("serialization failure")})
	z.Tx(ctx, monitor.TxEvent{DB: "x", Kind: monitor.TxRollback, Attempt: 2})
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+": "+e.Message)
	}
	want := []string{"warn: transaction retried", "error: transaction commit failed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", got, want)
	}
}
