package dbfx_test

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// silentServer accepts TCP connections and never answers: a server stuck
// in recovery, a half-dead load balancer. It holds what it accepts until
// the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestSilentServerFailsStartWithinConnectTimeout: a server that accepts
// and never answers fails the start with ErrConnect within ConnectTimeout
// and a second, however long the start's own ctx: the connection's setup
// (dial and handshake) is bounded too, not only the wait between tries.
func TestSilentServerFailsStartWithinConnectTimeout(t *testing.T) {
	addr := silentServer(t)
	const connectTimeout = 1500 * time.Millisecond
	for _, cfg := range []dbfx.Config{
		{Driver: "postgres", DSN: "postgres://app:s3cret@" + addr + "/app?sslmode=disable"},
		{Driver: "mysql", DSN: "app:s3cret@tcp(" + addr + ")/app"},
	} {
		t.Run(cfg.Driver, func(t *testing.T) {
			cfg.ConnectTimeout = connectTimeout
			begun := time.Now()
			_, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers()) // the ctx allows a minute
			took := time.Since(begun)
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, dbfx.ErrConnect) {
				t.Errorf("Open = %v, want ErrConnect", err)
			}
			if took > connectTimeout+time.Second {
				t.Errorf("Open took %s, want at most ConnectTimeout %s + 1s", took, connectTimeout)
			}
		})
	}
}
