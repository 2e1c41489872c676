package monitor

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ZapOption configures NewZap.
type ZapOption func(*zapConfig)

type zapConfig struct {
	args     bool
	maxSQL   int
	every    bool
	canceled zapcore.Level
}

// LogArgs adds statements' arguments to their log lines. Off by default:
// arguments hold user data.
func LogArgs() ZapOption { return func(c *zapConfig) { c.args = true } }

// MaxSQLLength cuts SQL text in log lines after n bytes (default 2048;
// 0 or less: no limit).
func MaxSQLLength(n int) ZapOption { return func(c *zapConfig) { c.maxSQL = n } }

// LogEveryStatement logs every statement at debug level, besides slow and
// failed ones.
func LogEveryStatement() ZapOption { return func(c *zapConfig) { c.every = true } }

// zapMonitor writes log lines for the events that need a reader.
type zapMonitor struct {
	l   *zap.Logger
	cfg zapConfig

	mu      sync.RWMutex
	engines map[string]*engineSystem // by engine name: how to read its SQL
}

// engineSystem is the system of the engines of one name (two apps may
// share a monitor): "" when they differ.
type engineSystem struct {
	sys System
	n   int
}

var (
	_ Monitor       = (*zapMonitor)(nil)
	_ LeakMonitor   = (*zapMonitor)(nil)
	_ PoolMonitor   = (*zapMonitor)(nil)
	_ EngineMonitor = (*zapMonitor)(nil)
)

// NewZap returns a monitor that logs to l: failed statements and
// transactions at error level, slow statements and retries at warn, leaked
// connections at error with the stack that took them (it is a
// LeakMonitor). Statements cut short by their context's end are logged at
// debug: the caller gave up. SQL text is logged with its literals replaced
// by ? and its comments removed (NormalizeSQL, as the engine's database
// reads it: the monitor is an EngineMonitor), so that no value written
// into the SQL reaches a log: not PASSWORD('...'), not IDENTIFIED BY
// '...', not E'...' or $$...$$. Arguments are logged only with LogArgs. A
// failed statement's error is logged with the values of its string
// literals and string arguments (four bytes or more) replaced by ?, should
// the driver's message quote one. It never sees a DSN.
//
// It is a PoolMonitor too: failed connects at warn with the driver's
// error, acquire timeouts at warn with how long the caller waited, dead
// connections discarded at info, server-side cancels at debug (at warn
// when the cancel failed), connections opened at debug.
func NewZap(l *zap.Logger, opts ...ZapOption) Monitor {
	if l == nil {
		l = zap.NewNop()
	}
	c := zapConfig{maxSQL: 2048, canceled: zapcore.DebugLevel}
	for _, o := range opts {
		o(&c)
	}
	return &zapMonitor{l: l, cfg: c, engines: map[string]*engineSystem{}}
}

// AddEngine notes the system of an engine, whose SQL is then read as its
// database reads it.
func (z *zapMonitor) AddEngine(e EngineInfo) func() {
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
func (z *zapMonitor) system(db string) System {
	z.mu.RLock()
	defer z.mu.RUnlock()
	if es := z.engines[db]; es != nil {
		return es.sys
	}
	return ""
}

// Query logs a failed, slow or (with LogEveryStatement) any statement.
func (z *zapMonitor) Query(_ context.Context, e QueryEvent) {
	var lvl zapcore.Level
	var msg string
	switch {
	case e.Err != nil && (errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded)):
		lvl, msg = z.cfg.canceled, "statement cut short by its context"
	case e.Err != nil && !errors.Is(e.Err, sql.ErrTxDone):
		lvl, msg = zapcore.ErrorLevel, "statement failed"
	case e.Slow:
		lvl, msg = zapcore.WarnLevel, "slow statement"
	case z.cfg.every:
		lvl, msg = zapcore.DebugLevel, "statement"
	default:
		return
	}
	ce := z.l.Check(lvl, msg)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 7)
	fields = append(fields, zap.String("engine", e.DB), zap.String("operation", string(e.Op)),
		zap.Duration("duration", e.Duration))
	sys := z.system(e.DB)
	if e.SQL != "" {
		fields = append(fields, zap.String("sql", z.sql(e.SQL, sys)))
	}
	if e.Rows >= 0 {
		fields = append(fields, zap.Int64("rows", e.Rows))
	}
	if z.cfg.args && len(e.Args) > 0 {
		args := make([]any, len(e.Args))
		for i, a := range e.Args {
			args[i] = a.Value
		}
		fields = append(fields, zap.Any("args", args))
	}
	if e.Err != nil {
		fields = append(fields, z.errorField(e, sys))
	}
	ce.Write(fields...)
}

// scrubMin is the shortest literal or argument scrubbed from an error's
// text: shorter ones are too common in messages to tell apart.
const scrubMin = 4

