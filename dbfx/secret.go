package dbfx

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap/zapcore"
)

// A Config prints without its passwords, in every form: String, GoString
// (%#v), Format (every fmt verb), MarshalLogObject (zap.Any and
// zap.Object), LogValue (slog) and MarshalJSON. Each prints the DSN and the
// replicas' DSNs as redactDSN makes them; every other field as it is. A
// field added to Config appears in every form without more code (they
// read the fields by reflection): a field that holds a secret must be
// redacted here.

// Hidden stands for a password in a printed DSN.
const hidden = "xxxxx"

var (
	_ fmt.Stringer            = Config{}
	_ fmt.GoStringer          = Config{}
	_ fmt.Formatter           = Config{}
	_ zapcore.ObjectMarshaler = Config{}
	_ slog.LogValuer          = Config{}
	_ json.Marshaler          = Config{}
)

// configFields is Config without its methods, for printing its fields.
type configFields Config

// redacted returns c with its DSNs redacted.
func (c Config) redacted() configFields {
	r := configFields(c)
	r.DSN = redactDSN(c.DSN)
	if c.FailoverAddrs != nil {
		r.FailoverAddrs = make([]string, len(c.FailoverAddrs))
		for i, a := range c.FailoverAddrs {
			r.FailoverAddrs[i] = a
			if strings.ContainsAny(a, "@=") {
				r.FailoverAddrs[i] = "(not host:port)" // a DSN put there by mistake: it may hold a password
			}
		}
	}
	if c.Replicas != nil {
		r.Replicas = make([]string, len(c.Replicas))
		for i, dsn := range c.Replicas {
			r.Replicas[i] = redactDSN(dsn)
		}
	}
	return r
}

// String prints the fields with their names, the DSNs without passwords:
// {Name:primary Driver:postgres DSN:postgres://app:xxxxx@db/app ...}.
func (c Config) String() string { return fmt.Sprintf("%+v", c.redacted()) }

// GoString prints c as a Go value (%#v), the DSNs without passwords.
func (c Config) GoString() string {
	s := fmt.Sprintf("%#v", c.redacted())
	return "dbfx.Config" + s[strings.IndexByte(s, '{'):]
}

// Format prints c for every fmt verb, the DSNs without passwords: %v, %+v
// and %s print String, %q quotes it, %#v prints GoString. Other verbs
// print String as fmt prints a value a verb does not fit.
func (c Config) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, c.GoString())
	case verb == 'v', verb == 's':
		fmt.Fprint(f, c.String())
	case verb == 'q':
		fmt.Fprintf(f, "%q", c.String())
	default:
		fmt.Fprintf(f, "%%!%c(dbfx.Config=%s)", verb, c.String())
	}
}

// MarshalLogObject writes c's fields to a zap log line (zap.Any picks it),
// the DSNs without passwords, under the names ConfigFromEnv reads in lower
// case: dsn, replicas, max_open_conns...
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	var err error
	c.eachField(func(key string, v any) {
		switch v := v.(type) {
		case string:
			enc.AddString(key, v)
		case int:
			enc.AddInt(key, v)
		case time.Duration:
			enc.AddDuration(key, v)
		case []string:
			if e := enc.AddArray(key, stringArray(v)); e != nil && err == nil {
				err = e
			}
		default:
			if e := enc.AddReflected(key, v); e != nil && err == nil {
				err = e
			}
		}
	})
	return err
}

type stringArray []string

func (a stringArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, s := range a {
		enc.AppendString(s)
	}
	return nil
}

// LogValue is c for log/slog: a group of its fields under the names
// MarshalLogObject uses, the DSNs without passwords.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, reflect.TypeFor[Config]().NumField())
	c.eachField(func(key string, v any) { attrs = append(attrs, slog.Any(key, v)) })
	return slog.GroupValue(attrs...)
}

// MarshalJSON writes c as a JSON object under its json tags (dsn,
// max_open_conns...), the durations as Go durations ("5s"), the DSNs
// without passwords. UnmarshalJSON reads it back: the same Config but for
// the passwords, which the JSON does not hold (a Config read from JSON, or
// filled by any loader, keeps its own).
func (c Config) MarshalJSON() ([]byte, error) { return marshalJSON(c.redacted()) }

// eachField calls fn with the snake_case name and value of each field of
// c, redacted.
func (c Config) eachField(fn func(key string, v any)) {
	r := reflect.ValueOf(c.redacted())
	t := r.Type()
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			fn(snakeCase(f.Name), r.Field(i).Interface())
		}
	}
}

