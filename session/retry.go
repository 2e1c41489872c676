package session

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/enginekit/enginekit/internal/dialect"
)

// retryable reports whether another attempt may succeed. A read-only
// transaction whose connection was lost is retried too: it wrote nothing,
// and the next attempt takes another connection (or another replica).
func (c *txConfig) retryable(d *dialect.Dialect, err error, acc access) bool {
	if errors.Is(err, ErrAmbiguousCommit) || errors.Is(err, ErrClosed) || errors.Is(err, ErrAcquireTimeout) {
		return false
	}
	class := d.Classify(err)
	var stale *staleError // a cached statement, dropped since: the next attempt prepares it anew
	return class.Has(dialect.Retryable) || (acc == readOnly && class.Has(dialect.ConnLost)) || errors.As(err, &stale) ||
		(c.retry.RetryOn != nil && c.retry.RetryOn(err))
}

// backoff waits before attempt+1: full jitter, capped, cut short by ctx.
func (m *Manager) backoff(ctx context.Context, p RetryPolicy, attempt int) error {
	d := p.MaxDelay
	if shift := attempt - 1; shift < 32 && p.BaseDelay<<shift > 0 && (d <= 0 || p.BaseDelay<<shift < d) {
		d = p.BaseDelay << shift
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(rand.N(d + 1))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-m.kill.Done():
		return errClosing
	}
}
