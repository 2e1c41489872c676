package postgres

import (
	"net/url"
	"strings"
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
