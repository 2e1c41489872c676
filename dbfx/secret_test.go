package dbfx_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
)

// marker is the password in the DSNs of these tests: no printed form of a
// Config may hold it.
const marker = "S3cr3tMarker"

// dsnForms are the DSN forms enginekit accepts, each with marker as its
// password, and how a Config prints them.
var dsnForms = []struct {
	name string
	give string
	want string
}{
	{"postgres url", "postgres://app:" + marker + "@db:5432/app?sslmode=disable", "postgres://app:xxxxx@db:5432/app?sslmode=disable"},
	{"postgresql url", "postgresql://app:" + marker + "@db/app", "postgresql://app:xxxxx@db/app"},
	{"postgres url, escaped password", "postgres://app:" + marker + "%2F%40%3F@db/app", "postgres://app:xxxxx@db/app"},
	{"postgres url, password with @", "postgres://app:" + marker + "@x@db/app", "postgres://app:xxxxx@db/app"},
	{"postgres url, password parameter", "postgres://app@db/app?sslmode=require&password=" + marker, "postgres://app@db/app?sslmode=require&password=xxxxx"},
	{"postgres url, escaped parameter name", "postgres://db/app?pass%77ord=" + marker, "postgres://db/app?pass%77ord=xxxxx"},
	{"postgres url, multi-host", "postgres://app:" + marker + "@db1:5432,db2:5432/app?target_session_attrs=read-write",
		"postgres://app:xxxxx@db1:5432,db2:5432/app?target_session_attrs=read-write"},
	{"postgres url, password cut by '/'", "postgres://app:12/" + marker + "@db/app", "postgres://(unparsed)"},
	{"postgres url, password cut by '#'", "postgres://app:12#" + marker + "@db/app", "postgres://(unparsed)"},
	{"postgres url, password cut by '?'", "postgres://app:12?" + marker + "@db/app", "postgres://(unparsed)"},
	{"postgres url, bad port", "postgres://app:" + marker + "@db:port/app", "postgres://(unparsed)"},
	{"key=value", "host=db user=app password=" + marker + " dbname=app", "host=db user=app password=xxxxx dbname=app"},
	{"key=value, quoted", "host=db password='" + marker + " b' dbname=app", "host=db password=xxxxx dbname=app"},
	{"key=value, quoted with escapes", `host=db password='` + marker + `\' \\x' dbname=app`, "host=db password=xxxxx dbname=app"},
	{"key=value, spaces around =", "host = db password = " + marker, "host=db password=xxxxx"},
	{"key=value, quoted, no space after", "password='" + marker + "'host=db", "password=xxxxx host=db"},
	{"key=value, escaped space", `password=` + marker + `\ b host=db`, "password=xxxxx host=db"},
	{"key=value, quoted others", "host=db application_name='my app' password=" + marker, "host=db application_name='my app' password=xxxxx"},
	{"key=value, unterminated quote", "host=db password='" + marker, "key=value (unparsed)"},
	{"key=value, missing =", "host=db password " + marker, "key=value (unparsed)"},
	{"key=value, odd key", "host=db pass:" + marker + "=x", "key=value (unparsed)"},
	{"key=value, empty value", "host= password=" + marker + " dbname=app", "key=value (unparsed)"},
	{"key=value, also a mysql DSN", "a=b:" + marker + "@tcp(db)/app", "key=value (unparsed)"},
	{"mysql", "app:" + marker + "@tcp(db:3306)/app?parseTime=true", "app:xxxxx@tcp(db:3306)/app?parseTime=true"},
	{"mysql, password with @ / ( :", "app:" + marker + "@/(:x@tcp(db:3306)/app", "app:xxxxx@tcp(db:3306)/app"},
	{"mysql, unix socket", "app:" + marker + "@unix(/run/mysqld/mysqld.sock)/app", "app:xxxxx@unix(/run/mysqld/mysqld.sock)/app"},
	{"mysql, no address", "app:" + marker + "@/app", "app:xxxxx@/app"},
	{"mysql, no database", "app:" + marker + "@tcp(db)", "mysql DSN (unparsed)"},
	{"mysql, also key=value", "app:x@tcp(db)/app?x=1 password=" + marker, "app:xxxxx@tcp(db)/app?x=xxxxx"},
	{"mysql, parameter left empty", "app@tcp(db)/app?tls=&password=" + marker, "app@tcp(db)/app?tls=&password=xxxxx"},
	{"mysql, stray text", "app:x@tcp(db)" + marker + "/app", "mysql DSN (unparsed)"},
	{"mysql url", "mysql://app:" + marker + "@db:3306/app?tls=true", "mysql://app:xxxxx@db:3306/app?tls=true"},
	{"sqlite file uri", "file:app.db?_auth&_auth_user=app&_auth_pass=" + marker + "&_auth_crypt=sha256",
		"file:app.db?_auth&_auth_user=app&_auth_pass=xxxxx&_auth_crypt=sha256"},
	{"sqlite path", "/var/lib/app.db?_auth&_auth_user=app&_auth_pass=" + marker, "/var/lib/app.db?_auth&_auth_user=app&_auth_pass=xxxxx"},
	{"sqlite, bad parameter", "app.db?_auth_pass%zz=" + marker, "app.db?xxxxx"},
	{"sqlite, ';' in parameters", "app.db?a=1;_auth_pass=" + marker, "app.db?xxxxx"},
	{"sqlite memory", ":memory:", ":memory:"},
	{"sqlalchemy url", "postgresql+psycopg2://app:" + marker + "@db/app", "postgresql+psycopg2://app:xxxxx@db/app"},
	{"mongodb url", "mongodb://app:" + marker + "@db/app", "mongodb://app:xxxxx@db/app"},
	{"leading space", " postgres://app:" + marker + "@db/app", "(unparsed)"},
	{"bad scheme", "1postgres://app:" + marker + "@db/app", "(unparsed)"},
	{"user:password@host", "app:" + marker + "@dbhost", "mysql DSN (unparsed)"},
	{"path with =", "dbname user=app password=" + marker, "path (unparsed)"},
	{"control character", "app\x00:" + marker + "@db", "mysql DSN (unparsed)"},
}

