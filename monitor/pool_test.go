package monitor_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// TestZapPoolEvents logs each kind of pool event at its level, with the
// engine, the duration and the error.
func TestZapPoolEvents(t *testing.T) {
	errDown := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	errDead := errors.New("connection reset by peer")
	errKill := errors.New("KILL QUERY: access denied")
	tests := []struct {
		give      monitor.PoolEvent
		wantLevel zapcore.Level
		wantMsg   string
		wantDur   string // the duration's field
		wantErr   string // the error field; "" when none
	}{
		{monitor.PoolEvent{Kind: monitor.PoolConnected, Duration: 3 * time.Millisecond},
			zapcore.DebugLevel, "connection opened", "duration", ""},
		{monitor.PoolEvent{Kind: monitor.PoolConnectFailed, Duration: time.Second, Err: errDown},
			zapcore.WarnLevel, "connect failed", "duration", errDown.Error()},
		{monitor.PoolEvent{Kind: monitor.PoolAcquireTimeout, Duration: 30 * time.Second},
			zapcore.WarnLevel, "no connection free within the acquire timeout", "waited", ""},
		{monitor.PoolEvent{Kind: monitor.PoolDeadConn, Duration: time.Millisecond, Err: errDead},
			zapcore.InfoLevel, "dead connection discarded", "duration", errDead.Error()},
		{monitor.PoolEvent{Kind: monitor.PoolCancel, Duration: 2 * time.Millisecond},
			zapcore.DebugLevel, "statement cancelled on the server", "duration", ""},
		{monitor.PoolEvent{Kind: monitor.PoolCancel, Duration: 2 * time.Millisecond, Err: errKill},
			zapcore.WarnLevel, "server-side cancel failed", "duration", errKill.Error()},
		{monitor.PoolEvent{Kind: "later", Duration: time.Millisecond},
			zapcore.DebugLevel, "pool event later", "duration", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.give.Kind)+fmt.Sprint(tt.give.Err != nil), func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			pm, ok := monitor.NewZap(zap.New(core)).(monitor.PoolMonitor)
			if !ok {
				t.Fatal("the zap monitor is not a PoolMonitor")
			}
			ev := tt.give
			ev.DB = "orders"
			pm.Pool(context.Background(), ev)
			all := logs.All()
			if len(all) != 1 {
				t.Fatalf("%d lines, want 1: %v", len(all), all)
			}
			got := all[0]
			if got.Level != tt.wantLevel || got.Message != tt.wantMsg {
				t.Errorf("logged %s %q, want %s %q", got.Level, got.Message, tt.wantLevel, tt.wantMsg)
			}
			fields := got.ContextMap()
			if fields["engine"] != "orders" {
				t.Errorf("engine = %v, want orders", fields["engine"])
			}
			if fields[tt.wantDur] != ev.Duration {
				t.Errorf("%s = %v, want %s", tt.wantDur, fields[tt.wantDur], ev.Duration)
			}
			if e, has := fields["error"]; (tt.wantErr == "") == has || (has && e != tt.wantErr) {
				t.Errorf("error = %v (present: %v), want %q", e, has, tt.wantErr)
			}
		})
	}
	// At info, connections opened and cancels that worked are not logged.
	core, logs := observer.New(zapcore.InfoLevel)
	pm := monitor.NewZap(zap.New(core)).(monitor.PoolMonitor)
	pm.Pool(context.Background(), monitor.PoolEvent{DB: "x", Kind: monitor.PoolConnected})
	pm.Pool(context.Background(), monitor.PoolEvent{DB: "x", Kind: monitor.PoolCancel})
	if logs.Len() != 0 {
		t.Errorf("logged at info: %v", logs.All())
	}
}

