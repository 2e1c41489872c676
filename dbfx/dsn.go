package dbfx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// resolved is a validated Config with the DSNs enginekit opens.
type resolved struct {
	cfg      Config
	writer   string // DSN of the primary (writer) pool
	reader   string // SQLite: DSN of the query-only reader pool
	memory   bool   // SQLite in memory: one connection serves every scope
	host     string // where the database is, for messages (never the password)
	password string // scrubbed from any error text
	tlsOff   bool   // a network connection without TLS
	mysql    *mysql.Config
	replicas []*resolved // Config.Replicas, resolved
}

// inferDriver guesses the driver from the form of a DSN.
func inferDriver(dsn string) string {
	switch {
	case dsn == "":
		return ""
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres"
	case strings.HasPrefix(dsn, "mysql://"),
		strings.Contains(dsn, "@tcp("), strings.Contains(dsn, "@unix("), strings.Contains(dsn, "@/"):
		return "mysql"
	case strings.HasPrefix(dsn, "file:"), dsn == ":memory:":
		return "sqlite3"
	case strings.Contains(dsn, "=") && (strings.Contains(dsn, "host=") || strings.Contains(dsn, "dbname=")):
		return "postgres" // key=value form
	}
	return "sqlite3" // a file path
}

func resolveDSN(c Config) (*resolved, error) {
	switch c.Driver {
	case "postgres", "pgx":
		return resolvePostgres(c.DSN)
	case "mysql":
		return resolveMySQL(c.DSN, c)
	}
	return resolveSQLite(c.DSN)
}

func resolvePostgres(dsn string) (*resolved, error) {
	r := &resolved{writer: dsn}
	var sslmode string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error quotes the whole URL, password included
			}
			return nil, fmt.Errorf("not a valid postgres URL: %v", err)
		}
		r.password, _ = u.User.Password()
		r.host = u.Host + u.Path
		q := u.Query()
		sslmode = q.Get("sslmode")
		if p := q.Get("password"); p != "" {
			r.password = p
		}
		if u.Hostname() == "" {
			r.host = q.Get("host") + u.Path
		}
	} else {
		kv := parseKeyValue(dsn)
		r.password, sslmode = kv["password"], kv["sslmode"]
		r.host = kv["host"] + "/" + kv["dbname"]
	}
	r.tlsOff = sslmode == "disable" || sslmode == "allow" || sslmode == "prefer"
	return r, nil
}

