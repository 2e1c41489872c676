// Package postgres is enginekit's PostgreSQL driver, on lib/pq. Put Module
// in the Fx graph beside dbfx.Module, or give Driver() to dbfx.Open:
//
//	fx.New(fx.Supply(cfg), dbfx.Module, postgres.Module, ...)
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(postgres.Driver()))
//
// A pool opened by hand takes its error classification and retries with
// session.New(db, session.WithDriver(postgres.Driver())).
//
// DSNs are read by lib/pq's own parser (pq.NewConfig), as its connector
// reads them: postgres:// and postgresql:// URLs, libpq's key=value pairs
// (values with spaces in single quotes), several hosts, and the PG*
// environment variables lib/pq honours (PGPASSWORD, PGSSLMODE, PGHOST...)
// and its service file. A DSN lib/pq refuses is a config error that shows
// no password; the password, wherever it came from, is redacted from
// every error, and TLS is judged by the sslmode lib/pq will use.
// Errors are classified by SQLSTATE: 40001 and 40P01 are retried, 23505 is
// a unique violation, 23503 a foreign key, 23502 a not-null and 23514 a
// check violation, 55P03 a locked row, 57014 a canceled statement, 25006 a
// refused write, class 08 and 57P01-57P03 a lost connection; every server
// error aborts the transaction it ran in. Package session's doc has the
// table of the error classes matched with errors.Is.
package postgres

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/lib/pq"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
	"github.com/enginekit/enginekit/internal/netdial"
)

// Module puts the driver in the Fx graph, where dbfx.Module and dbfx.Named
// find it.
var Module fx.Option = dbfx.DriverModule(Driver)

// Driver returns the PostgreSQL driver.
func Driver() dbfx.Driver {
	return &drv.Driver{
		Name:         "postgres",
		Package:      "github.com/enginekit/enginekit/dbfx/postgres",
		SQL:          dialect.New(dialect.Postgres, classify),
		Resolve:      resolve,
		Permanent:    drv.PermanentSQLState,
		ConnectHooks: true,
		CopyFrom:     copyFrom,
	}
}

func classify(err error) dialect.Class {
	if errors.Is(err, pq.ErrInFailedTransaction) { // COMMIT of an aborted transaction: lib/pq rolled it back
		return dialect.Aborting
	}
	return dialect.ClassifySQLState(err)
}

// resolve parses dsn with lib/pq's own parser, as lib/pq's connector
// would: URLs, key=value pairs with quoted values, several hosts, and the
// PG* environment variables (PGPASSWORD, PGSSLMODE...) and service file it
// reads. The connectors use the parsed config: the DSN is read once.
func resolve(dsn string, o drv.Options) (*drv.Target, error) {
	cfg, err := pq.NewConfig(hostList(dsn))
	if err != nil {
		return nil, configError(dsn, err)
	}
	t := &drv.Target{Password: cfg.Password, Host: hostOf(cfg), Database: cfg.Database, Server: cfg.Host, Port: int(cfg.Port)}
	if cfg.Hostaddr.IsValid() {
		t.Server = cfg.Hostaddr.String()
	}
	t.TLSOff = o.TLS == nil && (cfg.SSLMode == pq.SSLModeDisable || cfg.SSLMode == pq.SSLModeAllow || cfg.SSLMode == pq.SSLModePrefer)
	t.Host = drv.Redact(t.Host, append(drv.Secrets(dsn), cfg.Password)...)
	if o.TransactionPooling {
		// lib/pq runs a statement with arguments as an unnamed prepare
		// (Parse, Describe, Sync) and then Bind, Execute, Sync: outside a
		// transaction, a pooler in transaction mode may hand each half to
		// another server connection. With binary_parameters it sends
		// Parse, Bind, Describe, Execute and one Sync, which the pooler
		// keeps on one server connection.
		cfg.BinaryParameters = true
	}
	t.Writer = func() (driver.Connector, error) { return connector(cfg, o) }
	return t, nil
}

