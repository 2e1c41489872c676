package monitor

import (
	"context"
	"log/slog"
)

// slogMonitor is the zap monitor's twin on a *slog.Logger.
type slogMonitor struct {
	*logCore
	l *slog.Logger
}

var (
	_ Monitor       = (*slogMonitor)(nil)
	_ LeakMonitor   = (*slogMonitor)(nil)
	_ PoolMonitor   = (*slogMonitor)(nil)
	_ EngineMonitor = (*slogMonitor)(nil)
)

// NewSlog returns a monitor that logs to l the lines NewZap's logs, at
// the same levels, with the same fields (durations as time.Duration
// values), SQL normalised and errors scrubbed as there; it takes the same
// options. The ctx of each event is handed to l's handler. A nil l logs
// nothing.
func NewSlog(l *slog.Logger, opts ...LogOption) Monitor {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &slogMonitor{logCore: newLogCore(opts), l: l}
}

// Query logs a failed, slow or (with LogEveryStatement) any statement.
func (m *slogMonitor) Query(ctx context.Context, e QueryEvent) {
	lvl, msg, ok := m.queryLevel(ctx, e)
	if !ok || !m.l.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("engine", e.DB), slog.String("operation", string(e.Op)),
		slog.Duration("duration", e.Duration))
	sys := m.system(e.DB)
	if e.SQL != "" {
		attrs = append(attrs, slog.String("sql", m.sql(e.SQL, sys)))
	}
	if e.Rows >= 0 {
		attrs = append(attrs, slog.Int64("rows", e.Rows))
	}
	if m.cfg.args && len(e.Args) > 0 {
		attrs = append(attrs, slog.Any("args", args(e)))
	}
	if e.Err != nil {
		text, _ := errorText(e, sys)
		attrs = append(attrs, slog.String("error", text))
	}
	m.l.LogAttrs(ctx, lvl, msg, attrs...)
}

// Tx logs failed transactions at the level of their error's class, and
// retries at warn.
func (m *slogMonitor) Tx(ctx context.Context, e TxEvent) {
	lvl, msg, ok := m.txLevel(ctx, e)
	if !ok || !m.l.Enabled(ctx, lvl) {
		return
	}
	attrs := []slog.Attr{slog.String("engine", e.DB), slog.String("label", e.Label),
		slog.Int("attempt", e.Attempt), slog.Duration("duration", e.Duration)}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	m.l.LogAttrs(ctx, lvl, msg, attrs...)
}

// Leak logs a leaked connection with the stack that took it.
func (m *slogMonitor) Leak(e LeakEvent) {
	m.l.LogAttrs(context.Background(), slog.LevelError, "connection held longer than the leak threshold",
		slog.String("engine", e.DB), slog.Duration("held", e.Held), slog.String("taken_at", e.Stack))
}

// Pool logs the pool's events at the levels NewZap's does.
func (m *slogMonitor) Pool(ctx context.Context, e PoolEvent) {
	lvl, msg, dur := poolLevel(e)
	if !m.l.Enabled(ctx, lvl) {
		return
	}
	attrs := []slog.Attr{slog.String("engine", e.DB), slog.Duration(dur, e.Duration)}
	if e.Err != nil {
		// The driver's error, masked should it ever carry a DSN's password.
		attrs = append(attrs, slog.String("error", maskCredentials(e.Err.Error())))
	}
	m.l.LogAttrs(ctx, lvl, msg, attrs...)
}
