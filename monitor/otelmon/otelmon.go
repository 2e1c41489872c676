package otelmon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/enginekit/enginekit/monitor"
)

// ScopeName is the instrumentation scope of the monitor's tracer and
// meter.
const ScopeName = "github.com/enginekit/enginekit/monitor/otelmon"

// DurationBuckets returns the bucket bounds, in seconds, that
// OpenTelemetry's database conventions advise for
// db.client.operation.duration and the connection times: the monitor's
// histograms use them. Each call returns a new slice.
func DurationBuckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}
}

// Attribute keys of enginekit's own, beside the conventions'.
const (
	EngineKey       = attribute.Key("enginekit.engine")            // the engine's name (dbfx.Config.Name)
	TxLabelKey      = attribute.Key("enginekit.transaction.label") // session.Label
	TxAttemptKey    = attribute.Key("enginekit.transaction.attempt")
	TxOutcomeKey    = attribute.Key("enginekit.transaction.outcome") // committed, rolled_back, failed
	RowsAffectedKey = attribute.Key("enginekit.rows_affected")
	SlowKey         = attribute.Key("enginekit.slow") // the statement reached the engine's SlowQuery
)

// RetryEvent is the name of the span event a transaction's retry adds to
// the span of the ctx the transaction scope was called with.
const RetryEvent = "enginekit.transaction.retry"

// Option configures New.
type Option func(*config)

type config struct {
	tp        trace.TracerProvider
	mp        metric.MeterProvider
	queryText bool
}

// WithTracerProvider sets where spans go (otel.GetTracerProvider() when
// not given or nil).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider sets where metrics go (otel.GetMeterProvider() when
// not given or nil).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithQueryText puts each statement's text on its span as db.query.text,
// normalised (monitor.NormalizeSQL: its literals replaced by ?, its
// comments removed). Off by default: the conventions make the text
// opt-in, and a statement written with its values in it carries them.
func WithQueryText() Option {
	return func(c *config) { c.queryText = true }
}

// Monitor is a monitor.Monitor that makes OpenTelemetry spans and
// metrics. One serves every engine of an application. See the package
// documentation for what it records.
type Monitor struct {
	tracer    trace.Tracer
	queryText bool

	duration   metric.Float64Histogram
	createTime metric.Float64Histogram
	dead       metric.Int64Counter
	cancels    metric.Int64Counter
	retries    metric.Int64Counter

	engines engines
	texts   cache[textKey, *shape]
	shapes  cache[shapeKey, *shape]
	sets    cache[setKey, []metric.RecordOption]
	pools   pools
}

var (
	_ monitor.QueryTracer   = (*Monitor)(nil)
	_ monitor.TxTracer      = (*Monitor)(nil)
	_ monitor.PoolMonitor   = (*Monitor)(nil)
	_ monitor.StatsSink     = (*Monitor)(nil)
	_ monitor.EngineMonitor = (*Monitor)(nil)
)

