// Package netdial opens the network connections of an engine's drivers
// (lib/pq and go-sql-driver/mysql take a dialer of their own):
//
//   - with TCP keepalive and, on Linux, TCP_USER_TIMEOUT, so that a
//     connection whose peer vanished (no FIN, no RST: a partition, a host
//     gone) fails within DeadPeer instead of the kernel's quarter of an
//     hour, whether it is idle or waiting for an answer;
//   - with a deadline on the connection's setup (dial and handshake), which
//     the connection wrapper lifts once the driver's Connect returns, so
//     that a server that accepts and never answers cannot hold a Connect;
//   - and it hands the connection to the connection wrapper
//     (internal/connwrap) through the ctx of Connect (WithSlot), so that
//     the wrapper can check an idle connection before it is handed out.
package netdial

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dialer dials with keepalive, a user timeout and a setup deadline. It
// has the methods lib/pq's Dialer and DialerContext interfaces ask for,
// and DialContext is go-sql-driver/mysql's DialFunc.
type Dialer struct {
	// Setup bounds the dial, and the handshake after it (a deadline on the
	// connection until the wrapper lifts it); 0: no bound.
	Setup time.Duration
	// DeadPeer bounds how long a connection lives on without an answer
	// from its peer: keepalive probes start after DeadPeer/3 idle and give
	// up by DeadPeer, and TCP_USER_TIMEOUT fails a write unacknowledged
	// for DeadPeer; <= 0: the system's defaults.
	DeadPeer time.Duration
}

// DialContext dials address, as net.Dialer does, with d's settings.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nd := net.Dialer{}
	if d.DeadPeer > 0 && strings.HasPrefix(network, "tcp") {
		idle := max(d.DeadPeer/3, time.Second)
		nd.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: idle, Interval: max(idle/3, time.Second), Count: 3}
		nd.Control = userTimeout(d.DeadPeer)
	}
	if d.Setup > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Setup)
		defer cancel()
	}
	c, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if d.Setup > 0 {
		if err := c.SetDeadline(time.Now().Add(d.Setup)); err != nil {
			c.Close()
			return nil, err
		}
	}
	if s, ok := ctx.Value(slotKey{}).(*Slot); ok {
		s.set(c) // the last dial wins: lib/pq tries a multi-host DSN's hosts in turn
	}
	return c, nil
}

// Dial is DialContext without a ctx (lib/pq's Dialer interface).
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout is DialContext bounded by timeout (lib/pq's Dialer interface).
func (d *Dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// Slot receives the connection that a driver's Connect dials with a
// Dialer, when the ctx given to Connect carries it. It is safe for use by
// the goroutine that connects and one that watches it.
type Slot struct {
	mu   sync.Mutex
	conn net.Conn
}

func (s *Slot) set(c net.Conn) {
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
}

// Conn is the connection dialed last, or nil.
func (s *Slot) Conn() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

type slotKey struct{}

// WithSlot returns ctx carrying s.
func WithSlot(ctx context.Context, s *Slot) context.Context {
	return context.WithValue(ctx, slotKey{}, s)
}

// ErrUnexpectedRead is why Check finds a connection dead that its peer
// wrote to while nobody asked: an idle database connection receives
// nothing, unless the server is telling it goodbye (PostgreSQL's FATAL
// "terminating connection", MySQL's error before it closes).
var ErrUnexpectedRead = errors.New("netdial: the server wrote to an idle connection")

// Check tells whether an idle connection is still open, without blocking
// and without reading anything from it: io.EOF when the peer closed it,
// ErrUnexpectedRead when the peer wrote to it, the socket's error when it
// failed (a reset, keepalive given up), nil when nothing is known against
// it.
func Check(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var result error
	err = rc.Read(func(fd uintptr) bool {
		result = peek(fd)
		return true // never wait for the fd to become readable
	})
	if err != nil {
		return err
	}
	return result
}

// errEOF is io.EOF, named for peek's callers.
var errEOF = io.EOF
