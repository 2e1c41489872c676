package dbfx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/enginekit/enginekit/dbfx"
	mysqldrv "github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/fxtest"
)

// TestFailoverAddrsConfig: FailoverAddrs takes host:port addresses for a
// mysql DSN; Validate names each bad one (FailoverAddrs[i]) without
// quoting it, refuses them beside a PostgreSQL or SQLite DSN and a unix
// socket, and a DSN put there by mistake never prints its password.
func TestFailoverAddrsConfig(t *testing.T) {
	const dsn = "app:" + secret + "@tcp(db1:3306)/app"
	good := dbfx.Config{DSN: dsn, FailoverAddrs: []string{"db2:3306", "10.0.0.3:3307", "[fd00::4]:3306"}}
	if err := good.Validate(mysqldrv.Driver()); err != nil {
		t.Errorf("Validate(%v): %v", good.FailoverAddrs, err)
	}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate() without drivers (%v): %v", good.FailoverAddrs, err)
	}

	bad := []string{"", "db2", "db2:0", "db2:65536", "db2:mysql", ":3306", "db 2:3306",
		"app:" + secret + "@tcp(db2:3306)/app", "app:" + secret + "@db2:3306", "mysql://app:" + secret + "@db2/app"}
	c := dbfx.Config{DSN: dsn, FailoverAddrs: bad}
	err := c.Validate(mysqldrv.Driver())
	if !errors.Is(err, dbfx.ErrConfig) {
		t.Fatalf("Validate(%q): %v, want ErrConfig", bad, err)
	}
	var ce *dbfx.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("%T is no *ConfigError", err)
	}
	named := map[string]bool{}
	for _, f := range ce.Fields {
		named[f.Field] = true
	}
	for i, a := range bad {
		if field := fmt.Sprintf("FailoverAddrs[%d]", i); !named[field] {
			t.Errorf("%q: the error does not name %s: %v", a, field, err)
		}
	}
	mustNotContain(t, err.Error(), secret)
	js, _ := json.Marshal(c)
	for _, form := range []string{c.String(), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", c), string(js)} {
		mustNotContain(t, form, secret)
		if !strings.Contains(form, "db2:65536") {
			t.Errorf("a bad address that holds no secret should print as it is: %s", form)
		}
	}

	for _, tt := range []struct {
		name string
		cfg  dbfx.Config
		ds   []dbfx.Driver
	}{
		{"postgres", dbfx.Config{DSN: "postgres://app:" + secret + "@db1/app", FailoverAddrs: []string{"db2:5432"}}, []dbfx.Driver{postgres.Driver()}},
		{"postgres without drivers", dbfx.Config{DSN: "postgres://app:" + secret + "@db1/app", FailoverAddrs: []string{"db2:5432"}}, nil},
		{"sqlite without drivers", dbfx.Config{DSN: "/var/lib/app.db", FailoverAddrs: []string{"db2:3306"}}, nil},
	} {
		err := tt.cfg.Validate(tt.ds...)
		if !errors.As(err, &ce) || len(ce.Fields) != 1 || ce.Fields[0].Field != "FailoverAddrs" {
			t.Errorf("%s: %v, want an error naming FailoverAddrs alone", tt.name, err)
		} else {
			mustNotContain(t, err.Error(), secret)
		}
	}
	unix := dbfx.Config{DSN: "app:" + secret + "@unix(/run/mysqld/mysqld.sock)/app", FailoverAddrs: []string{"db2:3306"}}
	if err := unix.Validate(mysqldrv.Driver()); err == nil || !strings.Contains(err.Error(), "FailoverAddrs") {
		t.Errorf("a unix socket DSN with FailoverAddrs: %v, want an error saying they need tcp", err)
	} else {
		mustNotContain(t, err.Error(), secret)
	}

	t.Setenv("FOTEST_DSN", dsn)
	t.Setenv("FOTEST_FAILOVER_ADDRS", " db2:3306, db3:3306 ,")
	env, err := dbfx.ConfigFromEnv("FOTEST")
	if err != nil || fmt.Sprint(env.FailoverAddrs) != "[db2:3306 db3:3306]" {
		t.Errorf("ConfigFromEnv: FailoverAddrs %q, %v", env.FailoverAddrs, err)
	}
}

// listenAt serves addr: a proxy to target, or, with an empty target, a
// silent server that accepts connections and never answers.
func listenAt(t *testing.T, addr, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	if target == "" {
		go func() {
			defer p.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				p.accepted.Add(1)
				p.mu.Lock()
				p.conns = append(p.conns, c)
				p.mu.Unlock()
			}
		}()
	} else {
		go p.serve()
	}
	t.Cleanup(p.Close)
	return p
}

// withAddr returns the mysql DSN dsn with another address (and password).
func withAddr(t *testing.T, dsn, addr, password string) string {
	t.Helper()
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	mc.Addr = addr
	if password != "" {
		mc.Passwd = password
	}
	return mc.FormatDSN()
}

// holdConns takes n connections of e's pool at once and gives them back:
// at least n-idle of them are new.
func holdConns(t *testing.T, e *dbfx.Engine, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.DB().DB.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var one int
			if err := c.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				errs <- err
				return
			}
			errs <- nil
			<-release
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			close(release)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(release)
	wg.Wait()
}

