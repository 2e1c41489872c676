package monitor

import (
	"context"
	"log/slog"
	"regexp"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapMonitor writes log lines for the events that need a reader.
type zapMonitor struct {
	*logCore
	l *zap.Logger
}

var (
	_ Monitor       = (*zapMonitor)(nil)
	_ LeakMonitor   = (*zapMonitor)(nil)
	_ PoolMonitor   = (*zapMonitor)(nil)
	_ EngineMonitor = (*zapMonitor)(nil)
)

// NewZap returns a monitor that logs to l: failed statements and
// transactions at the level their error's class deserves, slow statements
// and retries at warn, leaked connections at error with the stack that
// took them (it is a LeakMonitor).
//
// Levels of failures, by class (see the error classes of package
// session), unless a FailureLevel option says otherwise:
//
//	debug  the caller's ctx ended (context.Canceled, DeadlineExceeded,
//	       or the cancel it caused); constraint violations (ErrDuplicate,
//	       ErrForeignKey, ErrNotNull, ErrCheck), which applications
//	       answer; a NOWAIT read that met a locked row (ErrLocked; on
//	       MariaDB that is 1205, a lock wait timeout, logged at warn)
//	warn   a conflict that the transaction scope retries (ErrConflict,
//	       also at COMMIT; "transaction retried" follows, and only the
//	       error the caller gets says whether the last attempt won); a
//	       statement stopped by the server's statement timeout
//	       (ErrCanceled); a stale prepared statement, prepared again; a
//	       call whose connection enginekit cut when its server did not
//	       answer by the deadline
//	error  anything else: a lost connection, a refused write in a
//	       read-only transaction, a syntax error, a missing table...
//
// SQL text is logged with its literals replaced
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
//
// NewSlog is the same monitor on a *slog.Logger.
func NewZap(l *zap.Logger, opts ...LogOption) Monitor {
	if l == nil {
		l = zap.NewNop()
	}
	return &zapMonitor{logCore: newLogCore(opts), l: l}
}

// zapLevel is the zap level of a slog level: below info is debug, below
// warn info, below error warn.
func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l < slog.LevelInfo:
		return zapcore.DebugLevel
	case l < slog.LevelWarn:
		return zapcore.InfoLevel
	case l < slog.LevelError:
		return zapcore.WarnLevel
	}
	return zapcore.ErrorLevel
}

// Query logs a failed, slow or (with LogEveryStatement) any statement.
func (z *zapMonitor) Query(ctx context.Context, e QueryEvent) {
	lvl, msg, ok := z.queryLevel(ctx, e)
	if !ok {
		return
	}
	ce := z.l.Check(zapLevel(lvl), msg)
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
		fields = append(fields, zap.Any("args", args(e)))
	}
	if e.Err != nil {
		if text, scrubbed := errorText(e, sys); scrubbed {
			fields = append(fields, zap.String("error", text))
		} else {
			fields = append(fields, zap.Error(e.Err))
		}
	}
	ce.Write(fields...)
}

// Tx logs failed transactions at the level of their error's class, and
// retries at warn.
func (z *zapMonitor) Tx(ctx context.Context, e TxEvent) {
	lvl, msg, ok := z.txLevel(ctx, e)
	if !ok {
		return
	}
	if ce := z.l.Check(zapLevel(lvl), msg); ce != nil {
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
	lvl, msg, dur := poolLevel(e)
	ce := z.l.Check(zapLevel(lvl), msg)
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