// TestZapPoolErrorMasked masks a password in a pool event's error should
// one ever carry a DSN's, and leaves the drivers' usual texts alone.
func TestZapPoolErrorMasked(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"dial postgres://app:Secr3t@db:5432/x: refused", "dial postgres://app:xxxxx@db:5432/x: refused"},
		{"bad postgres://app:Se@cr3t@db/x", "bad postgres://app:xxxxx@db/x"},
		{"open app:Secr3t@tcp(db:3306)/x failed", "open app:xxxxx@tcp(db:3306)/x failed"},
		{"open app:Se@cr3t@tcp(db:3306)/x failed", "open app:xxxxx@tcp(db:3306)/x failed"},
		{`"app:Secr3t@unix(/run/mysqld.sock)/x"`, `"app:xxxxx@unix(/run/mysqld.sock)/x"`},
		{"host=db password=Secr3t dbname=x", "host=db password=xxxxx dbname=x"},
		{`host=db password='Sec r3t\'s' dbname=x`, "host=db password=xxxxx dbname=x"},
		{"x?user=app&PASSWORD=Secr3t&sslmode=off", "x?user=app&PASSWORD=xxxxx&sslmode=off"},
		{"dial tcp 127.0.0.1:1: connect: connection refused", "dial tcp 127.0.0.1:1: connect: connection refused"},
		{"Error 1045 (28000): Access denied for user 'app'@'localhost' (using password: YES)",
			"Error 1045 (28000): Access denied for user 'app'@'localhost' (using password: YES)"},
		{`pq: password authentication failed for user "app"`, `pq: password authentication failed for user "app"`},
		{`pq: role "app" does not exist`, `pq: role "app" does not exist`},
	}
	for _, tt := range tests {
		core, logs := observer.New(zapcore.DebugLevel)
		monitor.NewZap(zap.New(core)).(monitor.PoolMonitor).Pool(context.Background(),
			monitor.PoolEvent{DB: "x", Kind: monitor.PoolConnectFailed, Err: errors.New(tt.give)})
		if got := logs.All()[0].ContextMap()["error"]; got != tt.want {
			t.Errorf("%q logged as %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestZapConnectFailed opens engines whose connects fail, for real: a
// closed port, a directory that does not exist, a role the server does
// not know, a wrong password. Each failure is logged at warn with the
// engine and the driver's error, and the DSN's password is in no line.
func TestZapConnectFailed(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		for _, c := range refusedConfigs(t, cfg) {
			t.Run(c.name, func(t *testing.T) {
				core, logs := observer.New(zapcore.DebugLevel)
				log := zap.New(core)
				_, err := dbfx.Open(testContext(t), c.cfg, fxtest.WithDrivers(), dbfx.WithLogger(log),
					dbfx.WithMonitor(monitor.NewZap(log)))
				if !errors.Is(err, dbfx.ErrConnect) {
					t.Fatalf("Open: %v, want ErrConnect", err)
				}
				failed := logs.FilterMessage("connect failed").All()
				if len(failed) == 0 {
					t.Fatalf("no connect failure logged; lines: %v", logs.All())
				}
				for _, l := range failed {
					f := l.ContextMap()
					if l.Level != zapcore.WarnLevel || f["engine"] != c.cfg.Name || f["error"] == "" || f["error"] == nil {
						t.Errorf("logged %s %v, want warn with engine %q and the error", l.Level, f, c.cfg.Name)
					}
				}
				for _, l := range logs.All() {
					if line := l.Message + fmt.Sprint(l.ContextMap()); strings.Contains(line, c.secret) {
						t.Errorf("a log line holds the DSN's password: %s", line)
					}
				}
				t.Logf("logged: %v", failed[0].ContextMap()["error"])
			})
		}
	})
}

// TestZapAcquireTimeout holds the one connection of a pool in a scope:
// a second scope times out, logged at warn with how long it waited. The
// connect at start is logged at debug.
func TestZapAcquireTimeout(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		core, logs := observer.New(zapcore.DebugLevel)
		cfg.Name = "held"
		cfg.MaxOpenConns, cfg.MaxIdleConns = 1, 1
		cfg.AcquireTimeout = 50 * time.Millisecond
		e := openEngine(t, cfg, dbfx.WithMonitor(monitor.NewZap(zap.New(core))))
		if logs.FilterMessage("connection opened").FilterField(zap.String("engine", "held")).Len() == 0 {
			t.Error("no connection opened was logged")
		}
		err := whileHeld(t, e.Sessions(), func(ctx context.Context) error {
			return e.Sessions().Tx(ctx, func(context.Context) error { return nil })
		})
		if !errors.Is(err, session.ErrAcquireTimeout) {
			t.Fatalf("second Tx: %v, want ErrAcquireTimeout", err)
		}
		timeouts := logs.FilterMessage("no connection free within the acquire timeout").All()
		if len(timeouts) != 1 {
			t.Fatalf("%d acquire timeouts logged, want 1: %v", len(timeouts), timeouts)
		}
		f := timeouts[0].ContextMap()
		if timeouts[0].Level != zapcore.WarnLevel || f["engine"] != "held" || f["waited"] != cfg.AcquireTimeout {
			t.Errorf("logged %s %v, want warn with engine held and waited %s", timeouts[0].Level, f, cfg.AcquireTimeout)
		}
	})
}

