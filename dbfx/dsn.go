package dbfx

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"unicode"

	"github.com/enginekit/enginekit/internal/drv"
)

// resolved is a validated Config with what its driver makes of the DSN.
type resolved struct {
	cfg         Config
	drv         *drv.Driver
	*drv.Target             // the DSN's connectors and what may be said of it
	replicas    []*resolved // Config.Replicas, resolved
}

// packageOf is the driver package of a driver enginekit has.
func packageOf(name string) (string, bool) {
	switch name {
	case "postgres", "pgx", "mysql", "sqlite3":
		return "github.com/enginekit/enginekit/dbfx/" + name, true
	}
	return "", false
}

// formRead is the DSN form the driver of that name reads: its name, but
// for pgx, which reads postgres DSNs.
func formRead(name string) string {
	if name == "pgx" {
		return "postgres"
	}
	return name
}

// What a DSN is (DESIGN "Which DSN is which"):
//
//   - postgres:// and postgresql:// URLs, and libpq's key=value pairs
//     (at least one key libpq knows, such as host= or dbname=): postgres;
//   - mysql:// URLs and the mysql driver's own form, user:pw@tcp(host)/db,
//     user:pw@unix(/socket)/db, user@/db, tcp(host)/db, unix(/socket)/db:
//     mysql;
//   - :memory:, a file: URI, or a path (no "://", and before any "?" no
//     "@", "=", "tcp(" or "unix("): sqlite3;
//   - anything else is no DSN enginekit knows: a config error, whatever
//     the drivers given, rather than a file of that name.
//
// Config.Driver decides where a DSN could be either (a bare /db is a path
// and the mysql driver's DSN of a local server), and makes any string a
// path for sqlite3; a DSN that is plainly another driver's is refused.

// familyOf is the driver whose form dsn has: postgres, mysql or sqlite3,
// or "" when it has none of them.
func familyOf(dsn string) string {
	fam, _ := formOf(dsn)
	return fam
}

// mysqlForm matches the mysql driver's DSNs: [user[:password]@][net[(addr)]]/dbname,
// with a user or a net(addr) (a bare /dbname is a path).
var mysqlForm = regexp.MustCompile(`^(?s:.*@(?:(?:tcp|tcp4|tcp6|unix)(?:\([^)]*\))?)?/|(?:tcp|tcp4|tcp6|unix)\([^)]*\)/)`)

// formOf is the driver whose form dsn has ("" for none); path is true
// when dsn is a plain path, which Config.Driver may read otherwise.
func formOf(dsn string) (fam string, path bool) {
	switch {
	case dsn == "", strings.TrimSpace(dsn) != dsn:
		return "", false
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres", false
	case strings.HasPrefix(dsn, "mysql://"):
		return "mysql", false
	case dsn == ":memory:", strings.HasPrefix(dsn, "file:"):
		return "sqlite3", false
	case strings.Contains(dsn, "://"):
		return "", false
	case libpqKeyValue(dsn): // before mysql's form, which a password of it could mimic
		return "postgres", false
	case mysqlForm.MatchString(dsn):
		return "mysql", false
	case isPath(dsn):
		return "sqlite3", true
	}
	return "", false
}

// isPath: no "://" and, before any "?" (go-sqlite3's parameters), no "@",
// "=", "tcp(" or "unix(".
func isPath(dsn string) bool {
	p, _, _ := strings.Cut(dsn, "?")
	return !strings.Contains(dsn, "://") && !strings.ContainsAny(p, "@=") &&
		!strings.Contains(p, "tcp(") && !strings.Contains(p, "unix(")
}

