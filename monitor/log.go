package monitor

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/enginekit/enginekit/internal/dialect"
)

// LogOption configures the log monitors, NewZap and NewSlog.
type LogOption func(*logConfig)

// ZapOption configures NewZap; every LogOption is one.
type ZapOption = LogOption

type logConfig struct {
	args   bool
	maxSQL int
	every  bool
	levels []levelRule
}

// levelRule is a FailureLevel.
type levelRule struct {
	target error
	level  slog.Level
}

// LogArgs adds statements' arguments to their log lines. Off by default:
// arguments hold user data.
func LogArgs() LogOption { return func(c *logConfig) { c.args = true } }

// MaxSQLLength cuts SQL text in log lines after n bytes (default 2048;
// 0 or less: no limit).
func MaxSQLLength(n int) LogOption { return func(c *logConfig) { c.maxSQL = n } }

// LogEveryStatement logs every statement at debug level, besides slow and
// failed ones.
func LogEveryStatement() LogOption { return func(c *logConfig) { c.every = true } }

// FailureLevel logs the failed statements and transactions whose error
// matches target (errors.Is) at level, instead of the level of their
// class (see NewZap). Rules are tried in the order given, before the
// classes; the first that matches decides. The error classes of package
// session are the usual targets:
//
//	monitor.NewZap(logger,
//		monitor.FailureLevel(session.ErrDuplicate, slog.LevelInfo),
//		monitor.FailureLevel(session.ErrConflict, slog.LevelError))
//
// Levels are log/slog's for both monitors; the zap monitor logs one below
// slog's info at debug, one below warn at info, one below error at warn.
func FailureLevel(target error, level slog.Level) LogOption {
	return func(c *logConfig) { c.levels = append(c.levels, levelRule{target, level}) }
}

// logCore is what the zap and slog monitors share: their options, the
// level each event deserves, and how SQL and errors are made fit for a
// log line.
type logCore struct {
	cfg logConfig

	mu      sync.RWMutex
	engines map[string]*engineSystem // by engine name: how to read its SQL
}

// engineSystem is the system of the engines of one name (two apps may
// share a monitor): "" when they differ.
type engineSystem struct {
	sys System
	n   int
}

func newLogCore(opts []LogOption) *logCore {
	c := logConfig{maxSQL: 2048}
	for _, o := range opts {
		o(&c)
	}
	return &logCore{cfg: c, engines: map[string]*engineSystem{}}
}

// AddEngine notes the system of an engine, whose SQL is then read as its
// database reads it.
func (z *logCore) AddEngine(e EngineInfo) func() {
	z.mu.Lock()
	defer z.mu.Unlock()
	es := z.engines[e.DB]
	switch {
	case es == nil:
		es = &engineSystem{sys: e.System}
		z.engines[e.DB] = es
	case es.sys != e.System:
		es.sys = "" // engines of one name on two systems: read as either
	}
	es.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			z.mu.Lock()
			defer z.mu.Unlock()
			if es.n--; es.n == 0 && z.engines[e.DB] == es {
				delete(z.engines, e.DB)
			}
		})
	}
}

// system is the system of the engine db, "" when unknown.
func (z *logCore) system(db string) System {
	z.mu.RLock()
	defer z.mu.RUnlock()
	if es := z.engines[db]; es != nil {
		return es.sys
	}
	return ""
}

// failureLevel is the level a failure deserves: that of the first
// FailureLevel rule err matches, else that of its class. ctx is the
// statement's or the scope's: a failure met after it ended is the
// caller's doing.
func (z *logCore) failureLevel(ctx context.Context, err error) slog.Level {
	for _, r := range z.cfg.levels {
		if errors.Is(err, r.target) {
			return r.level
		}
	}
	c := dialect.ClassOf(err)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		c.Has(dialect.Canceled) && ctx != nil && ctx.Err() != nil:
		if c.Has(dialect.ConnLost) {
			// Cut by enginekit: the server did not answer by the deadline.
			return slog.LevelWarn
		}
		return slog.LevelDebug // the caller gave up
	case c.Any(dialect.Constraint):
		return slog.LevelDebug
	case c.Has(dialect.Locked) && !c.Has(dialect.Retryable):
		return slog.LevelDebug // a NOWAIT read met a locked row, as it may
	case c.Any(dialect.Retryable | dialect.Canceled | dialect.Stale):
		return slog.LevelWarn
	}
	return slog.LevelError
}

