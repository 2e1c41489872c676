package postgres

import (
	"context"
	"database/sql/driver"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// Several servers for one database (a primary and its standbys) are
// named in one DSN, as libpq names them:
//
//	postgres://app:pw@db1:5432,db2:5433/app?target_session_attrs=read-write
//	host=db1,db2 port=5432,5433 dbname=app target_session_attrs=read-write
//
// lib/pq tries the hosts in turn (in random order with
// load_balance_hosts=random) and keeps the first that answers and has the
// target_session_attrs asked for: read-write (or primary) skips a standby,
// so that after a failover new connections reach the promoted one.
//
// lib/pq v1.12 reads the key=value form right, but hands a URL's host list
// to its key=value reader as one string: db1:5432,db2:5433 became the
// hosts "db1:5432" and "db2:5433", each on port 5432, and a list in which
// a host has no port or is an IPv6 literal ([::1]:5432) failed to parse.
// hostList rewrites such a URL into the URL form in which lib/pq reads the
// hosts right: the hosts and ports as parameters.

// hostList returns dsn, a postgres:// or postgresql:// URL naming several
// hosts in its authority, with the hosts and their ports moved into host=
// and port= parameters (postgres://app:pw@/app?host=db1,db2&port=5432,5433),
// as libpq reads them: a host without a port has the default port 5432
// when another has a port, and the port lib/pq would use (PGPORT, else
// 5432) when none has; a port= parameter wins over the hosts' ports. Any
// other DSN is returned as it is, and so is a URL whose parameters
// already name hosts (lib/pq then says what it makes of it) or whose host
// list does not read as one.
func hostList(dsn string) string {
	var scheme string
	for _, s := range []string{"postgres://", "postgresql://"} {
		if strings.HasPrefix(dsn, s) {
			scheme = s
		}
	}
	if scheme == "" {
		return dsn
	}
	rest := dsn[len(scheme):]
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	authority, tail := rest[:end], rest[end:]
	user, hosts := "", authority
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user, hosts = authority[:at+1], authority[at+1:]
	}
	if !strings.Contains(hosts, ",") {
		return dsn
	}
	path, query, _ := strings.Cut(tail, "?")
	query, fragment, hasFragment := strings.Cut(query, "#")
	if hf := strings.IndexByte(path, '#'); hf >= 0 { // no query: the fragment follows the path
		path, fragment, hasFragment = path[:hf], path[hf+1:], true
	}
	portParam := false
	for _, p := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(p, "=")
		k, err := url.QueryUnescape(k)
		if err != nil || k == "host" || k == "hostaddr" {
			return dsn
		}
		portParam = portParam || k == "port"
	}
	var names, ports []string
	anyPort := false
	for _, h := range strings.Split(hosts, ",") {
		name, port, ok := splitHostPort(h)
		if !ok {
			return dsn
		}
		names = append(names, name)
		ports = append(ports, port)
		anyPort = anyPort || port != ""
	}
	params := "host=" + url.QueryEscape(strings.Join(names, ","))
	if anyPort && !portParam { // a port= parameter wins over the ports of the hosts, as in libpq
		for i, p := range ports {
			if p == "" {
				ports[i] = "5432"
			}
		}
		params += "&port=" + strings.Join(ports, ",")
	}
	if query != "" {
		params = query + "&" + params
	}
	out := scheme + user + path + "?" + params
	if hasFragment {
		out += "#" + fragment
	}
	return out
}

// splitHostPort reads one host of a URL's host list: name, name:port,
// [ipv6] or [ipv6]:port, the name percent-decoded.
func splitHostPort(h string) (name, port string, ok bool) {
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", "", false
		}
		name, h = h[1:end], h[end+1:]
		if h != "" {
			if h[0] != ':' {
				return "", "", false
			}
			port = h[1:]
		}
	} else {
		name = h
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			name, port = h[:i], h[i+1:]
		}
		if strings.ContainsAny(name, ":[]") {
			return "", "", false
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", "", false
		}
	}
	name, err := url.PathUnescape(name)
	return name, port, err == nil
}