// hostOf is where cfg connects, for messages: host:port of each host, and
// the database.
func hostOf(cfg pq.Config) string {
	addr := func(host string, hostaddr netip.Addr, port uint16) string {
		if hostaddr.IsValid() {
			host = hostaddr.String()
		}
		return net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	hosts := []string{addr(cfg.Host, cfg.Hostaddr, cfg.Port)}
	for _, m := range cfg.Multi {
		hosts = append(hosts, addr(m.Host, m.Hostaddr, m.Port))
	}
	return strings.Join(hosts, ",") + "/" + cfg.Database
}

// configError is lib/pq's error about dsn without what could be a
// password in it: lib/pq quotes the URL it could not parse (url.Error), a
// word of a key=value string that has no "=", a bad value. A message that
// may quote a piece of the password is replaced by what lib/pq says of
// the DSN with its password masked.
func configError(dsn string, err error) error {
	secrets := drv.Secrets(dsn)
	msg := explain(dsn, err)
	if drv.MayQuote(msg, secrets...) {
		msg = "its user or password is malformed"
		masked := drv.Mask(dsn)
		if _, merr := pq.NewConfig(hostList(masked)); merr != nil {
			msg = explain(masked, merr)
		}
	}
	return fmt.Errorf("not a valid PostgreSQL DSN: %s", drv.Redact(msg, secrets...))
}

// explain is lib/pq's error about dsn, said for a user.
func explain(dsn string, err error) string {
	var ue *url.Error
	switch {
	case errors.As(err, &ue):
		// url.Error quotes the whole URL. A URL that parses once its user
		// information is masked has a password with a reserved character.
		if _, merr := pq.NewConfig(hostList(drv.Mask(dsn))); merr == nil {
			return "its user or password is not valid in a URL: percent-encode its reserved characters (/ ? # @ : %)"
		}
		return ue.Err.Error()
	case strings.HasPrefix(err.Error(), `missing "=" after `):
		if !strings.Contains(dsn, "=") {
			return "is neither a postgres:// URL nor libpq's key=value pairs"
		}
		return `a word has no "=" after it: a value with spaces needs single quotes (password='a b')`
	}
	return strings.TrimPrefix(err.Error(), "pq: ")
}

// connector is lib/pq's connector for cfg, with a connect_timeout (lib/pq
// has none unless told: a server that accepts and never answers would hold
// a Connect for ever) and enginekit's dialer; with o.TLS, the dialer
// negotiates TLS itself (see tlsDialer) and lib/pq is told not to; with
// o.Password, each connect asks it for the password (see hookConnector).
func connector(cfg pq.Config, o drv.Options) (driver.Connector, error) {
	cfg = cfg.Clone()
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = o.ConnectTimeout
	}
	var dialer pq.Dialer
	if o.Dialer != nil {
		dialer = o.Dialer
	}
	if o.TLS != nil {
		base := o.Dialer
		if base == nil {
			base = &netdial.Dialer{}
		}
		dialer = &tlsDialer{base: base, cfg: o.TLS}
		cfg.SSLMode = pq.SSLModeDisable
	}
	build := func(cfg pq.Config, dialer pq.Dialer) (driver.Connector, error) {
		if o.Password != nil {
			return &hookConnector{cfg: cfg, dialer: dialer, password: o.Password}, nil
		}
		c, err := newConnector(cfg, dialer)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	if dc, ok := dialer.(pq.DialerContext); ok && len(cfg.Multi) > 0 && cfg.LoadBalanceHosts != pq.LoadBalanceHostsRandom {
		return newPreferServed(cfg, dc, build)
	}
	return build(cfg, dialer)
}

// newConnector is lib/pq's connector for cfg on dialer (nil: lib/pq's own).
func newConnector(cfg pq.Config, dialer pq.Dialer) (*pq.Connector, error) {
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, err
	}
	if dialer != nil {
		c.Dialer(dialer)
	}
	return c, nil
}