// snakeCase turns a Go field name into lower snake case: DSN is dsn,
// MaxOpenConns max_open_conns, ConnMaxIdleTime conn_max_idle_time.
func snakeCase(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && unicode.IsLower(rune(name[i-1]))
			nextLower := i+1 < len(name) && unicode.IsLower(rune(name[i+1]))
			if i > 0 && (prevLower || nextLower && unicode.IsUpper(rune(name[i-1]))) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// redactDSN returns dsn for printing, without its password, in each form
// enginekit accepts, read the way its driver reads it, without the driver:
//
//   - URLs (postgres://, postgresql://, mysql://, file://, any scheme):
//     the password of user:password@ and the value of every parameter
//     whose name says it is secret (password=, _auth_pass=, sslpassword=...);
//   - libpq's key=value form, quoted values included (password='a b');
//   - the mysql driver's user:password@net(addr)/db?params;
//   - SQLite's paths and file: URIs, with their parameters (_auth_pass=).
//
// It errs on the side of hiding: a DSN it cannot read, one in which the
// password could be somewhere else than where it was found (an '@' past a
// URL's user information), and one that another of these drivers, given
// it, would read a password from that the printed form shows, print as
// their scheme or form and "(unparsed)", never as they are.
func redactDSN(dsn string) string {
	if dsn == "" || dsn == ":memory:" {
		return dsn
	}
	if scheme, ok := urlScheme(dsn); ok {
		// The mysql driver is never given a URL: enginekit's reads mysql://
		// itself.
		if s, own, ok := redactURL(dsn); ok && !showsAnotherReading(dsn, s, own, false) {
			return s
		}
		return scheme + "://(unparsed)"
	}
	if strings.Contains(dsn, "://") {
		return "(unparsed)" // a URL behind a space or a bad scheme
	}
	var out, form string
	var own []string
	var ok bool
	switch {
	case keyValueForm(dsn):
		form = "key=value (unparsed)"
		out, own, ok = redactKeyValue(dsn)
	case strings.Contains(dsn, "@") || strings.Contains(dsn, "tcp(") || strings.Contains(dsn, "unix("):
		form = "mysql DSN (unparsed)"
		out, own, ok = redactMySQL(dsn)
	default: // a SQLite path or file: URI, parameters after the first '?'
		form = "path (unparsed)"
		path, query, hasQuery := strings.Cut(dsn, "?")
		ok = !strings.ContainsAny(path, "@=") && !strings.ContainsFunc(path, unicode.IsControl)
		out = path
		if hasQuery {
			out += "?" + redactQuery(query)
			own = querySecrets(query)
		}
	}
	if !ok || showsAnotherReading(dsn, out, own, true) {
		return form
	}
	return out
}

// showsAnotherReading reports whether out, dsn printed with the passwords
// own hidden, shows a password that another driver would read in dsn
// (lib/pq, the mysql driver, go-sqlite3's parameters), should dsn be given
// to it by Config.Driver.
func showsAnotherReading(dsn, out string, own []string, mysql bool) bool {
	var others []string
	if pairs, ok := readKeyValue(dsn); ok {
		for _, kv := range pairs {
			if secretKey(kv.key) {
				others = append(others, kv.value)
			}
		}
	}
	if m, ok := readMySQL(dsn); ok && mysql {
		others = append(others, m.password)
		others = append(others, querySecrets(m.params)...)
	}
	if _, q, ok := strings.Cut(dsn, "?"); ok {
		others = append(others, querySecrets(q)...)
	}
	shown := strings.ReplaceAll(out, hidden, "\x00")
	for _, p := range others {
		if p != "" && !slices.Contains(own, p) && strings.Contains(shown, p) {
			return true
		}
	}
	return false
}

// urlScheme returns the scheme of a URL (scheme://...).
func urlScheme(dsn string) (string, bool) {
	for i := 0; i < len(dsn); i++ {
		c := dsn[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && strings.HasPrefix(dsn[i:], "://"):
			return dsn[:i], true
		default:
			return "", false
		}
	}
	return "", false
}

// redactURL redacts a URL: it is read by net/url, as lib/pq and enginekit's
// mysql driver read theirs.
func redactURL(dsn string) (out string, secrets []string, ok bool) {
	u, err := url.Parse(dsn)
	hosts := ""
	if err != nil {
		// A list of hosts (a primary and its standbys) that net/url
		// refuses: db1:5432,db2 or [::1]:5432,[::2]:5432.
		var one string
		if one, hosts, ok = oneHost(dsn); ok {
			u, err = url.Parse(one)
		}
	}
	if err != nil || u.Opaque != "" {
		return "", nil, false
	}
	// The user information is what comes before the last '@' of the
	// authority (up to the first '/', '?' or '#'). An '@' past it means
	// that a password holding '/', '?' or '#' was cut there: part of it
	// would show as the host, the path or the query.
	rest := dsn[len(u.Scheme)+3:]
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if strings.Count(dsn, "@") != strings.Count(authority, "@") {
		return "", nil, false
	}
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.User != nil {
		b.WriteString(url.User(u.User.Username()).String())
		if p, ok := u.User.Password(); ok {
			b.WriteString(":" + hidden)
			secrets = append(secrets, p)
		}
		b.WriteByte('@')
	}
	if hosts != "" {
		b.WriteString(hosts)
	} else {
		b.WriteString(u.Host)
	}
	b.WriteString(u.EscapedPath())
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteByte('?')
		b.WriteString(redactQuery(u.RawQuery))
		secrets = append(secrets, querySecrets(u.RawQuery)...)
	}
	return b.String(), secrets, true // the fragment, which no driver reads, is left out
}