// errorField is the statement's error, with the values of its string
// literals and string arguments, which a driver's message may quote
// (PostgreSQL's invalid input syntax, MySQL's duplicate entry), replaced by
// ?: they stay out of the log as the SQL's literals and the arguments do.
func (z *zapMonitor) errorField(e QueryEvent, sys System) zap.Field {
	msg := e.Err.Error()
	scrubbed := msg
	scrub := func(v string) {
		if len(v) >= scrubMin {
			scrubbed = strings.ReplaceAll(scrubbed, v, "?")
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
	if scrubbed == msg {
		return zap.Error(e.Err)
	}
	return zap.String("error", scrubbed)
}

// Tx logs failed transactions at error level and retries at warn.
func (z *zapMonitor) Tx(_ context.Context, e TxEvent) {
	var lvl zapcore.Level
	var msg string
	switch {
	case e.Kind == TxRetry:
		lvl, msg = zapcore.WarnLevel, "transaction retried"
	case e.Err != nil && e.Kind == TxRollback:
		lvl, msg = zapcore.ErrorLevel, "transaction rollback failed"
	case e.Err != nil:
		lvl, msg = zapcore.ErrorLevel, "transaction "+string(e.Kind)+" failed"
	default:
		return
	}
	if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
		lvl = z.cfg.canceled
	}
	if ce := z.l.Check(lvl, msg); ce != nil {
		ce.Write(zap.String("engine", e.DB), zap.String("label", e.Label), zap.Int("attempt", e.Attempt),
			zap.Duration("duration", e.Duration), zap.Error(e.Err))
	}
}

// Leak logs a leaked connection with the stack that took it.
func (z *zapMonitor) Leak(e LeakEvent) {
	z.l.Error("connection held longer than the leak threshold", zap.String("engine", e.DB),
		zap.Duration("held", e.Held), zap.String("taken_at", e.Stack))
}

// Pool logs the pool's events: see NewZap for their levels.
func (z *zapMonitor) Pool(_ context.Context, e PoolEvent) {
	var lvl zapcore.Level
	var msg string
	dur := "duration"
	switch {
	case e.Kind == PoolConnected:
		lvl, msg = zapcore.DebugLevel, "connection opened"
	case e.Kind == PoolConnectFailed:
		lvl, msg = zapcore.WarnLevel, "connect failed"
	case e.Kind == PoolAcquireTimeout:
		lvl, msg, dur = zapcore.WarnLevel, "no connection free within the acquire timeout", "waited"
	case e.Kind == PoolDeadConn:
		lvl, msg = zapcore.InfoLevel, "dead connection discarded"
	case e.Kind == PoolCancel && e.Err != nil:
		lvl, msg = zapcore.WarnLevel, "server-side cancel failed"
	case e.Kind == PoolCancel:
		lvl, msg = zapcore.DebugLevel, "statement cancelled on the server"
	default: // a kind added since: named in the line
		lvl, msg = zapcore.DebugLevel, "pool event "+string(e.Kind)
	}
	ce := z.l.Check(lvl, msg)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 3)
	fields = append(fields, zap.String("engine", e.DB), zap.Duration(dur, e.Duration))
	if e.Err != nil {
		// The driver's error, masked should it ever carry a DSN's password.
		fields = append(fields, zap.String("error", maskCredentials(e.Err.Error())))
	}
	ce.Write(fields...)
}

// urlUserinfo finds the password of a URL's user:password@, mysqlUserinfo
// that of a MySQL DSN's (user:password@tcp(host)), each up to the last @
// (a password may hold one); passwordParam a password=... parameter
// (libpq's key/value form, a query string).
var (
	urlUserinfo   = regexp.MustCompile(`(://[^\s/:@]*:)\S*@`)
	mysqlUserinfo = regexp.MustCompile(`((?:^|[\s"'(])[^\s/:@"'()]*:)\S*@((?:tcp|unix)\()`)
	passwordParam = regexp.MustCompile(`(?i)\b(password|passwd|pwd)(\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'&;]+)`)
)

// maskCredentials masks the passwords that urlUserinfo, mysqlUserinfo and
// passwordParam find in s.
func maskCredentials(s string) string {
	if strings.Contains(s, "@") {
		s = urlUserinfo.ReplaceAllString(s, "${1}xxxxx@")
		s = mysqlUserinfo.ReplaceAllString(s, "${1}xxxxx@${2}")
	}
	if strings.Contains(s, "=") {
		s = passwordParam.ReplaceAllString(s, "${1}${2}xxxxx")
	}
	return s
}

// sql returns query for a log line: its literals replaced by ?, its
// comments removed, cut after maxSQL bytes.
func (z *zapMonitor) sql(query string, sys System) string {
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
