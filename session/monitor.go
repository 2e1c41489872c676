package session

import (
	"context"
	"time"

	"github.com/enginekit/enginekit/monitor"
)

// WithMonitor reports the transactions of the Manager's scopes to mon, as
// the database named db: begin, commit, rollback and retry, with the
// scope's Label and the attempt; TxStart to a monitor.TxTracer, and
// acquire timeouts to a monitor.PoolMonitor. Statements are reported by
// the connection wrapper under an engine's pools, not here.
func WithMonitor(db string, mon monitor.Monitor) Option {
	return func(c *config) {
		if !monitor.IsNop(mon) {
			c.mon, c.db = mon, db
		}
	}
}

// acquireTimedOut counts an acquire timeout and reports it.
func (m *Manager) acquireTimedOut(ctx context.Context, waited time.Duration) {
	m.timeouts.Add(1)
	if m.poolMon != nil {
		m.poolMon.Pool(ctx, monitor.PoolEvent{DB: m.cfg.db, Kind: monitor.PoolAcquireTimeout, Duration: waited})
	}
}

// txWatch is what the events of one attempt's transaction share.
type txWatch struct {
	ctx     context.Context
	label   string
	attempt int
	begun   time.Time // when BEGIN was sent
}

// watchTx reports a BEGIN that started at begun and returns the watch of
// the transaction's end.
func (m *Manager) watchTx(ctx context.Context, label string, attempt int, begun time.Time, err error) txWatch {
	w := txWatch{ctx: ctx, label: label, attempt: attempt, begun: begun}
	if m.cfg.mon != nil {
		m.cfg.mon.Tx(ctx, monitor.TxEvent{DB: m.cfg.db, Label: label, Kind: monitor.TxBegin,
			Attempt: attempt, Duration: time.Since(begun), Err: err})
	}
	return w
}

// retried reports that an attempt failed with err and will run again.
func (m *Manager) retried(ctx context.Context, label string, attempt int, err error) {
	if m.cfg.mon != nil {
		m.cfg.mon.Tx(ctx, monitor.TxEvent{DB: m.cfg.db, Label: label, Kind: monitor.TxRetry,
			Attempt: attempt, Err: err})
	}
}

func (s *scope) report(kind monitor.TxKind, err error) {
	m, w := s.m, s.watch
	if m.cfg.mon != nil {
		m.cfg.mon.Tx(w.ctx, monitor.TxEvent{DB: m.cfg.db, Label: w.label, Kind: kind,
			Attempt: w.attempt, Duration: time.Since(w.begun), Err: err})
	}
}