// oneHost returns dsn, a URL whose authority ends in a list of hosts
// (h1:5432,h2), with the list replaced by one host name, and the list; ok
// is false for any other DSN, and for a list of anything but host names,
// IP addresses in brackets and ports.
func oneHost(dsn string) (one, hosts string, ok bool) {
	scheme, ok := urlScheme(dsn)
	if !ok {
		return "", "", false
	}
	start := len(scheme) + 3
	end := len(dsn)
	if i := strings.IndexAny(dsn[start:], "/?#"); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndexByte(dsn[start:end], '@'); at >= 0 {
		start += at + 1
	}
	hosts = dsn[start:end]
	if !strings.Contains(hosts, ",") || strings.ContainsFunc(hosts, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_:,[]%", r)))
	}) {
		return "", "", false
	}
	return dsn[:start] + "h" + dsn[end:], hosts, true
}

// redactQuery redacts the parameters of a URL or DSN (a=1&b=2): the value
// of every parameter whose name says it is secret, and every parameter
// that does not read cleanly (a bad escape, a ';').
func redactQuery(q string) string {
	var b strings.Builder
	for i, p := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, v, hasValue := strings.Cut(p, "=")
		switch key, bad := queryKey(p); {
		case bad:
			b.WriteString(hidden)
		case secretKey(key) && hasValue, holdsSecretKey(v):
			b.WriteString(k + "=" + hidden)
		default:
			b.WriteString(p)
		}
	}
	return b.String()
}

// holdsSecretKey reports whether the value v reads as a parameter whose
// name says it is secret (password=...): a key's value left empty, the
// next parameter read as its value.
func holdsSecretKey(v string) bool {
	k, _, ok := strings.Cut(v, "=")
	return ok && secretKey(k)
}

// queryKey returns the name of the parameter p (name=value) unescaped;
// bad is true when p does not read cleanly.
func queryKey(p string) (key string, bad bool) {
	k, _, _ := strings.Cut(p, "=")
	key, err := url.QueryUnescape(k)
	return key, err != nil || strings.Contains(p, ";")
}

// querySecrets returns what redactQuery hides of q: the values of secret
// parameters, as written and unescaped, and the parameters that do not
// read cleanly.
func querySecrets(q string) []string {
	var out []string
	for _, p := range strings.Split(q, "&") {
		_, v, hasValue := strings.Cut(p, "=")
		switch key, bad := queryKey(p); {
		case bad:
			out = append(out, p)
		case secretKey(key) && hasValue, holdsSecretKey(v):
			out = append(out, v)
			if uv, err := url.QueryUnescape(v); err == nil {
				out = append(out, uv)
			}
		}
	}
	return out
}

// secretKey reports whether a parameter of this name may hold a secret.
func secretKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"pass", "pwd", "secret", "token", "key", "cred"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// keyValueForm reports whether dsn looks like libpq's key=value form: its
// first key, up to the first '=', is a word.
func keyValueForm(dsn string) bool {
	k, _, ok := strings.Cut(dsn, "=")
	return ok && keyWord(strings.TrimFunc(k, unicode.IsSpace))
}

