// Package testdb gives each test a database of its own on the servers named
// by the ENGINEKIT_TEST_* variables. It knows nothing of the rest of
// enginekit, so every package's tests can use it.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq"           // the postgres driver
	_ "github.com/mattn/go-sqlite3" // the sqlite3 driver
)

// The variables that point tests at servers.
const (
	EnvPostgres = "ENGINEKIT_TEST_POSTGRES_DSN"
	EnvMySQL    = "ENGINEKIT_TEST_MYSQL_DSN"
	EnvRequire  = "ENGINEKIT_TEST_REQUIRE" // comma-separated: postgres,mysql
	// EnvPrefix starts the name of every test database (default
	// DefaultPrefix), for a CI whose servers ask for a naming policy.
	EnvPrefix = "ENGINEKIT_TEST_DB_PREFIX"
)

// DefaultPrefix starts test databases' names when EnvPrefix is unset.
const DefaultPrefix = "ek_"

// maxPrefix keeps a name within PostgreSQL's 63 bytes and MySQL's 64.
const maxPrefix = 24

// Prefix is the start of test databases' names: ENGINEKIT_TEST_DB_PREFIX,
// else DefaultPrefix. It is used as it is (give "ci_" for ci_<test>_...),
// and must be a lower-case letter followed by at most 23 lower-case
// letters, digits and underscores, so that it needs no quoting and names
// stay short enough for both servers.
func Prefix() (string, error) {
	p, set := os.LookupEnv(EnvPrefix)
	if !set {
		return DefaultPrefix, nil
	}
	valid := p != "" && len(p) <= maxPrefix && p[0] >= 'a' && p[0] <= 'z'
	for _, r := range p {
		valid = valid && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}
	if !valid {
		return "", fmt.Errorf("%s=%q: want a lower-case letter followed by at most %d lower-case letters, digits and underscores",
			EnvPrefix, p, maxPrefix-1)
	}
	return p, nil
}

// Required reports whether ENGINEKIT_TEST_REQUIRE names the engine.
func Required(engine string) bool {
	for _, s := range strings.Split(os.Getenv(EnvRequire), ",") {
		if strings.TrimSpace(s) == engine {
			return true
		}
	}
	return false
}

// SQLite returns the path of a database file private to the test.
func SQLite(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "test.db")
}

// Postgres creates a fresh database on the server named by
// ENGINEKIT_TEST_POSTGRES_DSN, drops it when the test ends, and returns a
// DSN for it. The test is skipped when the variable is unset, unless
// ENGINEKIT_TEST_REQUIRE names postgres.
func Postgres(tb testing.TB) string {
	tb.Helper()
	admin := serverDSN(tb, "postgres", EnvPostgres)
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("%s must be a postgres:// URL", EnvPostgres)
	}
	name := Name(tb)
	create(tb, "postgres", admin, `CREATE DATABASE "`+name+`"`, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	u.Path = "/" + name
	return u.String()
}

// MySQL is Postgres for the server named by ENGINEKIT_TEST_MYSQL_DSN.
func MySQL(tb testing.TB) string {
	tb.Helper()
	admin := serverDSN(tb, "mysql", EnvMySQL)
	cfg, err := mysql.ParseDSN(strings.TrimPrefix(admin, "mysql://"))
	if err != nil {
		tb.Fatalf("%s: %v", EnvMySQL, err)
	}
	name := Name(tb)
	create(tb, "mysql", admin, "CREATE DATABASE `"+name+"`", "DROP DATABASE IF EXISTS `"+name+"`")
	cfg.DBName = name
	return cfg.FormatDSN()
}

func serverDSN(tb testing.TB, engine, env string) string {
	tb.Helper()
	dsn := os.Getenv(env)
	if dsn == "" {
		if Required(engine) {
			tb.Fatalf("%s is unset but %s=%s requires %s", env, EnvRequire, os.Getenv(EnvRequire), engine)
		}
		tb.Skipf("%s is unset", env)
	}
	return dsn
}

// create runs the DDL that makes the test's database on a short-lived admin
// connection and registers its removal.
func create(tb testing.TB, driverName, admin, createSQL, dropSQL string) {
	tb.Helper()
	if driverName == "mysql" {
		admin = strings.TrimPrefix(admin, "mysql://")
	}
	exec := func(q string) error {
		db, err := sql.Open(driverName, admin)
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = db.ExecContext(ctx, q)
		return err
	}
	if err := exec(createSQL); err != nil {
		tb.Fatalf("create test database on %s: %v", driverName, err)
	}
	tb.Cleanup(func() {
		if err := exec(dropSQL); err != nil {
			tb.Errorf("drop test database on %s: %v", driverName, err)
		}
	})
}

// Name makes a database name that is unique and says which test made it,
// starting with Prefix.
func Name(tb testing.TB) string {
	tb.Helper()
	prefix, err := Prefix()
	if err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range strings.ToLower(tb.Name()) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%s_%s", b.String(), hex.EncodeToString(rnd[:]))
}
