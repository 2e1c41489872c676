package dbfx

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
	"github.com/enginekit/enginekit/internal/netdial"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// Option configures Open beyond Config.
type Option func(*options)

type options struct {
	drivers    drivers
	log        *zap.Logger
	mon        monitor.Monitor
	startSteps []startupStep
	prepareQ   bool
	password   func(context.Context) (string, error) // WithPassword
	tls        *tls.Config                           // WithTLS
}

// WithLogger sets the logger of the engine (a no-op logger otherwise).
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithMonitor sets the monitor that observes the engine's statements,
// transactions and leaked connections; give several with monitor.Multi.
// Without one (or with monitor.Nop), and without Config.LeakThreshold,
// statements run on the driver unobserved.
func WithMonitor(m monitor.Monitor) Option {
	return func(o *options) {
		if m != nil {
			o.mon = m
		}
	}
}

// WithPreparedQueries makes the statements run through Sessions().Q run
// as cached prepared statements, as repositories' do (see
// session.WithPreparedQueries); Config.StatementCache sizes the cache.
func WithPreparedQueries() Option { return func(o *options) { o.prepareQ = true } }

// Engine is one database: its pools, its session Manager and its health.
// It is safe for use by many goroutines.
type Engine struct {
	r          *resolved
	log        *zap.Logger
	db         *sqlx.DB // writer
	reader     *sqlx.DB // SQLite: query-only readers; nil otherwise
	health     *sql.DB  // one connection kept for health checks; nil for SQLite in memory
	sessions   *session.Manager
	wrapped    []*connwrap.Connector // the connectors under the pools
	unstats    func()                // stops handing the pool figures to the monitor
	unengine   func()                // tells the monitor the engine is gone
	startSteps []startupStep         // WithStartup's steps
	replicas   *replicaSet           // nil without Config.Replicas
	healthLog  healthLog             // what the health checks last logged

	// state is how far the engine got: see gate.
	state      atomic.Int32
	notStarted error                 // the gate's answer before the start
	startErr   atomic.Pointer[error] // the gate's answer after a failed start

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// Open validates cfg, opens the pools and waits until the database answers
// (at most ConnectTimeout, retrying with backoff). It needs no Fx.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Engine, error) {
	e, err := newEngine(cfg, opts...)
	if err != nil {
		return nil, err
	}
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// newEngine builds an engine without touching the database.
func newEngine(cfg Config, opts ...Option) (*Engine, error) {
	o := options{log: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName
	}
	log := o.log.With(zap.String("engine", name))
	def := cfg.withDefaults()
	dialer := &netdial.Dialer{Setup: def.ConnectTimeout, DeadPeer: max(def.DeadPeerTimeout, 0)}
	dopts := drv.Options{ConnectTimeout: def.ConnectTimeout, Log: log, Dialer: dialer}
	o.connectHooks(name, def.ConnectTimeout, &dopts)
	r, err := cfg.resolve(o.drivers, dopts, refuseMissing)
	if err != nil {
		return nil, err
	}
	if err := o.refuseHooks(r); err != nil {
		return nil, err
	}
	c := r.cfg
	e := &Engine{r: r, log: log, closed: make(chan struct{}), startSteps: o.startSteps}
	e.notStarted = fmt.Errorf("dbfx: engine %q: %w: it connects when it starts (its Fx OnStart hook): "+
		"use it from an OnStart hook appended after the engine's, or once the app has started, not in an fx.Invoke", c.Name, session.ErrNotStarted)
	sqlite := r.drv.SQL.Family() == dialect.SQLite
	// Each connection of a pool with a lifetime expires at its own time
	// (connwrap.Options.MaxLifetime). The SQLite writer has none: its one
	// connection may be the whole database. Every pool, the health
	// connections' and the startup steps' included, opens no connection
	// before the start (Gate).
	watch := connwrap.Options{DB: c.Name, Dialect: r.drv.SQL, Monitor: o.mon, SlowQuery: c.SlowQuery, IdleCheck: c.IdleCheck,
		LeakThreshold: c.LeakThreshold, MaxLifetime: c.ConnMaxLifetime, Gate: e.gate}
	writerWatch := watch
	if sqlite {
		writerWatch.MaxLifetime = 0
	}
	if e.db, err = e.open(r.Writer, writerWatch); err != nil {
		return nil, fmt.Errorf("dbfx: engine %q: %s", c.Name, r.redact(err.Error()))
	}
	switch {
	case r.Memory:
		// One connection is the whole database: keep it open for ever.
		e.db.SetMaxOpenConns(1)
		e.db.SetMaxIdleConns(1)
	case sqlite:
		// One writer, so writes queue in the pool rather than fail busy.
		e.db.SetMaxOpenConns(1)
		e.db.SetMaxIdleConns(1)
		e.db.SetConnMaxIdleTime(c.ConnMaxIdleTime)
		if e.reader, err = e.open(r.Reader, watch); err != nil {
			_ = e.closePools()
			return nil, fmt.Errorf("dbfx: engine %q: %s", c.Name, r.redact(err.Error()))
		}
		setPool(e.reader.DB, c)
	default:
		setPool(e.db.DB, c)
	}
	if !r.Memory {
		connect := r.Writer
		if r.Reader != nil {
			connect = r.Reader
		}
		conn, _ := connect() // it opened a pool above
		e.health = sql.OpenDB(connwrap.Wrap(conn, connwrap.Options{DB: c.Name, Dialect: r.drv.SQL, Gate: e.gate}))
		e.health.SetMaxOpenConns(1)
		e.health.SetMaxIdleConns(1)
	}
	stmtCache := c.StatementCache
	if r.drv.CachesStatements {
		stmtCache = -1 // the driver's own cache; a second would prepare twice
	}
	sopts := []session.Option{session.WithDriver(r.drv), session.WithAcquireTimeout(c.AcquireTimeout),
		session.WithStatementCache(stmtCache), session.WithGate(e.gate)}
	if o.prepareQ && !r.drv.CachesStatements {
		sopts = append(sopts, session.WithPreparedQueries())
	}
	if len(r.replicas) > 0 {
		if err := e.openReplicas(watch); err != nil {
			_ = e.closePools()
			return nil, err
		}
		sopts = append(sopts, session.WithReplicas(e.replicas.pick))
		if e.replicas.primaryPos != nil {
			sopts = append(sopts, session.WithReplicaPositions(func(ctx context.Context) (uint64, error) {
				return pgPosition(ctx, e.db)
			}, e.replicas.pickAt))
		}
	}
	if !monitor.IsNop(o.mon) {
		sopts = append(sopts, session.WithMonitor(c.Name, o.mon))
	}
	if e.reader != nil {
		sopts = append(sopts, session.WithReader(e.reader))
	}
	if e.sessions, err = session.New(e.db, sopts...); err != nil {
		_ = e.closePools()
		return nil, err
	}
	if sink, ok := o.mon.(monitor.StatsSink); ok {
		e.unstats = sink.AddStatsSource(c.Name, e.Stats)
	}
	if em, ok := o.mon.(monitor.EngineMonitor); ok {
		e.unengine = em.AddEngine(monitor.EngineInfo{DB: c.Name, System: systemOf(r.drv.SQL.Family()),
			Namespace: r.Database, ServerAddress: r.Server, ServerPort: r.Port})
	}
	return e, nil
}

// open opens a pool on the connector connect returns, under the
// connection wrapper (see internal/connwrap) set per w. sqlx keeps the
// real driver name, on which its placeholders depend.
func (e *Engine) open(connect func() (driver.Connector, error), w connwrap.Options) (*sqlx.DB, error) {
	conn, err := connect()
	if err != nil {
		return nil, err
	}
	wc := connwrap.Wrap(conn, w)
	e.wrapped = append(e.wrapped, wc)
	return sqlx.NewDb(sql.OpenDB(wc), e.r.cfg.Driver), nil
}

// systemOf names a database family as monitors name systems.
func systemOf(f dialect.Family) monitor.System {
	switch f {
	case dialect.Postgres:
		return monitor.PostgreSQL
	case dialect.MySQL:
		return monitor.MySQL
	case dialect.SQLite:
		return monitor.SQLite
	}
	return ""
}

func setPool(db *sql.DB, c Config) {
	db.SetMaxOpenConns(c.MaxOpenConns)
	db.SetMaxIdleConns(c.MaxIdleConns)
	db.SetConnMaxLifetime(c.ConnMaxLifetime)
	db.SetConnMaxIdleTime(c.ConnMaxIdleTime)
}

// Name is the engine's name.
func (e *Engine) Name() string { return e.r.cfg.Name }

// Driver is the name of the engine's driver: postgres, mysql or sqlite3.
func (e *Engine) Driver() string { return e.r.cfg.Driver }

// DB is the primary (writer) pool. Statements sent through it directly
// bypass scopes and are bounded by their ctx alone. It is never nil:
// before the engine's start its statements fail with an error matching
// session.ErrNotStarted, without reaching the database (see Module).
func (e *Engine) DB() *sqlx.DB { return e.db }

// Sessions is the engine's session Manager.
func (e *Engine) Sessions() *session.Manager { return e.sessions }

// describe names the engine, driver and host for messages.
func (e *Engine) describe() string {
	return fmt.Sprintf("engine %q (%s at %s)", e.Name(), e.Driver(), e.r.Host)
}

// The states of an engine, in Engine.state.
const (
	stateNew      int32 = iota // built: nothing may reach the database
	stateStarting              // start has begun: its pings and steps go through the pools
	stateStarted               // started; Close ends it by closing the pools
	stateFailed                // the start failed and closed the pools
)

// gate is the Gate of every pool's connector and of the session Manager:
// until the start begins, and after a start that failed, it refuses with
// an error matching session.ErrNotStarted, so that nothing opens a
// connection behind the start's back (before the connect retry and the
// startup steps such as migrations). It lets the start through from its
// first ping. It is called for every statement outside a scope: it reads
// one atomic.
func (e *Engine) gate() error {
	switch e.state.Load() {
	case stateStarting, stateStarted:
		return nil
	case stateFailed:
		return *e.startErr.Load()
	}
	return e.notStarted
}

// start waits until every pool answers a ping, at most ConnectTimeout,
// then runs the startup steps. When it fails it closes the pools (Fx does
// not stop a hook whose start failed), and the engine stays refused: its
// scopes and statements fail with session.ErrNotStarted, naming the
// start's failure.
func (e *Engine) start(ctx context.Context) error {
	e.state.Store(stateStarting)
	err := e.connect(ctx)
	if err == nil {
		if err = e.runStartup(ctx); err != nil {
			_ = e.closePools()
		}
	}
	if err != nil {
		failed := fmt.Errorf("dbfx: engine %q: %w: its start failed: %s", e.Name(), session.ErrNotStarted, e.r.redact(err.Error()))
		e.startErr.Store(&failed)
		e.state.Store(stateFailed)
		return err
	}
	e.state.Store(stateStarted)
	return nil
}

// connect waits until every pool answers a ping, at most ConnectTimeout.
func (e *Engine) connect(ctx context.Context) error {
	timeout := e.r.cfg.ConnectTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pools := []*sql.DB{e.db.DB} // the writer first: on SQLite it creates the file in WAL mode
	if e.reader != nil {
		pools = append(pools, e.reader.DB)
	}
	if e.health != nil {
		pools = append(pools, e.health)
	}
	if e.r.TLSOff && !loopback(e.r.Host) {
		e.log.Warn("database connection is not encrypted: enable TLS in the DSN",
			zap.String("driver", e.Driver()), zap.String("host", e.r.Host))
	}
	begun := time.Now()
	for _, db := range pools {
		if err := ping(ctx, db, e.r.drv); err != nil {
			var msg string
			if ctx.Err() != nil {
				msg = fmt.Sprintf("%s did not answer within %s: %v", e.describe(), timeout, err)
			} else {
				msg = fmt.Sprintf("%s refused the connection: %v", e.describe(), err)
			}
			_ = e.closePools()
			return &connectError{msg: "dbfx: cannot connect: " + e.r.redact(msg), err: err}
		}
	}
	if e.replicas != nil {
		// A replica that is down does not fail the start: reads go to the
		// primary until a check finds it up.
		e.replicas.checkAll(ctx, min(timeout, 5*time.Second))
		e.replicas.start()
	}
	e.log.Info("engine started", zap.String("driver", e.Driver()), zap.String("host", e.r.Host),
		zap.Duration("took", time.Since(begun)))
	return nil
}

// openReplicas opens a pool and a health connection per replica.
func (e *Engine) openReplicas(watch connwrap.Options) error {
	e.replicas = &replicaSet{log: e.log, driver: e.Driver(), interval: e.r.cfg.HealthInterval, maxLag: e.r.cfg.MaxReplicaLag}
	if e.r.drv.SQL.Family() == dialect.Postgres {
		e.replicas.primaryPos = func(ctx context.Context) (uint64, error) { return pgPosition(ctx, e.health) }
	}
	for _, rr := range e.r.replicas {
		db, err := e.open(rr.Writer, watch)
		if err != nil {
			return fmt.Errorf("dbfx: engine %q: replica %s: %s", e.Name(), rr.Host, rr.redact(err.Error()))
		}
		setPool(db.DB, e.r.cfg)
		conn, _ := rr.Writer() // it opened a pool above
		health := sql.OpenDB(connwrap.Wrap(conn, connwrap.Options{DB: e.Name(), Dialect: rr.drv.SQL, Gate: e.gate}))
		health.SetMaxOpenConns(1)
		health.SetMaxIdleConns(1)
		e.replicas.rs = append(e.replicas.rs, &replica{r: rr, db: db, health: health})
	}
	return nil
}

// ping retries until the database answers, ctx ends, or it refuses us for
// a reason that waiting cannot cure (bad password, unknown database).
func ping(ctx context.Context, db *sql.DB, d *drv.Driver) error {
	delay := 25 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || permanent(d, err) {
			return err
		}
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// permanent reports a connection error that retrying will not cure.
func permanent(d *drv.Driver, err error) bool {
	if errors.Is(err, ErrCredentials) {
		return false // the password hook's source (Vault, a token service) may answer at the next try
	}
	if d.Permanent != nil {
		if p, known := d.Permanent(err); known {
			return p
		}
	}
	c := d.SQL.Classify(err) // SQLite busy while another process opens the file: wait
	return !c.Has(dialect.ConnLost) && !c.Has(dialect.Retryable) &&
		!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// connectError matches ErrConnect and the driver's error; its text has no
// password.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string   { return e.msg }
func (e *connectError) Unwrap() []error { return []error{ErrConnect, e.err} }

// Close stops new scopes (they fail with session.ErrClosed), waits for the
// scopes in flight until ctx ends, then cancels them, and closes every pool.
// It returns the ctx error when it had to cancel scopes. Calling it again
// returns the first result.
func (e *Engine) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		close(e.closed)
		err := e.sessions.Close(ctx)
		e.closeErr = errors.Join(err, e.closePools())
		e.log.Info("engine closed", zap.Error(e.closeErr))
	})
	return e.closeErr
}

func (e *Engine) closePools() error {
	if e.unstats != nil {
		e.unstats()
	}
	if e.unengine != nil {
		e.unengine()
	}
	var errs []error
	for _, db := range []*sql.DB{e.db.DB, e.health} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if e.reader != nil {
		errs = append(errs, e.reader.Close())
	}
	if e.replicas != nil {
		errs = append(errs, e.replicas.close()...)
	}
	return errors.Join(errs...)
}
