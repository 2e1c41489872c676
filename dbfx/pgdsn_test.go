package dbfx_test

import (
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/fxtest"
)

// unsetenv unsets the variables for the test (lib/pq refuses an empty
// PGSSLMODE).
func unsetenv(t *testing.T, keys ...string) {
	for _, k := range keys {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// TestPostgresDSNParsedByLibPQ: what the engine makes of PostgreSQL DSNs
// is what lib/pq makes of them: quoted values, escapes, several hosts.
func TestPostgresDSNParsedByLibPQ(t *testing.T) {
	unsetenv(t, "PGPASSWORD", "PGSSLMODE")
	for _, tt := range []struct {
		dsn, host, password string
		tlsOff              bool
	}{
		{"host=db.example user=app password='a b' dbname=app", "db.example:5432/app", "a b", false},
		{`host=db.example password='it\'s a b' dbname=app sslmode=disable`, "db.example:5432/app", "it's a b", true},
		{`host=db.example password=a\ b dbname=app sslmode=prefer`, "db.example:5432/app", "a b", true},
		{"postgres://app:p%40ss@h1,h2/app?port=5432,5433&sslmode=verify-full", "h1:5432,h2:5433/app", "p@ss", false},
		{"postgresql://app@db.example:6432/app?password=a%20b&sslmode=allow", "db.example:6432/app", "a b", true},
		{"host=10.0.0.1,10.0.0.2 port=5433 dbname=app", "10.0.0.1:5433,10.0.0.2:5433/app", "", false},
	} {
		host, password, tlsOff, err := dbfx.ResolveDSN(postgres.Driver(), tt.dsn)
		if err != nil {
			t.Errorf("%q: %v", tt.dsn, err)
			continue
		}
		if host != tt.host || password != tt.password || tlsOff != tt.tlsOff {
			t.Errorf("%q: host %q, password %q, TLS off %v; want %q, %q, %v", tt.dsn, host, password, tlsOff, tt.host, tt.password, tt.tlsOff)
		}
	}
}

// TestPostgresPasswordRedactedWhole: a quoted password with a space is
// redacted whole from the engine's messages (it was cut at the space).
func TestPostgresPasswordRedactedWhole(t *testing.T) {
	unsetenv(t, "PGPASSWORD")
	redact, err := dbfx.Redactor(dbfx.Config{DSN: "host=db.example user=app password='S3cret pw' dbname=app"}, postgres.Driver())
	if err != nil {
		t.Fatal(err)
	}
	if got := redact(`auth failed for "S3cret pw" at db.example`); got != `auth failed for "xxxxx" at db.example` {
		t.Fatalf("redacted: %q", got)
	}
}

// TestPostgresMalformedDSNIsConfigError: what lib/pq refuses is ErrConfig
// at Validate, naming the DSN and showing no password.
func TestPostgresMalformedDSNIsConfigError(t *testing.T) {
	unsetenv(t, "PGSSLMODE")
	for _, tt := range []struct{ dsn, want string }{
		{"host=db.example password='" + secret + " x dbname=app", "DSN: not a valid PostgreSQL DSN: unterminated quoted string"},
		{"host=db.example password=" + secret + " sslmode=bogus", `DSN: not a valid PostgreSQL DSN: wrong value for "sslmode": "bogus" is not supported`},
		{"postgres://app:" + secret + "@db.example/app?sslmode=bogus", `DSN: not a valid PostgreSQL DSN: wrong value for "sslmode"`},
		{"host=db.example port=notaport password=" + secret, `DSN: not a valid PostgreSQL DSN: wrong value for "port"`},
		{"postgres://app:" + secret + "@db.example:notaport/app", `DSN: not a valid PostgreSQL DSN: invalid port ":notaport" after host`},
		{"postgres://app:" + secret + "%zz@db.example/app", "DSN: not a valid PostgreSQL DSN: its user or password is not valid in a URL"},
		{"host=db.example password=" + secret + " x", `DSN: not a valid PostgreSQL DSN: a word has no "="`},
	} {
		err := dbfx.Config{DSN: tt.dsn}.Validate(postgres.Driver())
		if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: Validate = %v, want ErrConfig containing %q", tt.dsn, err, tt.want)
			continue
		}
		mustNotContain(t, err.Error(), secret)
	}
	t.Setenv("PGSSLMODE", "bogus")
	err := dbfx.Config{DSN: "postgres://app@db.example/app"}.Validate(postgres.Driver())
	if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "$PGSSLMODE") {
		t.Errorf("PGSSLMODE=bogus: Validate = %v, want ErrConfig naming $PGSSLMODE", err)
	}
}

