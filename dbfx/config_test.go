package dbfx_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

func TestValidateNamesEachBadField(t *testing.T) {
	good := dbfx.Config{DSN: "postgres://u:pw@db.example:5432/app"}
	tests := []struct {
		name      string
		give      func(c *dbfx.Config)
		wantField string
	}{
		{"empty dsn", func(c *dbfx.Config) { c.DSN = "" }, "DSN:"},
		{"unknown driver", func(c *dbfx.Config) { c.Driver = "oracle" }, "Driver:"},
		{"bad name", func(c *dbfx.Config) { c.Name = "a b" }, "Name:"},
		{"negative max open", func(c *dbfx.Config) { c.MaxOpenConns = -1 }, "MaxOpenConns:"},
		{"negative max idle", func(c *dbfx.Config) { c.MaxIdleConns = -1 }, "MaxIdleConns:"},
		{"idle above open", func(c *dbfx.Config) { c.MaxOpenConns, c.MaxIdleConns = 2, 3 }, "MaxIdleConns:"},
		{"negative lifetime", func(c *dbfx.Config) { c.ConnMaxLifetime = -time.Second }, "ConnMaxLifetime:"},
		{"negative idle time", func(c *dbfx.Config) { c.ConnMaxIdleTime = -time.Second }, "ConnMaxIdleTime:"},
		{"negative acquire", func(c *dbfx.Config) { c.AcquireTimeout = -time.Second }, "AcquireTimeout:"},
		{"negative connect", func(c *dbfx.Config) { c.ConnectTimeout = -time.Second }, "ConnectTimeout:"},
		{"negative health", func(c *dbfx.Config) { c.HealthInterval = -time.Second }, "HealthInterval:"},
		{"statement cache", func(c *dbfx.Config) { c.StatementCache = -2 }, "StatementCache:"},
		{"replica of another driver", func(c *dbfx.Config) { c.Replicas = []string{"r:pw@tcp(replica:3306)/app"} }, "Replicas[0]:"},
		{"bad replica url", func(c *dbfx.Config) {
			c.Replicas = []string{"postgres://r:pw@replica/app", "postgres://r:pw@replica:x/app"}
		}, "Replicas[1]:"},
		{"replica on sqlite", func(c *dbfx.Config) { c.DSN, c.Replicas = "app.db", []string{"other.db"} }, "Replicas[0]:"},
		{"query timeout", func(c *dbfx.Config) { c.QueryTimeout = time.Second }, "QueryTimeout:"},
		{"negative slow query", func(c *dbfx.Config) { c.SlowQuery = -time.Second }, "SlowQuery:"},
		{"negative leak threshold", func(c *dbfx.Config) { c.LeakThreshold = -time.Second }, "LeakThreshold:"},
		{"bad postgres url", func(c *dbfx.Config) { c.DSN = "postgres://u:pw@db:notaport/app" }, "DSN:"},
		{"bad mysql dsn", func(c *dbfx.Config) { c.Driver, c.DSN = "mysql", "u:pw@tcp(db:3306)" }, "DSN:"},
		{"mysql parseTime off", func(c *dbfx.Config) { c.DSN = "u:pw@tcp(db:3306)/app?parseTime=false" }, "parseTime"},
		{"mysql clientFoundRows off", func(c *dbfx.Config) { c.DSN = "u:pw@tcp(db:3306)/app?clientFoundRows=false" }, "clientFoundRows"},
		{"sqlite deferred writer", func(c *dbfx.Config) { c.DSN = "file:app.db?_txlock=deferred" }, "_txlock"},
		{"sqlite query only", func(c *dbfx.Config) { c.DSN = "app.db?_query_only=1" }, "_query_only"},
		{"sqlite journal", func(c *dbfx.Config) { c.DSN = "app.db?_journal_mode=DELETE" }, "_journal_mode"},
	}
	if err := good.Validate(fxtest.Drivers()...); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.give(&c)
			err := c.Validate(fxtest.Drivers()...)
			if !errors.Is(err, dbfx.ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("%q does not name %s", err, tt.wantField)
			}
			mustNotContain(t, err.Error(), "pw")
		})
	}
}

func TestValidateReportsEveryFieldAtOnce(t *testing.T) {
	err := dbfx.Config{Driver: "oracle", DSN: "x", MaxOpenConns: -1, AcquireTimeout: -1}.Validate(fxtest.Drivers()...)
	for _, f := range []string{"Driver:", "MaxOpenConns:", "AcquireTimeout:"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("%v does not name %s", err, f)
		}
	}
	var ce *dbfx.ConfigError
	if !errors.As(err, &ce) || len(ce.Fields) != 3 {
		t.Fatalf("want a ConfigError with 3 fields, got %#v", err)
	}
}

func TestValidateStatementCache(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 256, 10000} {
		if err := (dbfx.Config{DSN: "app.db", StatementCache: n}).Validate(fxtest.Drivers()...); err != nil {
			t.Errorf("StatementCache %d: %v", n, err)
		}
	}
}

func TestDriverInferredFromDSN(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"postgres://u@h/db", "postgres"},
		{"postgresql://u@h/db", "postgres"},
		{"host=h dbname=db user=u", "postgres"},
		{"mysql://u:p@h:3306/db", "mysql"},
		{"u:p@tcp(h:3306)/db", "mysql"},
		{"u@unix(/run/mysqld.sock)/db", "mysql"},
		{"app.db", "sqlite3"},
		{"file:app.db?cache=shared", "sqlite3"},
		{":memory:", "sqlite3"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if got := dbfx.FamilyOf(tt.give); got != tt.want {
				t.Fatalf("driver of %q = %s, want %s", tt.give, got, tt.want)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("APP_DB_DSN", "postgres://u@h/db")
	t.Setenv("APP_DB_MAX_OPEN_CONNS", "20")
	t.Setenv("APP_DB_ACQUIRE_TIMEOUT", "3s")
	t.Setenv("APP_DB_NAME", "orders")
	c, err := dbfx.ConfigFromEnv("APP_DB")
	if err != nil {
		t.Fatal(err)
	}
	want := dbfx.Config{Name: "orders", DSN: "postgres://u@h/db", MaxOpenConns: 20, AcquireTimeout: 3 * time.Second}
	if c.Name != want.Name || c.DSN != want.DSN || c.MaxOpenConns != want.MaxOpenConns || c.AcquireTimeout != want.AcquireTimeout {
		t.Fatalf("got %+v, want %+v", c, want)
	}

	t.Setenv("APP_DB_MAX_OPEN_CONNS", "many")
	t.Setenv("APP_DB_CONNECT_TIMEOUT", "10")
	_, err = dbfx.ConfigFromEnv("APP_DB")
	if !errors.Is(err, dbfx.ErrConfig) {
		t.Fatalf("want ErrConfig, got %v", err)
	}
	for _, v := range []string{"APP_DB_MAX_OPEN_CONNS", "APP_DB_CONNECT_TIMEOUT"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("%v does not name %s", err, v)
		}
	}
}
