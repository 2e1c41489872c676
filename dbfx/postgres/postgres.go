// Package postgres is enginekit's PostgreSQL driver, on lib/pq. Put Module
// in the Fx graph beside dbfx.Module, or give Driver() to dbfx.Open:
//
//	fx.New(fx.Supply(cfg), dbfx.Module, postgres.Module, ...)
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(postgres.Driver()))
//
// A pool opened by hand takes its error classification and retries with
// session.New(db, session.WithDriver(postgres.Driver())).
//
// DSNs: postgres:// and postgresql:// URLs, and libpq's key=value form.
// Errors are classified by SQLSTATE: 40001 and 40P01 are retried, 23505 is
// a unique violation, 25006 a refused write, class 08 and 57P01-57P03 a
// lost connection; every server error aborts the transaction it ran in.
package postgres

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/lib/pq"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
)

// Module puts the driver in the Fx graph, where dbfx.Module and dbfx.Named
// find it.
var Module fx.Option = dbfx.DriverModule(Driver)

// Driver returns the PostgreSQL driver.
func Driver() dbfx.Driver {
	return &drv.Driver{
		Name:      "postgres",
		Package:   "github.com/enginekit/enginekit/dbfx/postgres",
		SQL:       dialect.New(dialect.Postgres, classify),
		Resolve:   resolve,
		Permanent: permanent,
	}
}

func classify(err error) dialect.Class {
	if errors.Is(err, pq.ErrInFailedTransaction) { // COMMIT of an aborted transaction: lib/pq rolled it back
		return dialect.Aborting
	}
	return dialect.ClassifySQLState(err)
}

// permanent: a server that answered refuses for good (bad password,
// unknown database), unless it is starting up.
func permanent(err error) (bool, bool) {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		return pe.SQLState() != "57P03", true // cannot_connect_now: starting up
	}
	return false, false
}

func resolve(dsn string, o drv.Options) (*drv.Target, error) {
	t := &drv.Target{}
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
		t.Password, _ = u.User.Password()
		t.Host = u.Host + u.Path
		q := u.Query()
		sslmode = q.Get("sslmode")
		if p := q.Get("password"); p != "" {
			t.Password = p
		}
		if u.Hostname() == "" {
			t.Host = q.Get("host") + u.Path
		}
	} else {
		kv := parseKeyValue(dsn)
		t.Password, sslmode = kv["password"], kv["sslmode"]
		t.Host = kv["host"] + "/" + kv["dbname"]
	}
	t.TLSOff = sslmode == "disable" || sslmode == "allow" || sslmode == "prefer"
	t.Writer = func() (driver.Connector, error) { return connector(dsn, o) }
	return t, nil
}

// connector is lib/pq's connector for dsn, with a connect_timeout (lib/pq
// has none unless told: a server that accepts and never answers would hold
// a Connect for ever) and enginekit's dialer.
func connector(dsn string, o drv.Options) (driver.Connector, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = o.ConnectTimeout
	}
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, err
	}
	if o.Dialer != nil {
		c.Dialer(o.Dialer)
	}
	return c, nil
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
