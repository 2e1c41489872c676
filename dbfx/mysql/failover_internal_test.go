package mysql

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestDown: which connect errors send a new connection on to the next
// server (FailoverAddrs): a server that cannot take connections now
// (refused, reset, silent, shutting down, full), not one that answered
// and refused this one.
func TestDown(t *testing.T) {
	for _, tt := range []struct {
		err  error
		down bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("handshake: %w", syscall.ECONNRESET), true},
		{mysql.ErrInvalidConn, true},
		{&noAnswer{addr: "db1:3306", after: time.Second}, true},
		{context.DeadlineExceeded, true},
		{&mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true},
		{&mysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}, true},
		{&mysql.MySQLError{Number: 1045, Message: "Access denied"}, false},
		{&mysql.MySQLError{Number: 1049, Message: "Unknown database"}, false},
	} {
		if got := down(tt.err); got != tt.down {
			t.Errorf("down(%v) = %v, want %v", tt.err, got, tt.down)
		}
	}
	var ne net.Error
	if err := error(&noAnswer{addr: "db1:3306", after: time.Second}); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("noAnswer is no net.Error that timed out")
	}
}
