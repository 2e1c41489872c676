package dbfx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
)

// ErrCredentials: the password hook given with WithPassword failed, so a
// connection could not be opened. Matched with errors.Is; the hook's own
// error is reachable with errors.Is and errors.As.
var ErrCredentials = errors.New("dbfx: password hook failed")

// WithPassword gives the engine a hook that returns the password of each
// new connection, in place of the DSN's: for passwords that rotate, such
// as cloud IAM authentication tokens or Vault's dynamic credentials. The
// PostgreSQL and MySQL drivers call it every time they open a connection
// (the pools', the health checks', the replicas', MySQL's server-side
// cancels'), from many goroutines at once, with the connect's ctx bounded
// by Config.ConnectTimeout: a hook that fetches a token should cache it
// until it nears its expiry. Connections already open keep the password
// they were opened with (Config.ConnMaxLifetime renews them).
//
// An error of the hook fails that connect with an error matching
// ErrCredentials and the hook's error, naming the engine and no password;
// the start retries it until ConnectTimeout, as it retries a database
// that does not answer. No password the hook returns appears in an error
// or a log line of the engine. SQLite has no password: an engine on it
// given WithPassword fails to open with ErrConfig.
func WithPassword(hook func(ctx context.Context) (string, error)) Option {
	return func(o *options) { o.password = hook }
}

// WithTLS makes every network connection of the engine (PostgreSQL or
// MySQL) use TLS with cfg, cloned for each connection, without any
// registration by name: it takes the place of the DSN's TLS settings
// (PostgreSQL's sslmode, sslrootcert..., MySQL's tls=), and a server that
// does not offer TLS fails the connect (no fallback to plain text). When
// cfg.ServerName is empty, it is the host the connection dials, which
// the server's certificate must name unless cfg.InsecureSkipVerify. A
// PostgreSQL connection through a Unix socket does not use it (PostgreSQL
// has no TLS there). SQLite has no network connection: an engine on it
// given WithTLS fails to open with ErrConfig.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tls = cfg }
}

// connectHooks are the drv.Options fields of o's password hook and TLS
// configuration for engine name: the hook bounded by timeout, its errors
// matching ErrCredentials.
func (o *options) connectHooks(name string, timeout time.Duration, d *drv.Options) {
	d.TLS = o.tls
	hook := o.password
	if hook == nil {
		return
	}
	d.Password = func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		pw, err := hook(ctx)
		if err != nil {
			return "", &credentialsError{engine: name, err: err}
		}
		return pw, nil
	}
}

// refuseHooks is a config error when o has a password hook or a TLS
// configuration and the engine's driver does not take them.
func (o *options) refuseHooks(r *resolved) error {
	if r.drv.ConnectHooks {
		return nil
	}
	noPassword, noTLS := fmt.Sprintf("the %s driver does not support it", r.drv.Name), ""
	noTLS = noPassword
	if r.drv.SQL.Family() == dialect.SQLite {
		noPassword, noTLS = "SQLite has no password", "SQLite has no network connection"
	}
	var bad []FieldError
	if o.password != nil {
		bad = append(bad, FieldError{Field: "WithPassword", Reason: noPassword})
	}
	if o.tls != nil {
		bad = append(bad, FieldError{Field: "WithTLS", Reason: noTLS})
	}
	if bad == nil {
		return nil
	}
	return &ConfigError{Engine: r.cfg.Name, Fields: bad}
}

// credentialsError is a failed password hook: it matches ErrCredentials
// and the hook's error.
type credentialsError struct {
	engine string
	err    error
}

func (e *credentialsError) Error() string {
	return fmt.Sprintf("%v for engine %q (dbfx.WithPassword): %v", ErrCredentials, e.engine, e.err)
}

func (e *credentialsError) Unwrap() []error { return []error{ErrCredentials, e.err} }
