// Package pgx is enginekit's PostgreSQL driver on pgx's database/sql
// driver (github.com/jackc/pgx/v5/stdlib). Put Module in the Fx graph
// beside dbfx.Module, or give Driver() to dbfx.Open:
//
//	fx.New(fx.Supply(cfg), dbfx.Module, pgx.Module, ...)
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(pgx.Driver()))
//
// A postgres:// DSN, or libpq's key=value pairs, picks it when the
// engine has no lib/pq driver (dbfx/postgres); with both, Config.Driver
// "pgx" chooses it. DSNs are read by pgx's own parser (pgx.ParseConfig):
// URLs, key=value pairs, several hosts with target_session_attrs, and the
// PG* environment variables and service and password files pgx honours.
// The password, wherever it came from, is redacted from every error.
//
// pgx caches the statements it runs on each connection (prepared once,
// then bound and executed in one round trip), so enginekit keeps no
// statement cache of its own on this driver: Config.StatementCache and
// Config.PreparedQueries are left to pgx. When a statement's ctx ends,
// pgx sends PostgreSQL's cancel request at once, so the statement stops
// on the server too; the connection wrapper closes the socket should the
// server not answer. Errors are classified by SQLSTATE, as for lib/pq.
package pgx

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
)

// Module puts the driver in the Fx graph, where dbfx.Module and dbfx.Named
// find it.
var Module fx.Option = dbfx.DriverModule(Driver)

// Driver returns the PostgreSQL driver on pgx.
func Driver() dbfx.Driver {
	return &drv.Driver{
		Name:             "pgx",
		Form:             "postgres",
		Package:          "github.com/enginekit/enginekit/dbfx/pgx",
		SQL:              dialect.New(dialect.Postgres, classify),
		Resolve:          resolve,
		Permanent:        drv.PermanentSQLState,
		ConnectHooks:     true,
		CachesStatements: true,
		CopyFrom:         copyFrom,
	}
}

func classify(err error) dialect.Class {
	if errors.Is(err, pgx.ErrTxCommitRollback) { // COMMIT of an aborted transaction: the server rolled it back
		return dialect.Aborting
	}
	return dialect.ClassifySQLState(err)
}

// cancelDeadline is how long after its cancel request a statement whose
// ctx ended is given before pgx gives up on the connection; the connection
// wrapper cuts it sooner (connwrap.CutGrace).
const cancelDeadline = time.Second

// resolve parses dsn with pgx's own parser. The connectors use the parsed
// config: the DSN is read once.
func resolve(dsn string, o drv.Options) (*drv.Target, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, configError(dsn, err)
	}
	t := &drv.Target{
		Password: cfg.Password,
		Host:     hostOf(cfg),
		Database: cfg.Database,
		Server:   cfg.Host,
		Port:     int(cfg.Port),
	}
	t.TLSOff = o.TLS == nil && cfg.TLSConfig == nil
	for _, fb := range cfg.Fallbacks {
		t.TLSOff = t.TLSOff || (o.TLS == nil && fb.TLSConfig == nil)
	}
	t.Host = drv.Redact(t.Host, append(drv.Secrets(dsn), cfg.Password)...)
	t.Writer = func() (driver.Connector, error) { return connector(cfg, o), nil }
	return t, nil
}

// hostOf is where cfg connects, for messages: host:port of each host
// (once, though pgx may try it with and without TLS), and the database.
func hostOf(cfg *pgx.ConnConfig) string {
	hosts := []string{net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	for _, fb := range cfg.Fallbacks {
		h := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port)))
		if hosts[len(hosts)-1] != h {
			hosts = append(hosts, h)
		}
	}
	return strings.Join(hosts, ",") + "/" + cfg.Database
}

// configError is pgx's error about dsn without the DSN: pgx quotes it
// (with what it takes for the password masked, which a malformed DSN can
// defeat), so only what follows the quote is kept, and redacted.
func configError(dsn string, err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 && strings.HasPrefix(msg, "cannot parse `") {
		msg = msg[i+len("`: "):]
	} else if strings.HasPrefix(msg, "cannot parse `") {
		msg = "pgx cannot parse it"
	}
	secrets := drv.Secrets(dsn)
	if drv.MayQuote(msg, secrets...) {
		msg = "its user or password is malformed"
	}
	return fmt.Errorf("not a valid PostgreSQL DSN: %s", drv.Redact(msg, secrets...))
}

// connector is pgx's connector for cfg: with a connect timeout (the
// engine's, unless the DSN has connect_timeout), enginekit's dialer, a
// cancel request sent when a statement's ctx ends, no ping before reuse
// (the connection wrapper checks an idle connection's socket instead),
// o.TLS in place of the DSN's TLS settings, and o.Password asked at each
// connect.
func connector(parsed *pgx.ConnConfig, o drv.Options) driver.Connector {
	cfg := parsed.Copy()
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = o.ConnectTimeout
	}
	if o.Dialer != nil {
		cfg.DialFunc = o.Dialer.DialContext
	}
	if o.TLS != nil {
		cfg.TLSConfig = o.TLS.Clone()
		if cfg.TLSConfig.ServerName == "" && !strings.HasPrefix(cfg.Host, "/") {
			cfg.TLSConfig.ServerName = cfg.Host
		}
		var fbs []*pgconn.FallbackConfig
		for _, fb := range cfg.Fallbacks {
			if fb.TLSConfig == nil { // the DSN's plain-text try: WithTLS requires TLS
				continue
			}
			fb.TLSConfig = o.TLS.Clone()
			if fb.TLSConfig.ServerName == "" && !strings.HasPrefix(fb.Host, "/") {
				fb.TLSConfig.ServerName = fb.Host
			}
			fbs = append(fbs, fb)
		}
		cfg.Fallbacks = fbs
	}
	if o.TransactionPooling {
		// Behind PgBouncer in transaction mode a statement prepared on one
		// server connection is unknown on the next: pgx sends each
		// statement unprepared, in one round trip, instead of caching it.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelDeadline}
	}
	opts := []stdlib.OptionOpenDB{
		stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false }),
	}
	if o.Password != nil {
		opts = append(opts, stdlib.OptionBeforeConnect(func(ctx context.Context, c *pgx.ConnConfig) error {
			pw, err := o.Password(ctx)
			if err != nil {
				return err
			}
			c.Password = pw
			return nil
		}))
	}
	return &redactingConnector{Connector: stdlib.GetConnector(*cfg, opts...), hook: o.Password != nil}
}

// redactingConnector removes from a connect error the password the hook
// gave, should pgx's error quote it.
type redactingConnector struct {
	driver.Connector
	hook bool
}

func (c *redactingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil && c.hook {
		var cfgErr *pgconn.ConnectError
		if errors.As(err, &cfgErr) && cfgErr.Config != nil {
			return nil, drv.RedactErr(err, cfgErr.Config.Password)
		}
	}
	return conn, err
}