// printed is every way a Config prints: fmt's verbs, JSON, zap and slog.
func printed(t *testing.T, c dbfx.Config) map[string]string {
	t.Helper()
	out := map[string]string{
		"String":   c.String(),
		"GoString": c.GoString(),
		"Sprint":   fmt.Sprint(c),
		"Sprintln": fmt.Sprintln(c),
		"pointer":  fmt.Sprintf("%v", &c),
		"nested":   fmt.Sprintf("%+v", struct{ DB dbfx.Config }{c}),
		"nested#":  fmt.Sprintf("%#v", struct{ DB *dbfx.Config }{&c}),
		"slice":    fmt.Sprintf("%v", []dbfx.Config{c}),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%10.3v", "%-v"} {
		out[verb] = fmt.Sprintf(verb, c)
	}
	for name, v := range map[string]any{"json": c, "json pointer": &c, "json nested": struct{ DB dbfx.Config }{c}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(b)
	}
	for _, enc := range []struct {
		name string
		enc  zapcore.Encoder
	}{
		{"zap json", zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())},
		{"zap console", zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())},
	} {
		for i, f := range []zap.Field{zap.Any("cfg", c), zap.Any("cfg", &c), zap.Object("cfg", c), zap.Reflect("cfg", c),
			zap.Stringer("cfg", c), zap.Any("cfgs", []dbfx.Config{c})} {
			buf, err := enc.enc.EncodeEntry(zapcore.Entry{Message: "config"}, []zap.Field{f})
			if err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprintf("%s field %d", enc.name, i)] = buf.String()
		}
	}
	core, logs := observer.New(zap.DebugLevel)
	zap.New(core).Info("config", zap.Any("cfg", c))
	out["zap observer"] = fmt.Sprint(logs.All()[0].ContextMap())
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("config", "cfg", c, "ptr", &c)
	}
	out["slog"] = buf.String()
	return out
}