// TestPostgresPGPASSWORD: a password from PGPASSWORD, which lib/pq
// honours, is the engine's to redact: a failed connect shows it nowhere.
func TestPostgresPGPASSWORD(t *testing.T) {
	t.Setenv("PGPASSWORD", secret)
	cfg := dbfx.Config{DSN: "postgres://app@127.0.0.1:1/app?sslmode=disable", ConnectTimeout: time.Second}
	_, password, _, err := dbfx.ResolveDSN(postgres.Driver(), cfg.DSN)
	if err != nil || password != secret {
		t.Fatalf("password %q, %v: want PGPASSWORD's", password, err)
	}
	redact, err := dbfx.Redactor(cfg, postgres.Driver())
	if err != nil {
		t.Fatal(err)
	}
	if got := redact("server said " + secret); strings.Contains(got, secret) {
		t.Fatalf("redacted: %q", got)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	_, err = dbfx.Open(testContext(t), cfg, dbfx.WithDriver(postgres.Driver()), dbfx.WithLogger(zap.New(core)))
	if !errors.Is(err, dbfx.ErrConnect) {
		t.Fatalf("Open = %v, want ErrConnect", err)
	}
	mustNotContain(t, err.Error(), secret)
	for _, e := range logs.All() {
		mustNotContain(t, e.Message, secret)
		for _, v := range e.ContextMap() {
			mustNotContain(t, toString(v), secret)
		}
	}
}

// TestPostgresPGSSLMODE: the TLS mode lib/pq takes from PGSSLMODE is the
// one the engine judges: a remote host without TLS is warned of, and the
// connection is what the variable says.
func TestPostgresPGSSLMODE(t *testing.T) {
	const remote = "postgres://app@192.0.2.1:5432/app" // TEST-NET-1: never answers
	for _, tt := range []struct {
		mode   string
		tlsOff bool
	}{{"disable", true}, {"prefer", true}, {"require", false}, {"verify-full", false}} {
		t.Run(tt.mode, func(t *testing.T) {
			t.Setenv("PGSSLMODE", tt.mode)
			_, _, tlsOff, err := dbfx.ResolveDSN(postgres.Driver(), remote)
			if err != nil || tlsOff != tt.tlsOff {
				t.Fatalf("TLS off %v, %v; want %v", tlsOff, err, tt.tlsOff)
			}
			core, logs := observer.New(zapcore.WarnLevel)
			ctx := testContext(t)
			_, err = dbfx.Open(ctx, dbfx.Config{DSN: remote, ConnectTimeout: 300 * time.Millisecond},
				dbfx.WithDriver(postgres.Driver()), dbfx.WithLogger(zap.New(core)))
			if !errors.Is(err, dbfx.ErrConnect) {
				t.Fatalf("Open = %v, want ErrConnect", err)
			}
			warned := logs.FilterMessageSnippet("not encrypted").Len() > 0
			if warned != tt.tlsOff {
				t.Fatalf("warned of no TLS: %v, want %v", warned, tt.tlsOff)
			}
		})
	}

	// On a server: the connection is encrypted as PGSSLMODE says.
	cfg := fxtest.Postgres(t)
	u, err := url.Parse(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("sslmode")
	u.RawQuery = q.Encode()
	cfg.DSN = u.String()
	for _, tt := range []struct {
		mode string
		ssl  bool
	}{{"disable", false}, {"require", true}} {
		t.Setenv("PGSSLMODE", tt.mode)
		e, err := dbfx.Open(testContext(t), cfg, dbfx.WithDriver(postgres.Driver()))
		if err != nil {
			if tt.ssl && strings.Contains(err.Error(), "SSL is not enabled on the server") {
				t.Logf("PGSSLMODE=require: the server has no TLS: %v", err)
				continue
			}
			t.Fatalf("PGSSLMODE=%s: %v", tt.mode, err)
		}
		var ssl bool
		err = e.DB().GetContext(testContext(t), &ssl, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
		_ = e.Close(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if ssl != tt.ssl {
			t.Errorf("PGSSLMODE=%s: the connection's TLS is %v, want %v", tt.mode, ssl, tt.ssl)
		}
	}
}
