package postgres

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/lib/pq"

	"github.com/enginekit/enginekit/internal/drv"
	"github.com/enginekit/enginekit/internal/netdial"
)

// hookConnector opens each connection with the password its hook returns
// at that moment (dbfx.WithPassword): lib/pq's connector holds a fixed
// Config, so one is made per connect from cfg with the password set.
type hookConnector struct {
	cfg      pq.Config
	dialer   pq.Dialer
	password func(ctx context.Context) (string, error)
}

func (c *hookConnector) Connect(ctx context.Context) (driver.Conn, error) {
	pw, err := c.password(ctx)
	if err != nil {
		return nil, err
	}
	cfg := c.cfg.Clone()
	cfg.Password = pw
	pc, err := newConnector(cfg, c.dialer)
	if err != nil {
		return nil, err
	}
	conn, err := pc.Connect(ctx)
	if err != nil {
		return nil, drv.RedactErr(err, pw)
	}
	return conn, nil
}

func (c *hookConnector) Driver() driver.Driver { return &pq.Driver{} }

// errNoTLS: the server answered PostgreSQL's SSLRequest with N.
var errNoTLS = errors.New("postgres: the server does not support TLS (it refused the SSL request), and dbfx.WithTLS requires it")

// sslRequest is PostgreSQL's SSLRequest message: its length, 8, and the
// code 80877103.
var sslRequest = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 80877103)

// tlsDialer dials with base, then negotiates TLS as PostgreSQL's protocol
// does (the SSLRequest message, the server's S, the TLS handshake) with a
// clone of cfg, and hands lib/pq the TLS connection: lib/pq is told
// sslmode=disable, so it speaks its protocol over TLS without knowing, and
// its cancel requests (which dial through the same dialer) go over TLS
// too. lib/pq takes a custom tls.Config only through a registry shared by
// the process (pq.RegisterTLSConfig and sslmode=pqgo-<name>); this needs
// none.
type tlsDialer struct {
	base *netdial.Dialer
	cfg  *tls.Config
}

func (d *tlsDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d *tlsDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *tlsDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.base.DialContext(ctx, network, address)
	if err != nil || network == "unix" { // PostgreSQL has no TLS on a Unix socket
		return c, err
	}
	tc, err := startTLS(ctx, c, d.cfg, address)
	if err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// startTLS asks the server at the other end of c for TLS and makes the
// handshake with a clone of cfg, whose ServerName is address's host when
// it has none.
func startTLS(ctx context.Context, c net.Conn, cfg *tls.Config, address string) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		// lib/pq sets its own deadline on the connection once it has it.
		if err := c.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	if _, err := c.Write(sslRequest); err != nil {
		return nil, fmt.Errorf("postgres: SSL request: %w", err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(c, answer[:]); err != nil {
		return nil, fmt.Errorf("postgres: SSL request: %w", err)
	}
	switch answer[0] {
	case 'S':
	case 'N':
		return nil, errNoTLS
	default:
		return nil, fmt.Errorf("postgres: unexpected answer %q to the SSL request", answer[0])
	}
	conf := cfg.Clone()
	if conf.ServerName == "" {
		if host, _, err := net.SplitHostPort(address); err == nil {
			conf.ServerName = host
		}
	}
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("postgres: TLS handshake: %w", err)
	}
	return tc, nil
}