func TestConfigPrintsWithoutPasswords(t *testing.T) {
	for _, tt := range dsnForms {
		t.Run(tt.name, func(t *testing.T) {
			c := dbfx.Config{Name: "app", Driver: "postgres", DSN: tt.give, Replicas: []string{tt.give, tt.give},
				MaxOpenConns: 7, AcquireTimeout: 3 * time.Second}
			for form, s := range printed(t, c) {
				if strings.Contains(s, marker) {
					t.Errorf("%s leaks the password: %s", form, s)
				}
				if !strings.Contains(s, tt.want) && !strings.Contains(s, strings.ReplaceAll(url.QueryEscape(tt.want), "+", "%20")) &&
					!strings.Contains(s, fmt.Sprintf("%q", tt.want)) && !strings.Contains(s, fmt.Sprintf("%x", tt.want)) &&
					!strings.Contains(s, fmt.Sprintf("%X", tt.want)) && !strings.Contains(s, jsonString(t, tt.want)) {
					t.Errorf("%s does not show the DSN as %q: %s", form, tt.want, s)
				}
			}
		})
	}
}

func jsonString(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(string(b), `"`)
}

// TestConfigPrintsEveryField: the printed forms show every field of
// Config, the DSNs redacted, the others as they are.
func TestConfigPrintsEveryField(t *testing.T) {
	c := dbfx.Config{Name: "app", Driver: "mysql", DSN: "app:" + marker + "@tcp(db:3306)/app",
		Replicas: []string{"app:" + marker + "@tcp(replica:3306)/app"}, FailoverAddrs: []string{"db2:3306"},
		MaxOpenConns: 7, MaxIdleConns: 3, ConnMaxLifetime: time.Hour, ConnMaxIdleTime: time.Minute, AcquireTimeout: 2 * time.Second,
		ConnectTimeout: 4 * time.Second, QueryTimeout: 5 * time.Second, SlowQuery: 6 * time.Millisecond,
		LeakThreshold: 7 * time.Second, StatementCache: -1, TransactionPooling: true, HealthInterval: 8 * time.Second,
		MaxReplicaLag: 3 * time.Second, DeadPeerTimeout: 9 * time.Second, IdleCheck: -1}
	want := fmt.Sprintf("%+v", c)
	// What %+v would print without the methods: the same with the DSNs as they are.
	type plain dbfx.Config
	raw := fmt.Sprintf("%+v", plain(c))
	if got := strings.ReplaceAll(raw, marker, "xxxxx"); got != want {
		t.Errorf("String:\n got %s\nwant %s", want, got)
	}
	raw = fmt.Sprintf("%#v", plain(c))
	if got, want := fmt.Sprintf("%#v", c), strings.ReplaceAll(strings.Replace(raw, "dbfx_test.plain", "dbfx.Config", 1), marker, "xxxxx"); got != want {
		t.Errorf("GoString:\n got %s\nwant %s", got, want)
	}
	wantJSON := `{"name":"app","driver":"mysql","dsn":"app:xxxxx@tcp(db:3306)/app",` +
		`"replicas":["app:xxxxx@tcp(replica:3306)/app"],"failover_addrs":["db2:3306"],"max_open_conns":7,"max_idle_conns":3,` +
		`"conn_max_lifetime":"1h0m0s","conn_max_idle_time":"1m0s","acquire_timeout":"2s","connect_timeout":"4s",` +
		`"query_timeout":"5s","slow_query":"6ms","leak_threshold":"7s","statement_cache":-1,"transaction_pooling":true,` +
		`"health_interval":"8s","max_replica_lag":"3s","dead_peer_timeout":"9s","idle_check":"-1ns"}`
	if got, _ := json.Marshal(c); string(got) != wantJSON {
		t.Errorf("JSON:\n got %s\nwant %s", got, wantJSON)
	}

	enc := zapcore.NewMapObjectEncoder()
	if err := c.MarshalLogObject(enc); err != nil {
		t.Fatal(err)
	}
	slogAttrs := map[string]slog.Value{}
	for _, a := range c.LogValue().Group() {
		slogAttrs[a.Key] = a.Value
	}
	wantLog := map[string]any{
		"name": "app", "driver": "mysql", "dsn": "app:xxxxx@tcp(db:3306)/app",
		"replicas": []any{"app:xxxxx@tcp(replica:3306)/app"}, "failover_addrs": []any{"db2:3306"}, "max_open_conns": 7, "max_idle_conns": 3,
		"conn_max_lifetime": time.Hour, "conn_max_idle_time": time.Minute, "acquire_timeout": 2 * time.Second,
		"connect_timeout": 4 * time.Second, "query_timeout": 5 * time.Second, "slow_query": 6 * time.Millisecond,
		"leak_threshold": 7 * time.Second, "statement_cache": -1, "transaction_pooling": true,
		"health_interval": 8 * time.Second, "max_replica_lag": 3 * time.Second,
		"dead_peer_timeout": 9 * time.Second, "idle_check": time.Duration(-1),
	}
	if n := reflect.TypeFor[dbfx.Config]().NumField(); len(wantLog) != n {
		t.Fatalf("the test knows %d fields of Config's %d", len(wantLog), n)
	}
	for k, v := range wantLog {
		if got := enc.Fields[k]; fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("zap %s = %v, want %v", k, got, v)
		}
		if got := slogAttrs[k]; fmt.Sprint(got) != strings.Trim(fmt.Sprint(v), "[]") && fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("slog %s = %v, want %v", k, got, v)
		}
	}
}

