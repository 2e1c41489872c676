package dbfx_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// TestValidateTransactionPoolingAndLag: TransactionPooling refuses a
// statement cache and SQLite; MaxReplicaLag must not be negative.
func TestValidateTransactionPoolingAndLag(t *testing.T) {
	pg := "postgres://u@db.example:6432/app"
	for _, c := range []struct {
		cfg   dbfx.Config
		field string // "": valid
	}{
		{dbfx.Config{DSN: pg, TransactionPooling: true}, ""},
		{dbfx.Config{DSN: pg, TransactionPooling: true, StatementCache: -1}, ""},
		{dbfx.Config{DSN: "root@tcp(db:6033)/app", TransactionPooling: true}, ""},
		{dbfx.Config{DSN: pg, TransactionPooling: true, StatementCache: 64}, "StatementCache:"},
		{dbfx.Config{DSN: "app.db", TransactionPooling: true}, "TransactionPooling:"},
		{dbfx.Config{DSN: pg, Replicas: []string{pg}, MaxReplicaLag: 5 * time.Second}, ""},
		{dbfx.Config{DSN: pg, MaxReplicaLag: -time.Second}, "MaxReplicaLag:"},
	} {
		err := c.cfg.Validate(fxtest.Drivers()...)
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.field != "" && (!errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), c.field)):
			t.Errorf("%+v: %v, want ErrConfig naming %s", c.cfg, err, c.field)
		}
	}
}

func TestConfigFromEnvPoolingAndLag(t *testing.T) {
	t.Setenv("APP_DB_DSN", "postgres://u@h:6432/db")
	t.Setenv("APP_DB_TRANSACTION_POOLING", "true")
	t.Setenv("APP_DB_MAX_REPLICA_LAG", "2s")
	c, err := dbfx.ConfigFromEnv("APP_DB")
	if err != nil || !c.TransactionPooling || c.MaxReplicaLag != 2*time.Second {
		t.Fatalf("got %+v, %v", c, err)
	}
	t.Setenv("APP_DB_TRANSACTION_POOLING", "maybe")
	if _, err := dbfx.ConfigFromEnv("APP_DB"); !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "APP_DB_TRANSACTION_POOLING") {
		t.Fatalf("a bad boolean: %v", err)
	}
}