// libpqKeys are the connection keys libpq and lib/pq know.
var libpqKeys = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "database": true, "user": true,
	"password": true, "passfile": true, "require_auth": true, "channel_binding": true,
	"connect_timeout": true, "client_encoding": true, "options": true, "application_name": true,
	"fallback_application_name": true, "keepalives": true, "keepalives_idle": true,
	"keepalives_interval": true, "keepalives_count": true, "tcp_user_timeout": true,
	"replication": true, "gssencmode": true, "sslmode": true, "requiressl": true,
	"sslnegotiation": true, "sslcompression": true, "sslcert": true, "sslkey": true,
	"sslpassword": true, "sslcertmode": true, "sslrootcert": true, "sslcrl": true, "sslcrldir": true,
	"sslsni": true, "sslinline": true, "requirepeer": true, "ssl_min_protocol_version": true,
	"ssl_max_protocol_version": true, "min_protocol_version": true, "max_protocol_version": true,
	"krbsrvname": true, "krbspn": true, "gsslib": true, "gssdelegation": true, "service": true,
	"target_session_attrs": true, "load_balance_hosts": true, "binary_parameters": true,
	"disable_prepared_binary_result": true, "datestyle": true, "tz": true, "geqo": true,
}

// libpqKeyValue reports whether dsn is libpq's key=value pairs (values
// quoted with ' where they hold spaces, backslash escaping) of which at
// least one key is libpq's. A word without "=" or an unterminated quote
// ends the reading: after a key of libpq's, lib/pq then says what is
// wrong.
func libpqKeyValue(dsn string) bool {
	s := []rune(dsn) // as lib/pq reads it
	known := false
	i := 0
	space := func() {
		for i < len(s) && unicode.IsSpace(s[i]) {
			i++
		}
	}
	for {
		space()
		if i == len(s) {
			return known
		}
		k := i
		for i < len(s) && s[i] != '=' && !unicode.IsSpace(s[i]) {
			i++
		}
		key := string(s[k:i])
		if !isWord(key) {
			return known // pairs until a word that lib/pq will refuse
		}
		known = known || libpqKeys[key]
		space()
		if i == len(s) || s[i] != '=' {
			return known
		}
		i++
		space()
		if i < len(s) && s[i] == '\'' {
			for i++; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			if i >= len(s) {
				return known // unterminated
			}
			i++
			continue
		}
		for ; i < len(s) && !unicode.IsSpace(s[i]); i++ {
			if s[i] == '\\' {
				i++
			}
		}
		i = min(i, len(s))
	}
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// dsnProblem says why dsn cannot be opened with the driver named (""
// when Config.Driver is empty), or "" when nothing stands in the way
// (the driver then parses it). No answer quotes the DSN.
func dsnProblem(name, dsn string) string {
	switch {
	case dsn == "":
		return ""
	case strings.TrimLeftFunc(dsn, unicode.IsSpace) != dsn:
		return "begins with white space: trim it"
	case strings.TrimRightFunc(dsn, unicode.IsSpace) != dsn:
		return "ends with white space (a line end read with it?): trim it"
	}
	fam, path := formOf(dsn)
	if _, known := packageOf(name); name != "" && !known {
		return "" // Driver's own error says so
	}
	switch {
	case fam == "" && name != "" && !strings.Contains(dsn, "://"):
		return "" // the driver named reads it (sqlite3: as a file of that name)
	case fam == "":
		return unknownDSN(dsn)
	case name != "" && fam != formRead(name) && !path:
		return fmt.Sprintf("is a %s DSN, but the engine's driver is %s", fam, name)
	}
	return ""
}

// scheme matches a URL's scheme (RFC 3986).
var scheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// unknownDSN says why dsn, of no form enginekit knows, is refused.
func unknownDSN(dsn string) string {
	const forms = "postgres://, postgresql://, libpq's key=value pairs, mysql://, the mysql driver's " +
		"user:password@tcp(host:3306)/db, a file path, a file: URI or :memory:"
	p, _, _ := strings.Cut(dsn, "?")
	switch m := scheme.FindStringSubmatch(dsn); {
	case m != nil && strings.Contains(m[1], "+"):
		return fmt.Sprintf("the scheme %q is not one enginekit knows (a SQLAlchemy URL? drop its +driver: %s://); want %s",
			m[1], m[1][:strings.IndexByte(m[1], '+')], forms)
	case m != nil:
		return fmt.Sprintf("the scheme %q is not one enginekit knows; want %s", m[1], forms)
	case strings.Contains(dsn, "://"):
		return "is not a URL enginekit knows; want " + forms
	case strings.Contains(p, "@"):
		return "has a user (@) but no tcp(host:port) or unix(socket) and no /dbname, as the mysql driver wants: " +
			"user:password@tcp(host:3306)/db (set Driver to sqlite3 for a file whose name has @)"
	case strings.Contains(p, "tcp(") || strings.Contains(p, "unix("):
		return "is not the mysql driver's user:password@tcp(host:3306)/db"
	case strings.Contains(p, "="):
		return "is not libpq's key=value pairs (host=... dbname=...) nor a file path " +
			"(set Driver to postgres for other keys, to sqlite3 for a file whose name has =)"
	}
	return "is not a DSN enginekit knows; want " + forms
}

// resolveDSN is d.Resolve(dsn, o) with nothing that could be a password
// in its answers: an error whose text may quote a piece of one
// (drv.MayQuote) is replaced by what the driver says of the DSN masked
// (drv.Mask), and the Target's Host is redacted.
func resolveDSN(d *drv.Driver, dsn string, o drv.Options) (*drv.Target, error) {
	t, err := d.Resolve(dsn, o)
	secrets := drv.Secrets(dsn)
	if err != nil {
		msg := err.Error()
		if drv.MayQuote(msg, secrets...) {
			msg = "its user or password is malformed"
			if _, merr := d.Resolve(drv.Mask(dsn), o); merr != nil {
				msg = merr.Error()
			}
		}
		return nil, errors.New(drv.Redact(msg, secrets...))
	}
	t.Host = drv.Redact(t.Host, append(secrets, t.Password)...)
	return t, nil
}

// drivers are the drivers given to an engine, once each.
type drivers []*drv.Driver

// add adds d unless a driver of its name is there: a driver given twice
// counts once.
func (ds drivers) add(d Driver) drivers {
	if d == nil || d.Spec() == nil {
		return ds
	}
	for _, have := range ds {
		if have.Name == d.Spec().Name {
			return ds
		}
	}
	return append(ds, d.Spec())
}

// pick returns the driver named by Config.Driver, or by the family of
// the DSN when that is empty, among ds. When there is none, field and why
// say so; notGiven is true when the driver is one of enginekit's that was
// not given.
func (ds drivers) pick(name, dsn string) (d *drv.Driver, field, why string, notGiven bool) {
	if why := dsnProblem(name, dsn); why != "" {
		return nil, "DSN", why, false
	}
	field = "Driver"
	if name == "" {
		field, name = "DSN", familyOf(dsn)
	}
	for _, d := range ds {
		if d.Name == name {
			return d, "", "", false
		}
	}
	if field == "DSN" { // a driver that reads another's form: pgx, postgres DSNs
		for _, d := range ds {
			if d.Form == name {
				return d, "", "", false
			}
		}
	}
	pkg, known := packageOf(name)
	give := "import " + pkg + " and put its Module in the Fx graph, or give its Driver() with dbfx.WithDriver"
	switch {
	case !known:
		return nil, field, fmt.Sprintf("%q is not a driver enginekit has (want postgres, pgx, mysql or sqlite3)", name), false
	case field == "Driver":
		return nil, field, fmt.Sprintf("%q was not given: %s", name, give), true
	}
	return nil, field, fmt.Sprintf("is a %s DSN, but no %s driver was given: %s", name, name, give), true
}

// redact removes from a message the password, and whatever else the DSN
// holds that could be one (drv.Secrets).
func (r *resolved) redact(msg string) string {
	return drv.Redact(msg, append(drv.Secrets(r.cfg.DSN), r.Password)...)
}

// loopback reports whether host (host:port, host/db, or a socket) is on
// this machine.
func loopback(host string) bool {
	h := host
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	if h == "" || h == "localhost" || strings.HasPrefix(h, "/") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