// TestMySQLFailoverAddrs: on the shared MariaDB, behind proxies that
// stand for the servers of one database. A new connection goes to the
// DSN's server, moves on to the next when that one refuses or never
// answers (within its share of ConnectTimeout), stays on the server that
// answered, and fails with every server's error (and no password) when
// none answers; a server that answers with an error (a wrong password)
// is not down: the next is not tried.
func TestMySQLFailoverAddrs(t *testing.T) {
	cfg := fxtest.MySQL(t)
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	server := mc.Addr
	open := func(t *testing.T, c dbfx.Config) (*dbfx.Engine, time.Duration, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		begun := time.Now()
		e, err := dbfx.Open(ctx, c, fxtest.WithDrivers())
		if err == nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := e.Close(ctx); err != nil {
					t.Errorf("close: %v", err)
				}
			})
		}
		return e, time.Since(begun), err
	}
	ping := func(t *testing.T, e *dbfx.Engine) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("down, then back: the pool stays where it went", func(t *testing.T) {
		p1 := listenAt(t, "127.0.0.1:0", server)
		p2 := listenAt(t, "127.0.0.1:0", server)
		c := cfg
		c.DSN = withAddr(t, cfg.DSN, p1.Addr(), "")
		c.FailoverAddrs = []string{p2.Addr()}
		c.ConnectTimeout = 5 * time.Second
		e, _, err := open(t, c)
		if err != nil {
			t.Fatal(err)
		}
		holdConns(t, e, 3)
		if p1.accepted.Load() == 0 || p2.accepted.Load() != 0 {
			t.Fatalf("with both up, connections went %d to the DSN's server and %d to the next; want all to the first",
				p1.accepted.Load(), p2.accepted.Load())
		}
		addr1 := p1.Addr()
		p1.Close() // its connections are cut, its port refuses
		holdConns(t, e, 3)
		if p2.accepted.Load() < 3 {
			t.Fatalf("the DSN's server down: %d connections to the next, want at least 3", p2.accepted.Load())
		}
		back := listenAt(t, addr1, server) // the first server is back
		before := p2.accepted.Load()
		holdConns(t, e, 8)
		if back.accepted.Load() != 0 || p2.accepted.Load() == before {
			t.Errorf("the first server back: %d new connections to it, %d to the current one; want none, some",
				back.accepted.Load(), p2.accepted.Load()-before)
		}
	})

	t.Run("refused", func(t *testing.T) {
		p := listenAt(t, "127.0.0.1:0", server)
		c := cfg
		c.DSN = withAddr(t, cfg.DSN, closedPort(t), "")
		c.FailoverAddrs = []string{closedPort(t), p.Addr()}
		c.ConnectTimeout = 5 * time.Second
		e, took, err := open(t, c)
		if err != nil {
			t.Fatal(err)
		}
		ping(t, e)
		if p.accepted.Load() == 0 {
			t.Error("the third server took no connection")
		}
		if took > 2*time.Second {
			t.Errorf("two servers that refuse cost %s at start, want next to nothing", took)
		}
	})

	t.Run("silent", func(t *testing.T) {
		silent := listenAt(t, "127.0.0.1:0", "")
		p := listenAt(t, "127.0.0.1:0", server)
		c := cfg
		c.DSN = withAddr(t, cfg.DSN, silent.Addr(), "")
		c.FailoverAddrs = []string{p.Addr()}
		c.ConnectTimeout = 4 * time.Second
		e, took, err := open(t, c)
		if err != nil {
			t.Fatal(err)
		}
		ping(t, e)
		// The silent server gets half of ConnectTimeout, the next the rest.
		if silent.accepted.Load() == 0 || p.accepted.Load() == 0 || took < 1500*time.Millisecond || took > 4*time.Second {
			t.Errorf("silent server first: start took %s (want about 2s, half of ConnectTimeout), "+
				"accepted %d by it, %d by the next", took, silent.accepted.Load(), p.accepted.Load())
		}
		holdConns(t, e, 3)
		if n := silent.accepted.Load(); n != 1 {
			t.Errorf("after the move, the silent server was tried %d times, want once", n)
		}
	})

	t.Run("none answers", func(t *testing.T) {
		silent := listenAt(t, "127.0.0.1:0", "")
		refused := closedPort(t)
		c := cfg
		c.DSN = withAddr(t, cfg.DSN, refused, secret)
		c.FailoverAddrs = []string{silent.Addr()}
		c.ConnectTimeout = 2 * time.Second
		_, took, err := open(t, c)
		if !errors.Is(err, dbfx.ErrConnect) {
			t.Fatalf("no server answers: %v, want ErrConnect", err)
		}
		mustNotContain(t, err.Error(), secret)
		if !strings.Contains(err.Error(), refused) || !strings.Contains(err.Error(), silent.Addr()) ||
			!errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("the error should name both servers and wrap the refusal: %v", err)
		}
		if took > c.ConnectTimeout+time.Second {
			t.Errorf("the start took %s with ConnectTimeout %s", took, c.ConnectTimeout)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		p1 := listenAt(t, "127.0.0.1:0", server)
		p2 := listenAt(t, "127.0.0.1:0", server)
		c := cfg
		c.DSN = withAddr(t, cfg.DSN, p1.Addr(), secret)
		c.FailoverAddrs = []string{p2.Addr()}
		c.ConnectTimeout = 5 * time.Second
		_, took, err := open(t, c)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1045 {
			t.Fatalf("a wrong password: %v, want access denied (1045)", err)
		}
		mustNotContain(t, err.Error(), secret)
		if p2.accepted.Load() != 0 || took > 3*time.Second {
			t.Errorf("a server that refused the password sent the connection on (%d to the next) or waited (%s)",
				p2.accepted.Load(), took)
		}
	})
}
