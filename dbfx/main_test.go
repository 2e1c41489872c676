package dbfx_test

import (
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// proxy forwards TCP connections to a database server. It drops the first
// `drop` connections at once (a server not yet up), and Close cuts every
// connection (a server gone).
type proxy struct {
	ln       net.Listener
	target   string
	drop     atomic.Int32
	accepted atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, target string, drop int) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.drop.Store(int32(drop))
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if p.drop.Add(-1) >= 0 {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
	}
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// viaProxy returns cfg with its DSN pointing at a proxy to its server.
func viaProxy(t *testing.T, cfg dbfx.Config, drop int) (dbfx.Config, *proxy) {
	t.Helper()
	switch cfg.Driver {
	case "postgres":
		u, err := url.Parse(cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		p := startProxy(t, u.Host, drop)
		u.Host = p.Addr()
		cfg.DSN = u.String()
		return cfg, p
	case "mysql":
		mc, err := mysql.ParseDSN(cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		p := startProxy(t, mc.Addr, drop)
		mc.Addr = p.Addr()
		cfg.DSN = mc.FormatDSN()
		return cfg, p
	}
	t.Skipf("%s has no server to proxy", cfg.Driver)
	return cfg, nil
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func mustNotContain(t *testing.T, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Fatalf("%q leaks the secret %q", text, secret)
	}
}
