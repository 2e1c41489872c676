package dbfx_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/drv"
)

// secret is the password of the DSNs below: no error or log line may show it.
const secret = "S3cretPw"

// TestDSNForms: which driver the form of a DSN names ("" for none).
func TestDSNForms(t *testing.T) {
	for _, tt := range []struct{ give, want string }{
		{"postgres://u@h/db", "postgres"},
		{"postgresql://u:pw@h1,h2/db?port=5432,5433", "postgres"},
		{"host=h dbname=db user=u", "postgres"},
		{"dbname=db", "postgres"},
		{"host=h password='a b' sslmode=require", "postgres"},
		{"host=h password='a b", "postgres"}, // unterminated: lib/pq says so
		{"  host = h  dbname=x", ""},         // white space around the DSN
		{"host=h user=app password=p@/ss", "postgres"},
		{"mysql://u:p@h:3306/db", "mysql"},
		{"u:p@tcp(h:3306)/db", "mysql"},
		{"u:p@ss@tcp(h:3306)/db?loc=Local", "mysql"},
		{"u@unix(/run/mysqld.sock)/db", "mysql"},
		{"u:p@/db", "mysql"},
		{"tcp(h:3306)/db", "mysql"},
		{"unix(/run/mysqld.sock)/db", "mysql"},
		{"app.db", "sqlite3"},
		{"/data/app.db", "sqlite3"},
		{"/db", "sqlite3"}, // or mysql's local /db: Config.Driver decides
		{"app.db?_busy_timeout=1000", "sqlite3"},
		{"file:app.db?cache=shared", "sqlite3"},
		{":memory:", "sqlite3"},
		{"postgresql+psycopg2://app:pw@host/db", ""},
		{"mongodb://app:pw@host/db", ""},
		{"postgress://app:pw@host/db", ""},
		{" postgres://app:pw@host/db", ""},
		{"postgres://app:pw@host/db\n", ""},
		{"app:pw@dbhost", ""},
		{"app:pw@dbhost/db", ""},
		{"search_path=x", ""},
		{"a=b.db", ""},
		{"x tcp(h)/db", ""},
	} {
		if got := dbfx.FamilyOf(tt.give); got != tt.want {
			t.Errorf("form of %q = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestConfigDriverDecides: Config.Driver reads a DSN that could be
// either, makes any name a file for sqlite3, and is refused with a DSN
// that is plainly another driver's.
func TestConfigDriverDecides(t *testing.T) {
	ds := fxtest.Drivers()
	for _, tt := range []struct {
		driver, dsn, want string // want: the driver picked, or the error's text
	}{
		{"", "/db", "sqlite3"},
		{"mysql", "/db", "mysql"},
		{"sqlite3", "data@2024.db", "sqlite3"},
		{"sqlite3", "a=b.db", "sqlite3"},
		{"", "data@2024.db", "DSN: has a user (@)"},
		{"sqlite3", "postgres://u:" + secret + "@h/db", "DSN: is a postgres DSN, but the engine's driver is sqlite3"},
		{"postgres", "u:" + secret + "@tcp(h:3306)/db", "DSN: is a mysql DSN, but the engine's driver is postgres"},
		{"mysql", "mongodb://u:" + secret + "@h/db", `DSN: the scheme "mongodb" is not one enginekit knows`},
		{"postgres", "search_path=x host=h", "postgres"},
	} {
		got, field, why, _ := dbfx.Pick(tt.driver, tt.dsn, ds...)
		if got == "" {
			got = field + ": " + why
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("Driver %q, DSN %q: %q, want %q", tt.driver, tt.dsn, got, tt.want)
		}
		mustNotContain(t, got, secret)
	}
}

// TestUnknownDSNOpensNothing: a DSN of no form enginekit knows fails Open
// with ErrConfig naming the DSN field; no file is created in the working
// directory, and neither the error nor the engine's log shows its
// password. Validate says so too, with the drivers or without.
func TestUnknownDSNOpensNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tt := range []struct {
		name, driver, dsn, want string
	}{
		{"sqlalchemy url", "", "postgresql+psycopg2://app:" + secret + "@127.0.0.1:1/db", `DSN: the scheme "postgresql+psycopg2" is not one enginekit knows (a SQLAlchemy URL? drop its +driver: postgresql://)`},
		{"mongodb", "", "mongodb://app:" + secret + "@127.0.0.1:1/db", `DSN: the scheme "mongodb" is not one enginekit knows`},
		{"typo", "", "postgress://app:" + secret + "@127.0.0.1:1/db", `DSN: the scheme "postgress" is not one enginekit knows`},
		{"leading space", "", " postgres://app:" + secret + "@127.0.0.1:1/db", "DSN: begins with white space"},
		{"line end", "", "app:" + secret + "@tcp(127.0.0.1:1)/db\n", "DSN: ends with white space"},
		{"mysql without tcp()", "", "app:" + secret + "@dbhost", "DSN: has a user (@) but no tcp(host:port)"},
		{"mysql without tcp(), with a db", "", "app:" + secret + "@dbhost/db", "DSN: has a user (@) but no tcp(host:port)"},
		{"unknown keys", "", "search_path=x token=" + secret, "DSN: is not libpq's key=value pairs"},
		{"mysql driver, other scheme", "mysql", "postgresql+psycopg2://app:" + secret + "@127.0.0.1:1/db", "DSN: the scheme"},
		{"postgres driver, unterminated quote", "postgres", "host=127.0.0.1 port=1 password='" + secret + " x", "DSN: not a valid PostgreSQL DSN: unterminated quoted string"},
		{"postgres driver, space in a value", "postgres", "host=127.0.0.1 port=1 password=" + secret + " x", `DSN: not a valid PostgreSQL DSN: a word has no "="`},
		{"postgres driver, mysql's form", "postgres", "app:" + secret + "@dbhost", `DSN: not a valid PostgreSQL DSN: is neither a postgres:// URL nor libpq's key=value pairs`},
		{"postgres driver, bad url", "postgres", "postgres://app:" + secret + "/x@127.0.0.1:1/db", "DSN: not a valid PostgreSQL DSN: its user or password is not valid in a URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			cfg := dbfx.Config{Driver: tt.driver, DSN: tt.dsn, ConnectTimeout: time.Second}
			_, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithLogger(zap.New(core)))
			if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want ErrConfig containing %q", err, tt.want)
			}
			mustNotContain(t, err.Error(), secret)
			for _, e := range logs.All() {
				line := e.Message
				for k, v := range e.ContextMap() {
					line += " " + k + "=" + strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(toString(v), "\n", " "), "\t", " "))
				}
				mustNotContain(t, line, secret)
			}
			if tt.driver == "" { // the form alone refuses it: no driver needed to say so
				if err := cfg.Validate(); !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Validate() = %v, want ErrConfig containing %q", err, tt.want)
				}
			}
			if err := cfg.Validate(fxtest.Drivers()...); !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate(drivers) = %v, want ErrConfig containing %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("files created: %v", entries)
			}
		})
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