// keyWord reports whether s is a parameter name of libpq's form.
func keyWord(s string) bool {
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

// kvPair is a parameter of libpq's key=value form.
type kvPair struct{ key, value string }

// readKeyValue reads libpq's key=value form as lib/pq reads it (after
// libpq's conninfo_parse): keys up to '=' or a space, values
// single-quoted (with backslash escapes) or up to a space (a backslash
// escaping the next character). ok is false where lib/pq fails.
func readKeyValue(dsn string) (pairs []kvPair, ok bool) {
	s := []rune(dsn)
	i := 0
	next := func() (rune, bool) {
		if i >= len(s) {
			return 0, false
		}
		i++
		return s[i-1], true
	}
	skipSpaces := func() (rune, bool) {
		r, ok := next()
		for ok && unicode.IsSpace(r) {
			r, ok = next()
		}
		return r, ok
	}
	for {
		r, more := skipSpaces()
		if !more {
			return pairs, true
		}
		var key []rune
		for !unicode.IsSpace(r) && r != '=' {
			key = append(key, r)
			if r, more = next(); !more {
				break
			}
		}
		if r != '=' {
			r, more = skipSpaces()
		}
		if r != '=' || !more {
			return nil, false // missing "="
		}
		var val []rune
		if r, more = skipSpaces(); more {
			if r != '\'' {
				for !unicode.IsSpace(r) {
					if r == '\\' {
						if r, more = next(); !more {
							return nil, false // missing character after backslash
						}
					}
					val = append(val, r)
					if r, more = next(); !more {
						break
					}
				}
			} else {
			quoted:
				for {
					if r, more = next(); !more {
						return nil, false // unterminated quoted string
					}
					switch r {
					case '\'':
						break quoted
					case '\\':
						r, _ = next()
						fallthrough
					default:
						val = append(val, r)
					}
				}
			}
		}
		pairs = append(pairs, kvPair{string(key), string(val)})
		if !more {
			return pairs, true
		}
	}
}

// redactKeyValue redacts libpq's key=value form, read as lib/pq reads it.
// A key that is not a word, as no key libpq knows is, makes it unparsed:
// it may be a piece of a password.
func redactKeyValue(dsn string) (out string, secrets []string, ok bool) {
	pairs, ok := readKeyValue(dsn)
	if !ok {
		return "", nil, false
	}
	var b strings.Builder
	for i, kv := range pairs {
		if !keyWord(kv.key) || holdsSecretKey(kv.value) {
			return "", nil, false
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv.key)
		b.WriteByte('=')
		if secretKey(kv.key) {
			b.WriteString(hidden)
			secrets = append(secrets, kv.value)
		} else {
			b.WriteString(quoteKeyValue(kv.value))
		}
	}
	return b.String(), secrets, true
}

// quoteKeyValue writes a value of libpq's form so that it reads back.
func quoteKeyValue(v string) string {
	if v != "" && !strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == '\'' || r == '\\' }) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// mysqlDSN is the mysql driver's form
// [user[:password]@][net[(addr)]]/dbname[?params], in pieces.
type mysqlDSN struct {
	user, password, netAddr, db, params string
	hasUser, hasPassword, hasParams     bool
}

// readMySQL cuts dsn as the mysql driver's ParseDSN does: the last '/'
// ends the address, the last '@' before it ends the user information,
// whose first ':' starts the password. ok is false without a '/'.
func readMySQL(dsn string) (m mysqlDSN, ok bool) {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return m, false
	}
	head := dsn[:slash]
	m.netAddr = head
	if at := strings.LastIndexByte(head, '@'); at >= 0 {
		m.hasUser = true
		m.user, m.password, m.hasPassword = strings.Cut(head[:at], ":")
		m.netAddr = head[at+1:]
	}
	m.db, m.params, m.hasParams = strings.Cut(dsn[slash+1:], "?")
	return m, true
}

// redactMySQL redacts the mysql driver's form, read as the driver reads
// it. What stands between the '@' and the '/' must be a network name with
// an optional (address): anything else may be a piece of a password.
func redactMySQL(dsn string) (out string, secrets []string, ok bool) {
	m, ok := readMySQL(dsn)
	if !ok || !mysqlNetAddr(m.netAddr) {
		return "", nil, false
	}
	var b strings.Builder
	if m.hasUser {
		b.WriteString(m.user)
		if m.hasPassword {
			b.WriteString(":" + hidden)
			secrets = append(secrets, m.password)
		}
		b.WriteByte('@')
	}
	b.WriteString(m.netAddr)
	b.WriteByte('/')
	b.WriteString(m.db)
	if m.hasParams {
		b.WriteByte('?')
		b.WriteString(redactQuery(m.params))
		secrets = append(secrets, querySecrets(m.params)...)
	}
	return b.String(), secrets, true
}

// mysqlNetAddr reports whether s is "", a network name, or a network name
// and an address in parentheses, with no '@' or control character.
func mysqlNetAddr(s string) bool {
	name, addr, hasAddr := strings.Cut(s, "(")
	for _, r := range name {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return !hasAddr || strings.HasSuffix(addr, ")") && !strings.ContainsFunc(addr, func(r rune) bool {
		return r == '@' || unicode.IsControl(r)
	})
}
