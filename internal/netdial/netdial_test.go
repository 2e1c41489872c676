package netdial_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/enginekit/enginekit/internal/netdial"
)

// pair dials d to a local listener and returns both ends.
func pair(t *testing.T, d *netdial.Dialer, ctx context.Context) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = d.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestCheck(t *testing.T) {
	d := &netdial.Dialer{}
	t.Run("alive", func(t *testing.T) {
		c, _ := pair(t, d, context.Background())
		if err := netdial.Check(c); err != nil {
			t.Fatalf("Check of an idle open connection = %v", err)
		}
	})
	t.Run("closed by the peer", func(t *testing.T) {
		c, s := pair(t, d, context.Background())
		s.Close()
		waitReadable(t, c)
		if err := netdial.Check(c); !errors.Is(err, io.EOF) {
			t.Fatalf("Check = %v, want io.EOF", err)
		}
	})
	t.Run("written to", func(t *testing.T) {
		c, s := pair(t, d, context.Background())
		if _, err := s.Write([]byte("goodbye")); err != nil {
			t.Fatal(err)
		}
		waitReadable(t, c)
		if err := netdial.Check(c); !errors.Is(err, netdial.ErrUnexpectedRead) {
			t.Fatalf("Check = %v, want ErrUnexpectedRead", err)
		}
		// It took nothing: the bytes are still there to read.
		buf := make([]byte, 7)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "goodbye" {
			t.Fatalf("read %q, %v after Check", buf, err)
		}
	})
}

// waitReadable blocks until c has something to read (data or end), as
// the kernel sees it, without taking it: what the peer did has arrived.
func waitReadable(t *testing.T, c net.Conn) {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	defer c.SetReadDeadline(time.Time{})
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(err, syscall.EAGAIN) // false: wait until readable
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDialerSettings: keepalive and TCP_USER_TIMEOUT on the socket, and a
// deadline for the setup.
func TestDialerSettings(t *testing.T) {
	d := &netdial.Dialer{Setup: 3 * time.Second, DeadPeer: 30 * time.Second}
	c, _ := pair(t, d, context.Background())
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepalive, userTimeout int
	var kerr, uerr error
	if err := rc.Control(func(fd uintptr) {
		keepalive, kerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		if runtime.GOOS == "linux" {
			userTimeout, uerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, 0x12)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if kerr != nil || keepalive == 0 {
		t.Errorf("SO_KEEPALIVE = %d (%v), want on", keepalive, kerr)
	}
	if runtime.GOOS == "linux" && (uerr != nil || userTimeout != 30000) {
		t.Errorf("TCP_USER_TIMEOUT = %d ms (%v), want 30000", userTimeout, uerr)
	}
	// The setup deadline holds until lifted: a read of a silent peer ends.
	begun := time.Now()
	var buf [1]byte
	if _, err := c.Read(buf[:]); !errors.Is(err, syscall.ETIMEDOUT) && !isTimeout(err) {
		t.Fatalf("read of a silent peer = %v, want a timeout", err)
	}
	if took := time.Since(begun); took > 4*time.Second {
		t.Errorf("the setup deadline of 3s ended the read after %s", took)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSlot: the connection a Connect dials reaches the slot in its ctx;
// without one nothing is recorded.
func TestSlot(t *testing.T) {
	d := &netdial.Dialer{}
	var s netdial.Slot
	c, _ := pair(t, d, netdial.WithSlot(context.Background(), &s))
	if s.Conn() != c {
		t.Fatalf("slot holds %v, want the dialed %v", s.Conn(), c)
	}
}
