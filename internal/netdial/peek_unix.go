//go:build unix

package netdial

import (
	"errors"
	"syscall"
)

// peek looks at a non-blocking socket without taking what it holds.
func peek(fd uintptr) error {
	var buf [1]byte
	n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case n > 0:
		return ErrUnexpectedRead
	case err == nil:
		return errEOF // n == 0: the peer closed it
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		return nil // nothing to read: alive as far as the socket knows
	}
	return err
}
