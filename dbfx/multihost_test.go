package dbfx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/fxtest"
)

// TestPostgresSeveralHosts: a DSN naming a primary and its standbys is
// read as libpq reads it, each host with its own port, in the URL form as
// in the key=value form (lib/pq v1.12 read postgres://u@h1:5001,h2:5002/db
// as the hosts "h1:5001" and "h2:5002" on port 5432, and failed on a list
// with a host without a port or an IPv6 literal).
func TestPostgresSeveralHosts(t *testing.T) {
	unsetenv(t, "PGPASSWORD", "PGSSLMODE", "PGPORT", "PGHOST")
	const rw = "target_session_attrs=read-write"
	for _, tt := range []struct{ dsn, host, password string }{
		{"postgres://app:" + secret + "@10.0.0.1:5001,10.0.0.2:5002/app?" + rw, "10.0.0.1:5001,10.0.0.2:5002/app", secret},
		{"postgresql://app:" + secret + "@db1:5001,db2/app?sslmode=disable&" + rw, "db1:5001,db2:5432/app", secret},
		{"postgres://app:" + secret + "@[::1]:5001,[fd00::2]:5002/app?" + rw, "[::1]:5001,[fd00::2]:5002/app", secret},
		{"postgres://app@db1,db2,db3/app", "db1:5432,db2:5432,db3:5432/app", ""},
		{"postgres://app:p%40ss@db1:5001,db2:5002", "db1:5001,db2:5002/", "p@ss"},
		{"postgres://app@db1:5001,db2:5002/app?port=6001,6002", "db1:6001,db2:6002/app", ""}, // parameters win, as in libpq
		{"host=db1,db2 port=5001,5002 user=app password='" + secret + "' dbname=app " + rw, "db1:5001,db2:5002/app", secret},
	} {
		host, password, _, err := dbfx.ResolveDSN(postgres.Driver(), tt.dsn)
		if err != nil {
			t.Errorf("%q: %v", tt.dsn, err)
			continue
		}
		if host != tt.host || password != tt.password {
			t.Errorf("%q: host %q, password %q; want %q, %q", tt.dsn, host, password, tt.host, tt.password)
		}
	}

	// Validate and the printed Config.
	for _, dsn := range []string{
		"postgres://app:" + secret + "@db1:5001,db2:5002/app?" + rw,
		"postgres://app:" + secret + "@db1:5001,db2/app?" + rw,
		"postgres://app:" + secret + "@[::1]:5001,[::1]:5002/app?" + rw,
		"host=db1,db2 port=5001,5002 password=" + secret + " dbname=app " + rw,
	} {
		cfg := dbfx.Config{DSN: dsn}
		if err := cfg.Validate(postgres.Driver()); err != nil {
			t.Errorf("Validate(%q): %v", dsn, err)
		}
		for _, form := range []string{cfg.String(), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%q", cfg)} {
			if strings.Contains(form, secret) || strings.Contains(form, "unparsed") || !strings.Contains(form, "db1") && !strings.Contains(form, "::1") {
				t.Errorf("%q prints as %s: want it whole but its password", dsn, form)
			}
		}
	}
}

// TestPostgresSeveralHostsConnect: an engine given two hosts of which
// neither answers fails to start with an error that names both and shows
// no password; lib/pq tries them in turn.
func TestPostgresSeveralHostsConnect(t *testing.T) {
	unsetenv(t, "PGPASSWORD", "PGSSLMODE")
	var addrs []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close() // refused from now on
	}
	dsn := "postgres://app:" + secret + "@" + strings.Join(addrs, ",") + "/app?sslmode=disable&target_session_attrs=read-write"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := dbfx.Open(ctx, dbfx.Config{DSN: dsn, ConnectTimeout: time.Second}, dbfx.WithDriver(postgres.Driver()))
	if !errors.Is(err, dbfx.ErrConnect) {
		t.Fatalf("Open: %v; want ErrConnect", err)
	}
	msg := err.Error()
	if strings.Contains(msg, secret) {
		t.Errorf("the error shows the password: %s", msg)
	}
	for _, a := range addrs {
		if !strings.Contains(msg, a) {
			t.Errorf("the error does not name %s: %s", a, msg)
		}
	}
}

// TestPostgresSeveralHostsFirstHung: a first host that accepts and never
// answers (a server stopped, a machine gone behind a proxy) costs the
// first connection the DSN's connect_timeout before lib/pq tries the next
// host, which serves it (without connect_timeout it would cost the
// engine's ConnectTimeout); the next connections start at the host that
// served, and wait on the hung one no more.
func TestPostgresSeveralHostsFirstHung(t *testing.T) {
	cfg := fxtest.Postgres(t)
	u, err := url.Parse(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	held := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c // never answered
		}
	}()
	defer func() {
		hung.Close()
		for c := range held {
			c.Close()
		}
	}()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	real := u.Host
	u.Host = "HOSTS"
	cfg.DSN = strings.Replace(u.String(), "HOSTS", hung.Addr().String()+","+real, 1)
	cfg.ConnectTimeout = 20 * time.Second
	cfg.MaxIdleConns, cfg.MaxOpenConns = 2, 2

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begun := time.Now()
	e, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(postgres.Driver()))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	var port int
	if err := e.DB().GetContext(ctx, &port, "SELECT inet_server_port()"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begun)
	if want := u.Port(); fmt.Sprint(port) != want && want != "" {
		t.Errorf("connected to port %d, want the second host's %s", port, want)
	}
	if took < time.Second || took > 5*time.Second {
		t.Errorf("the first connection took %s: want the first host's connect_timeout (1s), then the second host", took)
	}

	// A second connection, while the first is held.
	held1, err := e.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held1.Close()
	begun = time.Now()
	second, err := e.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatal(err)
	}
	took2 := time.Since(begun)
	if took2 > 700*time.Millisecond {
		t.Errorf("the second connection took %s: it waited on the hung host again", took2)
	}
	t.Logf("first connection in %s, the second in %s", took.Round(time.Millisecond), took2.Round(time.Millisecond))
}