// parseKeyValue reads a libpq key=value DSN (without quoted values).
func parseKeyValue(dsn string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func resolveMySQL(dsn string, c Config) (*resolved, error) {
	if strings.HasPrefix(dsn, "mysql://") {
		var err error
		if dsn, err = mysqlURLToDSN(dsn); err != nil {
			return nil, err
		}
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("not a valid mysql DSN: %v", strings.TrimPrefix(err.Error(), "invalid DSN: "))
	}
	// enginekit relies on these: DATETIME scans into time.Time, and an
	// UPDATE that changes nothing still counts the row it matched.
	for param, on := range map[string]bool{"parseTime": mc.ParseTime, "clientFoundRows": mc.ClientFoundRows} {
		if !on && strings.Contains(dsn, param+"=") {
			return nil, fmt.Errorf("%s must be true (enginekit relies on it)", param)
		}
	}
	mc.ParseTime, mc.ClientFoundRows = true, true
	// A statement with arguments sent as it is takes one round trip instead
	// of a server-side prepare, execute and close: the driver writes the
	// values into the SQL text (escaped, outside strings and comments) and
	// falls back to a prepare for a value it cannot write. Only where the
	// DSN says nothing (false stays false), and never with a character set
	// that can hide a backslash in a multibyte character (the package
	// documentation says what it changes).
	if !strings.Contains(dsn, "interpolateParams=") && interpolationSafe(dsn, mc) {
		mc.InterpolateParams = true
	}
	if mc.Timeout == 0 {
		mc.Timeout = c.ConnectTimeout
	}
	r := &resolved{writer: mc.FormatDSN(), password: mc.Passwd, host: mc.Addr + "/" + mc.DBName, mysql: mc}
	r.tlsOff = mc.Net != "unix" && (mc.TLSConfig == "" || mc.TLSConfig == "false" || mc.TLSConfig == "preferred")
	return r, nil
}

// interpolationSafe reports whether the mysql driver may write values into
// SQL text on connections of dsn: not when its character set or collation
// (a charset or collation parameter, or a system variable set in the DSN)
// is one whose multibyte characters may end in the byte of a backslash,
// which escaping cannot tell apart.
func interpolationSafe(dsn string, mc *mysql.Config) bool {
	params := strings.ToLower(mc.Collation + " " + dsn[strings.LastIndex(dsn, "/")+1:])
	for _, cs := range []string{"big5", "cp932", "gb2312", "gbk", "gb18030", "sjis"} {
		if strings.Contains(params, cs) {
			return false
		}
	}
	return true
}

// mysqlURLToDSN turns mysql://user:pass@host:port/db?params into the
// go-sql-driver form user:pass@tcp(host:port)/db?params.
func mysqlURLToDSN(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("not a valid mysql URL: %v", err)
	}
	mc := mysql.NewConfig()
	mc.User = u.User.Username()
	mc.Passwd, _ = u.User.Password()
	mc.Net, mc.Addr = "tcp", u.Host
	if u.Port() == "" {
		mc.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	mc.DBName = strings.TrimPrefix(u.Path, "/")
	dsn := mc.FormatDSN()
	if u.RawQuery != "" {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + u.RawQuery
	}
	return dsn, nil
}

// SQLite parameters enginekit sets unless the DSN does.
const (
	sqliteBusyTimeout = "_busy_timeout=5000"
)

func resolveSQLite(dsn string) (*resolved, error) {
	path, query, _ := strings.Cut(dsn, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("not a valid sqlite3 DSN: bad query string")
	}
	memory := path == ":memory:" || path == "file::memory:" || params.Get("mode") == "memory"
	r := &resolved{memory: memory, host: path}
	r.password = params.Get("_auth_pass")
	if v := firstOf(params, "_txlock"); v != "" && v != "immediate" && v != "exclusive" {
		return nil, fmt.Errorf("_txlock=%s would let writers fail with SQLITE_BUSY_SNAPSHOT: use immediate", v)
	}
	if v := firstOf(params, "_query_only"); v != "" && v != "0" && v != "false" {
		return nil, errors.New("_query_only is set by enginekit on its reader pool only: remove it")
	}
	if v := strings.ToLower(firstOf(params, "_journal_mode", "_journal")); !memory && v != "" && v != "wal" {
		return nil, fmt.Errorf("_journal_mode=%s would block readers behind the writer: use WAL", v)
	}
	if memory && path == ":memory:" {
		// A private name, so that two engines in one process never share it.
		var b [8]byte
		_, _ = rand.Read(b[:])
		path = "file:enginekit-" + hex.EncodeToString(b[:])
		params.Set("mode", "memory")
		r.host = ":memory:"
	}
	setDefault(params, "_txlock", "immediate")
	// REFERENCES are enforced, as on the other databases.
	if firstOf(params, "_foreign_keys", "_fk") == "" {
		params.Set("_foreign_keys", "1")
	}
	if firstOf(params, "_busy_timeout", "_timeout") == "" {
		k, v, _ := strings.Cut(sqliteBusyTimeout, "=")
		params.Set(k, v)
	}
	if !memory {
		setDefault(params, "_journal_mode", "WAL")
	}
	r.writer = path + "?" + params.Encode()
	if !memory {
		params.Set("_txlock", "deferred")
		params.Set("_query_only", "1")
		params.Del("_journal_mode")
		params.Del("_journal")
		r.reader = path + "?" + params.Encode()
	}
	return r, nil
}

func firstOf(v url.Values, keys ...string) string {
	for _, k := range keys {
		if s := v.Get(k); s != "" {
			return s
		}
	}
	return ""
}

func setDefault(v url.Values, key, value string) {
	if v.Get(key) == "" {
		v.Set(key, value)
	}
}

// redact removes the password from an error's text.
func (r *resolved) redact(msg string) string {
	if r.password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, r.password, "xxxxx")
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