// queryLevel is the level and message of a statement's line; false when it
// is not logged.
func (z *logCore) queryLevel(ctx context.Context, e QueryEvent) (slog.Level, string, bool) {
	switch {
	case e.Err != nil && !errors.Is(e.Err, sql.ErrTxDone):
		lvl := z.failureLevel(ctx, e.Err)
		if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
			return lvl, "statement cut short by its context", true
		}
		return lvl, "statement failed", true
	case e.Slow:
		return slog.LevelWarn, "slow statement", true
	case z.cfg.every:
		return slog.LevelDebug, "statement", true
	}
	return 0, "", false
}

// txLevel is the level and message of a transaction event's line; false
// when it is not logged.
func (z *logCore) txLevel(ctx context.Context, e TxEvent) (slog.Level, string, bool) {
	switch {
	case e.Kind == TxRetry:
		for _, r := range z.cfg.levels {
			if errors.Is(e.Err, r.target) {
				return r.level, "transaction retried", true
			}
		}
		return slog.LevelWarn, "transaction retried", true
	case e.Err != nil && e.Kind == TxRollback:
		return z.failureLevel(ctx, e.Err), "transaction rollback failed", true
	case e.Err != nil:
		return z.failureLevel(ctx, e.Err), "transaction " + string(e.Kind) + " failed", true
	}
	return 0, "", false
}

// poolLevel is the level and message of a pool event's line, and the name
// of its duration.
func poolLevel(e PoolEvent) (lvl slog.Level, msg, dur string) {
	dur = "duration"
	switch {
	case e.Kind == PoolConnected:
		lvl, msg = slog.LevelDebug, "connection opened"
	case e.Kind == PoolConnectFailed:
		lvl, msg = slog.LevelWarn, "connect failed"
	case e.Kind == PoolAcquireTimeout:
		lvl, msg, dur = slog.LevelWarn, "no connection free within the acquire timeout", "waited"
	case e.Kind == PoolDeadConn:
		lvl, msg = slog.LevelInfo, "dead connection discarded"
	case e.Kind == PoolCancel && e.Err != nil:
		lvl, msg = slog.LevelWarn, "server-side cancel failed"
	case e.Kind == PoolCancel:
		lvl, msg = slog.LevelDebug, "statement cancelled on the server"
	default: // a kind added since: named in the line
		lvl, msg = slog.LevelDebug, "pool event "+string(e.Kind)
	}
	return lvl, msg, dur
}

// scrubMin is the shortest literal or argument scrubbed from an error's
// text: shorter ones are too common in messages to tell apart.
const scrubMin = 4

// errorText is the statement's error, with the values of its string
// literals and string arguments, which a driver's message may quote
// (PostgreSQL's invalid input syntax, MySQL's duplicate entry), replaced by
// ?: they stay out of the log as the SQL's literals and the arguments do.
// scrubbed is false when nothing was replaced.
func errorText(e QueryEvent, sys System) (text string, scrubbed bool) {
	msg := e.Err.Error()
	text = msg
	scrub := func(v string) {
		if len(v) >= scrubMin {
			text = strings.ReplaceAll(text, v, "?")
		}
	}
	if strings.ContainsAny(e.SQL, `'"$`) {
		for _, v := range literalValues(e.SQL, sys, scrubMin) {
			scrub(v)
		}
	}
	for _, a := range e.Args {
		switch v := a.Value.(type) {
		case string:
			scrub(v)
		case []byte:
			scrub(string(v))
		}
	}
	return text, text != msg
}

// sql returns query for a log line: its literals replaced by ?, its
// comments removed, cut after maxSQL bytes.
func (z *logCore) sql(query string, sys System) string {
	query = normalize(query, sys, z.cfg.maxSQL)
	if z.cfg.maxSQL > 0 && len(query) > z.cfg.maxSQL {
		cut := z.cfg.maxSQL
		for cut > 0 && !utf8Start(query[cut]) {
			cut--
		}
		query = query[:cut] + "..."
	}
	return query
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// args is the values of a statement's arguments.
func args(e QueryEvent) []any {
	out := make([]any, len(e.Args))
	for i, a := range e.Args {
		out[i] = a.Value
	}
	return out
}