// Each new connection tries the hosts in the DSN's order. A host that is
// down but whose machine lives refuses at once; one whose machine is gone
// (or a server that accepts and never answers) holds each connection for
// its connect_timeout before lib/pq tries the next. After a failover the
// dead primary is usually first in the DSN: preferServed starts each
// connection at the host that served the last one, so that only the first
// connection after a failover waits on the dead host.

// servedKey is the ctx key under which a Connect learns the address it
// reached (the last one dialed).
type servedKey struct{}

// recordingDialer dials with d and writes the address of each dial to the
// *string the ctx carries under servedKey (lib/pq dials the hosts in turn
// and keeps the last it dialed; its cancel requests carry no such ctx).
type recordingDialer struct{ d pq.DialerContext }

func (r recordingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if s, ok := ctx.Value(servedKey{}).(*string); ok {
		*s = address
	}
	return r.d.DialContext(ctx, network, address)
}

func (r recordingDialer) Dial(network, address string) (net.Conn, error) {
	return r.d.DialContext(context.Background(), network, address)
}

func (r recordingDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.d.DialContext(ctx, network, address)
}

// preferServed opens connections to cfg's hosts (more than one) with the
// connectors build makes, each of cfg with its hosts in the DSN's order
// but starting at another host: a Connect uses the one that starts at the
// host that served the last successful Connect. lib/pq's
// load_balance_hosts=random is left to lib/pq.
type preferServed struct {
	conns []driver.Connector // conns[i] tries host i first, then the rest in order
	addrs []string           // the address lib/pq dials for host i
	first atomic.Int32
}

// newPreferServed returns the connector of cfg, whose hosts are several,
// on dialer, as build makes it for one order of the hosts.
func newPreferServed(cfg pq.Config, dialer pq.DialerContext, build func(pq.Config, pq.Dialer) (driver.Connector, error)) (driver.Connector, error) {
	type host struct {
		name string
		addr netip.Addr
		port uint16
	}
	hosts := []host{{cfg.Host, cfg.Hostaddr, cfg.Port}}
	for _, m := range cfg.Multi {
		hosts = append(hosts, host{m.Host, m.Hostaddr, m.Port})
	}
	p := &preferServed{}
	rec := recordingDialer{d: dialer}
	for i := range hosts {
		c := cfg.Clone()
		order := append(slices.Clone(hosts[i:]), hosts[:i]...)
		c.Host, c.Hostaddr, c.Port = order[0].name, order[0].addr, order[0].port
		c.Multi = nil
		for _, h := range order[1:] {
			c.Multi = append(c.Multi, pq.ConfigMultihost{Host: h.name, Hostaddr: h.addr, Port: h.port})
		}
		conn, err := build(c, rec)
		if err != nil {
			return nil, err
		}
		p.conns = append(p.conns, conn)
		p.addrs = append(p.addrs, dialAddress(hosts[i].name, hosts[i].addr, hosts[i].port))
	}
	return p, nil
}

// dialAddress is the address lib/pq dials for a host.
func dialAddress(name string, addr netip.Addr, port uint16) string {
	p := strconv.Itoa(int(port))
	switch {
	case addr.IsValid():
		return net.JoinHostPort(addr.String(), p)
	case filepath.IsAbs(name) || strings.HasPrefix(name, "@"):
		return filepath.Join(name, ".s.PGSQL."+p)
	}
	return net.JoinHostPort(name, p)
}

func (p *preferServed) Connect(ctx context.Context) (driver.Conn, error) {
	var served string
	c, err := p.conns[p.first.Load()].Connect(context.WithValue(ctx, servedKey{}, &served))
	if err == nil {
		if i := slices.Index(p.addrs, served); i >= 0 {
			p.first.Store(int32(i))
		}
	}
	return c, err
}

func (p *preferServed) Driver() driver.Driver { return p.conns[0].Driver() }
