//go:build !linux

package netdial

import (
	"syscall"
	"time"
)

// userTimeout does nothing where TCP_USER_TIMEOUT is not known: keepalive
// alone bounds a dead peer there.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