// whileHeld runs fn while a transaction scope of m holds a connection of
// its writer, and returns fn's error.
func whileHeld(t *testing.T, m *session.Manager, fn func(ctx context.Context) error) error {
	t.Helper()
	ctx := testContext(t)
	entered, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- m.Tx(ctx, func(context.Context) error {
			close(entered)
			<-release
			return nil
		})
	}()
	select {
	case <-entered:
	case err := <-held:
		t.Fatalf("the holding Tx: %v", err)
	}
	err := fn(ctx)
	close(release)
	if herr := <-held; herr != nil {
		t.Errorf("the holding Tx: %v", herr)
	}
	return err
}

// refused is a config whose connects fail, with the password in its DSN.
type refused struct {
	name   string
	cfg    dbfx.Config
	secret string
}

// refusedConfigs returns configs like cfg whose connects fail: on
// SQLite, a file in a directory that does not exist; on PostgreSQL and
// MySQL, a closed port, and on the server itself a role it does not know
// (the shared PostgreSQL trusts local connections, so no password is
// checked there) or a wrong password (MySQL).
func refusedConfigs(t *testing.T, cfg dbfx.Config) []refused {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	secret := "Secr3t" + hex.EncodeToString(b[:])
	user := "ek_refused_" + hex.EncodeToString(b[:])
	cfg.Name = "refused"
	cfg.ConnectTimeout = 300 * time.Millisecond
	with := func(dsn string) dbfx.Config { c := cfg; c.DSN = dsn; return c }
	switch cfg.Driver {
	case "sqlite3":
		return []refused{{"missing directory", with(filepath.Join(t.TempDir(), "missing", "x.db")), secret}}
	case "postgres":
		u, err := url.Parse(cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), secret)
		server := *u
		server.User = url.UserPassword(user, secret)
		u.Host = "127.0.0.1:1"
		return []refused{{"closed port", with(u.String()), secret}, {"unknown role", with(server.String()), secret}}
	case "mysql":
		mc, err := mysql.ParseDSN(cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		admin := openEngine(t, cfg)
		mustExec(t, admin, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'right-%s'", user, secret))
		t.Cleanup(func() { _, _ = admin.DB().ExecContext(context.Background(), "DROP USER '"+user+"'@'%'") })
		closed := mc.Clone()
		closed.Passwd, closed.Addr = secret, "127.0.0.1:1"
		wrong := mc.Clone()
		wrong.User, wrong.Passwd = user, secret
		return []refused{{"closed port", with(closed.FormatDSN()), secret}, {"wrong password", with(wrong.FormatDSN()), secret}}
	}
	t.Fatalf("no refused config for %s", cfg.Driver)
	return nil
}

// StatsSources sums the sources of one name, and forgets a removed one
// (removed twice without harm).
func TestStatsSourcesSumByName(t *testing.T) {
	var s monitor.StatsSources
	fig := func(n int) func() monitor.PoolStats {
		return func() monitor.PoolStats {
			return monitor.PoolStats{MaxOpen: n, Open: n, InUse: n, Leaks: int64(n), Scopes: n, WaitDuration: time.Duration(n)}
		}
	}
	rm1 := s.Add("primary", fig(1))
	s.Add("primary", fig(2))
	s.Add("audit", fig(5))
	got := s.Sum()
	if p := got["primary"]; p.MaxOpen != 3 || p.Open != 3 || p.InUse != 3 || p.Leaks != 3 || p.Scopes != 3 || p.WaitDuration != 3 {
		t.Fatalf("primary = %+v, want every figure 3", p)
	}
	if a := got["audit"]; a.MaxOpen != 5 || len(got) != 2 {
		t.Fatalf("Sum = %+v, want primary and audit (5)", got)
	}
	rm1()
	rm1()
	if p := s.Sum()["primary"]; p.MaxOpen != 2 {
		t.Fatalf("after remove, primary = %+v, want 2", p)
	}
}