// TestUnknownReplicaDSN: a replica's DSN is held to the same rules.
func TestUnknownReplicaDSN(t *testing.T) {
	cfg := dbfx.Config{DSN: "postgres://u@h/db", Replicas: []string{"postgresql+psycopg2://r:" + secret + "@h/db"}}
	for _, ds := range [][]dbfx.Driver{nil, {postgres.Driver()}} {
		err := cfg.Validate(ds...)
		if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), `Replicas[0]: the scheme "postgresql+psycopg2"`) {
			t.Fatalf("Validate = %v, want ErrConfig naming Replicas[0]", err)
		}
		mustNotContain(t, err.Error(), secret)
	}
}

// TestMySQLDSNErrorsShowNoPassword: the mysql driver's parse errors, of
// its own form and of mysql:// URLs, quote no password, nor a piece of
// one (the driver reads a password with a "/" as a network name, and a
// URL with one as a port).
func TestMySQLDSNErrorsShowNoPassword(t *testing.T) {
	for _, tt := range []struct{ dsn, password string }{
		{"app:" + secret + "@tcp(db:3306)", secret},                    // no /db
		{"app:" + secret + "@tcp(db:3306/db", secret},                  // no )
		{"app:" + secret + "@tcp(db:3306)/db?parseTime=maybe", secret}, // a bad value
		{"app:" + secret + "@tcp(db:3306)/d%zzb", secret},              // a bad escape
		{"app:" + secret + "@bogus/db", secret},                        // a net the driver does not know
		{"app:S3cr/etPw@tcp(db:3306)", "S3cr/etPw"},                    // a / in the password, no /db
		{"mysql://app:S3cr/etPw@db:3306/db", "S3cr/etPw"},              // a / in the password breaks the URL
		{"mysql://app:" + secret + "%zz@db:3306/db", secret},           // a bad escape in the password
		{"mysql://app:" + secret + "@db:port/db", secret},
	} {
		_, _, _, err := dbfx.ResolveDSN(mysql.Driver(), tt.dsn)
		if err == nil {
			t.Errorf("%q: no error", tt.dsn)
			continue
		}
		if drv.MayQuote(err.Error(), tt.password) {
			t.Errorf("%q: %q quotes a piece of the password", tt.dsn, err)
		}
		err = dbfx.Config{Driver: "mysql", DSN: tt.dsn}.Validate(mysql.Driver())
		if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "DSN: ") {
			t.Errorf("%q: Validate = %v, want ErrConfig naming the DSN", tt.dsn, err)
		}
		if drv.MayQuote(err.Error(), tt.password) {
			t.Errorf("%q: %q quotes a piece of the password", tt.dsn, err)
		}
	}
}