// New returns a monitor on the given providers, or the global ones.
func New(opts ...Option) (*Monitor, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	m := &Monitor{
		tracer:    c.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		queryText: c.queryText,
	}
	meter := c.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	m.duration, err = meter.Float64Histogram("db.client.operation.duration",
		metric.WithDescription("Duration of database client operations."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(DurationBuckets()...))
	add(err)
	m.createTime, err = meter.Float64Histogram("db.client.connection.create_time",
		metric.WithDescription("The time it took to create a new connection."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(DurationBuckets()...))
	add(err)
	m.dead, err = meter.Int64Counter("enginekit.db.client.connection.dead",
		metric.WithDescription("Pooled connections found dead when taken from the pool, discarded before use."),
		metric.WithUnit("{connection}"))
	add(err)
	m.cancels, err = meter.Int64Counter("enginekit.db.client.operation.cancels",
		metric.WithDescription("Statements whose context ended, stopped on the server by enginekit."),
		metric.WithUnit("{operation}"))
	add(err)
	m.retries, err = meter.Int64Counter("enginekit.db.client.transaction.retries",
		metric.WithDescription("Transactions run again by their scope after a retryable failure."),
		metric.WithUnit("{retry}"))
	add(err)
	add(m.pools.register(meter))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("otelmon: %w", err)
	}
	return m, nil
}

// engine is what the monitor knows of an engine.
type engine struct {
	name   string
	system string
	attrs  []attribute.KeyValue // db.system.name, db.namespace, server.address, server.port
}

func newEngine(info monitor.EngineInfo) *engine {
	e := &engine{name: info.DB, system: string(info.System)}
	if e.system == "" {
		e.system = semconv.DBSystemNameOtherSQL.Value.AsString()
	}
	e.attrs = append(e.attrs, semconv.DBSystemNameKey.String(e.system))
	if info.Namespace != "" {
		e.attrs = append(e.attrs, semconv.DBNamespaceKey.String(info.Namespace))
	}
	if info.ServerAddress != "" {
		e.attrs = append(e.attrs, semconv.ServerAddressKey.String(info.ServerAddress))
		if info.ServerPort != 0 {
			e.attrs = append(e.attrs, semconv.ServerPortKey.Int(info.ServerPort))
		}
	}
	return e
}

// engines are the engines the monitor was told of, by name. Reads are
// lock-free; a change copies the map.
type engines struct {
	m  atomic.Pointer[map[string]*engine]
	mu sync.Mutex
}

func (es *engines) get(name string) *engine {
	if m := es.m.Load(); m != nil {
		if e, ok := (*m)[name]; ok {
			return e
		}
	}
	return es.put(name, newEngine(monitor.EngineInfo{DB: name}), false)
}

// put adds e under name, replacing what is there when replace is set.
// It returns the engine under name.
func (es *engines) put(name string, e *engine, replace bool) *engine {
	es.mu.Lock()
	defer es.mu.Unlock()
	next := map[string]*engine{}
	if old := es.m.Load(); old != nil {
		if cur, ok := (*old)[name]; ok && !replace {
			return cur
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	next[name] = e
	es.m.Store(&next)
	return e
}

func (es *engines) remove(name string, e *engine) {
	es.mu.Lock()
	defer es.mu.Unlock()
	old := es.m.Load()
	if old == nil || (*old)[name] != e {
		return
	}
	next := map[string]*engine{}
	for k, v := range *old {
		if k != name {
			next[k] = v
		}
	}
	es.m.Store(&next)
}

// AddEngine notes an engine's database, which its spans and metrics then
// carry: db.system.name, db.namespace, server.address and server.port.
func (m *Monitor) AddEngine(info monitor.EngineInfo) func() {
	e := m.engines.put(info.DB, newEngine(info), true)
	var once sync.Once
	return func() { once.Do(func() { m.engines.remove(info.DB, e) }) }
}

// stmtKey is the ctx key of a statement's span, put by QueryStart.
type stmtKey struct{}

// stmt is the ctx QueryStart returns: the ctx holding the statement's
// span, and what the Query call that ends it needs. Being a ctx itself,
// it costs one allocation where a context.WithValue beside it would cost
// two.
type stmt struct {
	context.Context
	span trace.Span
	sh   *shape
}

func (s *stmt) Value(key any) any {
	if key == (stmtKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// QueryStart opens the statement's span, a client span under the span in
// ctx: the transaction's inside a transaction scope.
func (m *Monitor) QueryStart(ctx context.Context, e monitor.QueryStart) context.Context {
	eng := m.engines.get(e.DB)
	k := textKey{eng: eng, op: e.Op, sql: e.SQL}
	var sh *shape
	if len(e.SQL) <= maxCachedText {
		sh = m.texts.get(k, m.shapeOf)
	} else {
		sh = m.shapeOf(k) // too long to keep: read at each statement
	}
	opts := sh.start
	if m.queryText && e.SQL != "" {
		opts = append(opts[:len(opts):len(opts)], trace.WithAttributes(
			semconv.DBQueryTextKey.String(monitor.NormalizeSQL(e.SQL, monitor.System(eng.system)))))
	}
	ctx, span := m.tracer.Start(ctx, sh.name, opts...)
	return &stmt{Context: ctx, span: span, sh: sh}
}

// textKey is a statement as QueryStart sees it.
type textKey struct {
	eng *engine
	op  monitor.Op
	sql string
}

// shapeOf is the shape of the statement k: the text is read once per
// engine and kind, not at each statement.
func (m *Monitor) shapeOf(k textKey) *shape {
	sk := shapeKey{eng: k.eng, op: monitor.Operation(k.op, k.sql)}
	if k.op == monitor.OpExec || k.op == monitor.OpQuery || k.op == monitor.OpPrepare {
		sk.target = monitor.Collection(k.sql)
	}
	return m.shapes.get(sk, m.newShape)
}

// shapeKey is what the name and first attributes of a statement's span
// are made of.
type shapeKey struct {
	eng        *engine
	op, target string
}

// shape is what statements of one engine, operation and table share:
// their span's name and start options, and the options that record a
// successful statement's duration. Each is made once, so that a
// statement allocates only what the SDK does.
type shape struct {
	shapeKey
	name  string
	start []trace.SpanStartOption
	ok    []metric.RecordOption
}

// newShape names a statement span as the conventions do (operation and
// table, the operation alone, or the database system) and gives its
// attributes.
func (m *Monitor) newShape(k shapeKey) *shape {
	sh := &shape{shapeKey: k, name: k.eng.system}
	switch {
	case k.op != "" && k.target != "":
		sh.name = k.op + " " + k.target
	case k.op != "":
		sh.name = k.op
	}
	attrs := append([]attribute.KeyValue(nil), k.eng.attrs...)
	if k.op != "" {
		attrs = append(attrs, semconv.DBOperationNameKey.String(k.op))
	}
	if k.target != "" {
		attrs = append(attrs, semconv.DBCollectionNameKey.String(k.target))
	}
	attrs = append(attrs, EngineKey.String(k.eng.name))
	sh.start = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
	sh.ok = m.sets.get(setKey{eng: k.eng, op: k.op, target: k.target}, newSet)
	return sh
}

// Query records the statement's duration and ends its span.
func (m *Monitor) Query(ctx context.Context, e monitor.QueryEvent) {
	st, _ := ctx.Value(stmtKey{}).(*stmt)
	var k setKey
	if st != nil {
		k = setKey{eng: st.sh.eng, op: st.sh.op, target: st.sh.target}
	} else {
		k = setKey{eng: m.engines.get(e.DB), op: monitor.Operation(e.Op, e.SQL)}
		if e.Op == monitor.OpExec || e.Op == monitor.OpQuery || e.Op == monitor.OpPrepare {
			k.target = monitor.Collection(e.SQL)
		}
	}
	k.errType = monitor.ErrorType(e.Err)
	var rec []metric.RecordOption
	if st != nil && k.errType == "" {
		rec = st.sh.ok
	} else {
		rec = m.sets.get(k, newSet)
	}
	m.duration.Record(ctx, e.Duration.Seconds(), rec...)
	if st == nil {
		return
	}
	span := st.span
	if span.IsRecording() {
		if e.Op == monitor.OpExec && e.Rows >= 0 {
			span.SetAttributes(RowsAffectedKey.Int64(e.Rows))
		}
		if e.Slow {
			span.SetAttributes(SlowKey.Bool(true))
		}
		if e.Err != nil {
			setError(span, e.Err, k.errType)
		}
	}
	span.End()
}

// setError marks span failed with err's class. The error's text is not
// recorded: a driver's message may quote the values of the statement.
func setError(span trace.Span, err error, errType string) {
	span.SetAttributes(semconv.ErrorTypeKey.String(errType))
	var st interface{ SQLState() string }
	if errors.As(err, &st) && st.SQLState() != "" {
		span.SetAttributes(semconv.DBResponseStatusCodeKey.String(st.SQLState()))
	}
	span.SetStatus(codes.Error, errType)
}

// txKey is the ctx key of a transaction attempt's span, put by TxStart.
type txKey struct{}

// TxStart opens the span of a transaction scope's attempt, under the span
// in ctx; the attempt's statements (BEGIN, COMMIT or ROLLBACK, and
// savepoints included) are its children.
func (m *Monitor) TxStart(ctx context.Context, e monitor.TxStart) context.Context {
	eng := m.engines.get(e.DB)
	attrs := make([]attribute.KeyValue, 0, len(eng.attrs)+3)
	attrs = append(attrs, eng.attrs...)
	attrs = append(attrs, EngineKey.String(e.DB), TxAttemptKey.Int(e.Attempt))
	name := "TRANSACTION"
	if e.Label != "" {
		attrs = append(attrs, TxLabelKey.String(e.Label))
		name += " " + e.Label
	}
	ctx, span := m.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, txKey{}, span)
}

// Tx ends a transaction attempt's span when it commits, rolls back or
// fails to begin, and adds RetryEvent to the caller's span on a retry.
func (m *Monitor) Tx(ctx context.Context, e monitor.TxEvent) {
	if e.Kind == monitor.TxRetry {
		errType := semconv.ErrorTypeKey.String(monitor.ErrorType(e.Err))
		counted := []attribute.KeyValue{EngineKey.String(e.DB), errType}
		if e.Label != "" {
			counted = append(counted, TxLabelKey.String(e.Label))
		}
		m.retries.Add(ctx, 1, metric.WithAttributes(counted...))
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent(RetryEvent, trace.WithAttributes(append(counted, TxAttemptKey.Int(e.Attempt))...))
		}
		return
	}
	span, _ := ctx.Value(txKey{}).(trace.Span)
	if span == nil || e.Kind == monitor.TxBegin && e.Err == nil {
		return
	}
	var outcome string
	switch {
	case e.Kind == monitor.TxCommit && e.Err == nil:
		outcome = "committed"
	case e.Kind == monitor.TxRollback:
		outcome = "rolled_back"
	default:
		outcome = "failed"
	}
	span.SetAttributes(TxOutcomeKey.String(outcome))
	if e.Err != nil {
		setError(span, e.Err, monitor.ErrorType(e.Err))
	}
	span.End()
}

// Pool records connects (db.client.connection.create_time), dead
// connections and server-side cancels. Acquire timeouts are counted from
// the engine's figures (db.client.connection.timeouts).
func (m *Monitor) Pool(ctx context.Context, e monitor.PoolEvent) {
	pool := metric.WithAttributes(semconv.DBClientConnectionPoolNameKey.String(e.DB))
	switch e.Kind {
	case monitor.PoolConnected:
		m.createTime.Record(ctx, e.Duration.Seconds(), pool)
	case monitor.PoolConnectFailed:
		m.createTime.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(
			semconv.DBClientConnectionPoolNameKey.String(e.DB), semconv.ErrorTypeKey.String(monitor.ErrorType(e.Err))))
	case monitor.PoolDeadConn:
		m.dead.Add(ctx, 1, pool)
	case monitor.PoolCancel:
		if e.Err != nil {
			m.cancels.Add(ctx, 1, metric.WithAttributes(
				semconv.DBClientConnectionPoolNameKey.String(e.DB), semconv.ErrorTypeKey.String(monitor.ErrorType(e.Err))))
		} else {
			m.cancels.Add(ctx, 1, pool)
		}
	}
}

// AddStatsSource reads an engine's pool figures at each collection until
// remove is called.
func (m *Monitor) AddStatsSource(name string, stats func() monitor.PoolStats) (remove func()) {
	return m.pools.sources.Add(name, stats)
}

// setKey is what a statement's metric attributes are made of.
type setKey struct {
	eng                 *engine
	op, target, errType string
}

// newSet is the option that records db.client.operation.duration with
// k's attributes.
func newSet(k setKey) []metric.RecordOption {
	attrs := make([]attribute.KeyValue, 0, len(k.eng.attrs)+3)
	attrs = append(attrs, k.eng.attrs...)
	if k.op != "" {
		attrs = append(attrs, semconv.DBOperationNameKey.String(k.op))
	}
	if k.target != "" {
		attrs = append(attrs, semconv.DBCollectionNameKey.String(k.target))
	}
	if k.errType != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(k.errType))
	}
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

// maxCached bounds each cache.
const maxCached = 4096

// maxCachedText bounds the statement texts the texts cache keeps, so that
// it holds at most maxCached*maxCachedText bytes of them (16 MiB): a
// longer text, such as a large multi-row INSERT, is read at each
// statement.
const maxCachedText = 4096

// cache keeps the values made for each key (span shapes, attribute
// sets), so that a statement allocates none. Reads are lock-free; a new
// value copies the map. Past maxCached values, new ones are made and not
// kept.
type cache[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

func (c *cache[K, V]) get(k K, newV func(K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	v := newV(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= maxCached {
		return v
	}
	next := map[K]V{}
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[k] = v
	c.m.Store(&next)
	return v
}

// pools reads the engines' pool figures when the meter collects.
type pools struct {
	sources monitor.StatsSources

	count, max, pending metric.Int64ObservableUpDownCounter
	timeouts, waits     metric.Int64ObservableCounter
	waitTime            metric.Float64ObservableCounter
}

func (p *pools) register(meter metric.Meter) error {
	var errs []error
	var err error
	p.count, err = meter.Int64ObservableUpDownCounter("db.client.connection.count",
		metric.WithDescription("The number of connections that are currently in state described by the state attribute."),
		metric.WithUnit("{connection}"))
	errs = append(errs, err)
	p.max, err = meter.Int64ObservableUpDownCounter("db.client.connection.max",
		metric.WithDescription("The maximum number of open connections allowed (0: unlimited)."),
		metric.WithUnit("{connection}"))
	errs = append(errs, err)
	p.pending, err = meter.Int64ObservableUpDownCounter("db.client.connection.pending_requests",
		metric.WithDescription("The number of current pending requests for an open connection."),
		metric.WithUnit("{request}"))
	errs = append(errs, err)
	p.timeouts, err = meter.Int64ObservableCounter("db.client.connection.timeouts",
		metric.WithDescription("The number of connection timeouts that have occurred trying to obtain a connection from the pool."),
		metric.WithUnit("{timeout}"))
	errs = append(errs, err)
	p.waits, err = meter.Int64ObservableCounter("enginekit.db.client.connection.waits",
		metric.WithDescription("Waits for a free connection."), metric.WithUnit("{wait}"))
	errs = append(errs, err)
	p.waitTime, err = meter.Float64ObservableCounter("enginekit.db.client.connection.wait_time.total",
		metric.WithDescription("Time spent waiting for a free connection, in total."), metric.WithUnit("s"))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err = meter.RegisterCallback(p.observe, p.count, p.max, p.pending, p.timeouts, p.waits, p.waitTime)
	return err
}

var (
	stateIdle = semconv.DBClientConnectionStateIdle
	stateUsed = semconv.DBClientConnectionStateUsed
)

func (p *pools) observe(_ context.Context, o metric.Observer) error {
	for name, s := range p.sources.Sum() {
		pool := semconv.DBClientConnectionPoolNameKey.String(name)
		o.ObserveInt64(p.count, int64(s.Idle), metric.WithAttributes(pool, stateIdle))
		o.ObserveInt64(p.count, int64(s.InUse), metric.WithAttributes(pool, stateUsed))
		attrs := metric.WithAttributes(pool)
		o.ObserveInt64(p.max, int64(s.MaxOpen), attrs)
		o.ObserveInt64(p.pending, s.Waiting, attrs)
		o.ObserveInt64(p.timeouts, s.AcquireTimeouts, attrs)
		o.ObserveInt64(p.waits, s.WaitCount, attrs)
		o.ObserveFloat64(p.waitTime, s.WaitDuration.Seconds(), attrs)
	}
	return nil
}