// TestConfigStillDecodes: a Config is filled from JSON, by a loader that
// sets its fields, and by ConfigFromEnv, passwords and all.
func TestConfigStillDecodes(t *testing.T) {
	dsn := "postgres://app:" + marker + "@db/app"
	var c dbfx.Config
	in := `{"Name":"app","DSN":"` + dsn + `","Replicas":["` + dsn + `"],"MaxOpenConns":4,"AcquireTimeout":2000000000}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.DSN != dsn || len(c.Replicas) != 1 || c.Replicas[0] != dsn || c.MaxOpenConns != 4 || c.AcquireTimeout != 2*time.Second {
		t.Fatalf("decoded %#v", c)
	}
	// The printed JSON reads back into the same Config but for the passwords.
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back dbfx.Config
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	back.DSN, back.Replicas = c.DSN, c.Replicas
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("read back %#v, want %#v", back, c)
	}
	// A loader that sets fields by reflection (as envconfig or mapstructure do).
	var r dbfx.Config
	reflect.ValueOf(&r).Elem().FieldByName("DSN").SetString(dsn)
	if r.DSN != dsn {
		t.Fatal("a field set by reflection lost its value")
	}
	t.Setenv("SECRETTEST_DSN", dsn)
	e, err := dbfx.ConfigFromEnv("SECRETTEST")
	if err != nil || e.DSN != dsn {
		t.Fatalf("ConfigFromEnv: %v, DSN %q", err, e.DSN)
	}
}

// TestConfigPrintsTheFormOfAnUnreadableDSN: printed DSNs that cannot be
// read never show the raw string.
func TestConfigPrintsTheFormOfAnUnreadableDSN(t *testing.T) {
	for _, give := range []string{"postgres://u:" + marker + "@h:x/db", "host='" + marker, "u:" + marker + "@tcp(h"} {
		s := dbfx.Config{DSN: give}.String()
		if !strings.Contains(s, "(unparsed)") || strings.Contains(s, marker) {
			t.Errorf("%q printed as %s", give, s)
		}
	}
}

// FuzzConfigRedactsWhatTheDriversRead reads each input as lib/pq, the
// mysql driver (not given URLs: enginekit reads mysql:// itself), net/url
// (mysql:// URLs) and go-sqlite3 (_auth_pass) do: the password any of
// them finds, given the DSN, is never in the printed Config.
func FuzzConfigRedactsWhatTheDriversRead(f *testing.F) {
	for _, tt := range dsnForms {
		f.Add(tt.give)
	}
	for _, s := range []string{"postgres://u:p@ss@h/db", "u:p/w@tcp(h)/db?a=b", "password='a\\'b' host=h",
		"user=u password=pw\\ x", "file:x.db?_auth_pass=abcd", "mysql://u:abcd@h/db", "postgres://u:ab%zzcd@h/db",
		"u:abcd@tcp(h)/db?x=y/z", "host=h password = 'abc def'", "postgres://h/db?password=abcd&password=efgh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		out := dbfx.Config{DSN: dsn}.String()
		var passwords []string
		if c, err := pq.NewConfig(dsn); err == nil {
			passwords = append(passwords, c.Password)
		}
		if c, err := mysql.ParseDSN(dsn); err == nil && !strings.Contains(dsn, "://") {
			passwords = append(passwords, c.Passwd)
		}
		if u, err := url.Parse(dsn); err == nil && strings.Contains(dsn, "://") {
			p, _ := u.User.Password()
			passwords = append(passwords, p)
			passwords = append(passwords, u.Query()["password"]...)
		}
		if _, q, ok := strings.Cut(dsn, "?"); ok {
			if vs, err := url.ParseQuery(q); err == nil {
				passwords = append(passwords, vs["_auth_pass"]...)
			}
		}
		shown := strings.ReplaceAll(out, "xxxxx", "\x00")
		for _, p := range passwords {
			// A password of 4 or more characters that the input holds
			// once, as it is or escaped, and that is no word of the
			// printed form's own.
			if len(p) < 4 || strings.Count(dsn, p) > 1 || strings.Contains("(unparsed) key=value mysql DSN path", p) ||
				strings.Contains(fmt.Sprintf("%+v", struct{ Name, Driver string }{}), p) {
				continue
			}
			if strings.Contains(shown, p) {
				t.Fatalf("%q printed as %s shows the password %q", dsn, out, p)
			}
		}
	})
}

// FuzzConfigPasswordInEveryForm puts a password, with the marker in it, in
// each form as a user would write it: escaped as the form escapes, and
// raw where the password holds none of the form's delimiters. The marker
// is never printed. (A password written raw across a delimiter, such as
// password=a&b in a query, is another DSN, which the fuzz target above
// reads as the drivers do.)
func FuzzConfigPasswordInEveryForm(f *testing.F) {
	for _, pw := range []string{"", "a b", "p@ss", "p/w", "p?w", "p#w", "'q'", `a\b`, "k=v", "x&y", "%zz", "(tcp)", "\x00"} {
		f.Add(pw, "app", "db:5432")
	}
	f.Fuzz(func(t *testing.T, pw, user, host string) {
		if strings.Contains(user, marker) || strings.Contains(host, marker) {
			return
		}
		pw = pw + marker + pw
		kvQuoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'"
		forms := []string{
			"postgres://" + url.UserPassword(user, pw).String() + "@" + host + "/app",
			"postgres://" + user + ":" + pw + "@" + host + "/app",
			"postgres://" + host + "/app?sslmode=disable&password=" + url.QueryEscape(pw) + "&application_name=x",
			"host=" + host + " user=" + user + " password=" + kvQuoted + " dbname=app",
			user + ":" + pw + "@tcp(" + host + ")/app?parseTime=true",
			user + ":" + pw + "@/app",
			"mysql://" + url.UserPassword(user, pw).String() + "@" + host + "/app?tls=true",
			"mysql://" + user + ":" + pw + "@" + host + "/app",
			"file:app.db?_auth&_auth_user=" + url.QueryEscape(user) + "&_auth_pass=" + url.QueryEscape(pw) + "&_auth_crypt=sha1",
		}
		if !strings.ContainsAny(pw, "&#;%+") {
			forms = append(forms, "postgres://"+host+"/app?password="+pw+"&sslmode=disable",
				"file:app.db?_auth&_auth_pass="+pw+"&_auth_crypt=sha1")
		}
		if !strings.ContainsFunc(pw, func(r rune) bool { return unicode.IsSpace(r) || r == '\'' || r == '\\' }) {
			forms = append(forms, "host="+host+" password="+pw+" dbname=app")
		}
		for _, dsn := range forms {
			c := dbfx.Config{DSN: dsn, Replicas: []string{dsn}}
			for _, s := range []string{c.String(), c.GoString(), fmt.Sprintf("%q", c)} {
				if strings.Contains(s, marker) {
					t.Fatalf("%q printed as %s", dsn, s)
				}
			}
		}
	})
}
