package prommon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enginekit/enginekit/monitor"
)

// DefaultBuckets returns the bounds, in seconds, of the statement duration
// histogram: OpenTelemetry's for db.client.operation.duration. Each call
// returns a new slice, so it may be extended:
// Buckets(append(DefaultBuckets(), 30, 60)...).
func DefaultBuckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}
}

// Monitor is a monitor.Monitor that keeps Prometheus metrics. One serves
// every engine of an application: series carry the engine's name in the
// label "engine". It implements monitor.StatsSink: pool figures are read
// from the engines at scrape time; monitor.PoolMonitor: connects, dead
// connections and server-side cancels are counted as they happen; and
// monitor.EngineMonitor: each engine's database labels its statements.
//
// Metrics:
//
//	db_client_operation_duration_seconds{engine,db_system_name,db_namespace,db_operation_name,error_type}  histogram
//	db_client_operation_cancels_total{engine,outcome}               counter; server-side cancels, outcome ok or error
//	db_client_transactions_total{engine,label,outcome}              counter; committed, rolled_back, failed
//	db_client_transaction_retries_total{engine,label}               counter
//	db_client_connection_create_time_seconds{engine,outcome}        histogram; connects, outcome ok or error
//	db_client_connection_count{engine,state}                        gauge; state idle or used
//	db_client_connection_max{engine}                                gauge
//	db_client_connection_pending_requests{engine}                   gauge; callers waiting now
//	db_client_connection_waits_total{engine}                        counter
//	db_client_connection_wait_time_seconds_total{engine}            counter
//	db_client_connection_timeouts_total{engine}                     counter; acquire timeouts
//	db_client_connection_closed_total{engine,reason}                counter; max_idle, max_idle_time, max_lifetime
//	db_client_connection_dead_total{engine}                         counter; found dead at checkout, discarded
//	db_client_connection_leaks_total{engine}                        counter
//
// The statement duration's labels are OpenTelemetry's attributes of
// db.client.operation.duration, spelt for Prometheus: db_system_name
// (postgresql, mysql, sqlite), db_namespace (the database, or SQLite's
// file), db_operation_name (SELECT, INSERT, BEGIN, COMMIT, PREPARE...:
// monitor.Operation, "" for a statement of no keyword it knows) and
// error_type ("" when the statement succeeded, else monitor.ErrorType:
// duplicate, conflict... or the SQLSTATE or the error's Go type). engine
// is the pool's name, as db.client.connection.pool.name.
//
// The pool events (monitor.PoolKind) are not one counter with the kind
// as a label: a metric's series should add up to something meaningful,
// and connects, acquire timeouts, dead connections and cancels do not.
// Each goes where its meaning is, under OpenTelemetry's name where it has
// one: a connect (connected or connect_failed) is observed in
// db.client.connection.create_time's histogram, whose count is the
// connects; an acquire_timeout is not counted again, for
// db_client_connection_timeouts_total (db.client.connection.timeouts) is
// the engine's own count of the same timeouts (PoolStats.AcquireTimeouts,
// counted where the event is reported); a dead_conn adds to
// db_client_connection_dead_total; a cancel to
// db_client_operation_cancels_total, outcome error when the cancel itself
// failed. The series of an engine's connects, dead connections and
// cancels exist, at zero, from when it opens.
//
// SQL text is never a label.
type Monitor struct {
	ops      vecCache[prometheus.Observer]
	cancels  vecCache[prometheus.Counter]
	txs      vecCache[prometheus.Counter]
	retries  vecCache[prometheus.Counter]
	connects vecCache[prometheus.Observer]
	dead     vecCache[prometheus.Counter]
	pools    *poolCollector
	engines  atomic.Pointer[map[string]monitor.EngineInfo]
	mu       sync.Mutex // serialises changes of engines
}

var (
	_ monitor.Monitor       = (*Monitor)(nil)
	_ monitor.StatsSink     = (*Monitor)(nil)
	_ monitor.PoolMonitor   = (*Monitor)(nil)
	_ monitor.EngineMonitor = (*Monitor)(nil)
)

// Option configures New.
type Option func(*config)

type config struct {
	buckets []float64
}

// Buckets sets the bounds, in seconds, of the statement duration
// histogram (DefaultBuckets otherwise). The connect histogram keeps
// DefaultBuckets.
func Buckets(b ...float64) Option {
	b = slices.Clone(b)
	return func(c *config) { c.buckets = b }
}

// New returns a monitor whose metrics are registered with reg. Calling it
// again with the same reg (a second engine, a second app in one process)
// is no error: the new monitor shares the metrics registered first, and
// their buckets.
func New(reg prometheus.Registerer, opts ...Option) (*Monitor, error) {
	if reg == nil {
		return nil, errors.New("prommon: New needs a prometheus.Registerer")
	}
	c := config{buckets: DefaultBuckets()}
	for _, o := range opts {
		o(&c)
	}
	ops, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "db_client_operation_duration_seconds",
		Help:    "Duration of database client operations (statements, begin, commit, rollback, prepare).",
		Buckets: c.buckets,
	}, []string{"engine", "db_system_name", "db_namespace", "db_operation_name", "error_type"}))
	if err != nil {
		return nil, err
	}
	txs, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "db_client_transactions_total",
		Help: "Transactions ended, by outcome: committed, rolled_back, or failed (begin or commit failed).",
	}, []string{"engine", "label", "outcome"}))
	if err != nil {
		return nil, err
	}
	retries, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "db_client_transaction_retries_total",
		Help: "Transaction attempts that failed and were run again.",
	}, []string{"engine", "label"}))
	if err != nil {
		return nil, err
	}
	cancels, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "db_client_operation_cancels_total",
		Help: "Statements whose context ended, cancelled on the server, by outcome: ok, or error (the cancel failed).",
	}, []string{"engine", "outcome"}))
	if err != nil {
		return nil, err
	}
	connects, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "db_client_connection_create_time_seconds",
		Help:    "Time it took to open a connection, by outcome: ok, or error (the connect failed).",
		Buckets: DefaultBuckets(),
	}, []string{"engine", "outcome"}))
	if err != nil {
		return nil, err
	}
	dead, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "db_client_connection_dead_total",
		Help: "Pooled connections found dead when taken from the pool, discarded before use.",
	}, []string{"engine"}))
	if err != nil {
		return nil, err
	}
	pools, err := register(reg, newPoolCollector())
	if err != nil {
		return nil, err
	}
	m := &Monitor{pools: pools}
	m.ops.get = func(lv [5]string) (prometheus.Observer, error) { return ops.GetMetricWithLabelValues(lv[:]...) }
	m.cancels.get = func(lv [5]string) (prometheus.Counter, error) { return cancels.GetMetricWithLabelValues(lv[:2]...) }
	m.txs.get = func(lv [5]string) (prometheus.Counter, error) { return txs.GetMetricWithLabelValues(lv[:3]...) }
	m.retries.get = func(lv [5]string) (prometheus.Counter, error) { return retries.GetMetricWithLabelValues(lv[:2]...) }
	m.connects.get = func(lv [5]string) (prometheus.Observer, error) { return connects.GetMetricWithLabelValues(lv[:2]...) }
	m.dead.get = func(lv [5]string) (prometheus.Counter, error) { return dead.GetMetricWithLabelValues(lv[:1]...) }
	return m, nil
}

// register registers c, or returns the collector of the same metrics that
// reg already has.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, fmt.Errorf("prommon: register metrics: %w", err)
}

// Query observes the statement's duration.
func (m *Monitor) Query(_ context.Context, e monitor.QueryEvent) {
	var info monitor.EngineInfo
	if es := m.engines.Load(); es != nil {
		info = (*es)[e.DB]
	}
	lv := [5]string{e.DB, string(info.System), info.Namespace, monitor.Operation(e.Op, e.SQL), monitor.ErrorType(e.Err)}
	if o := m.ops.with(lv); o != nil {
		o.Observe(e.Duration.Seconds())
	}
}

// AddEngine notes an engine's database system and namespace, which label
// its statements.
func (m *Monitor) AddEngine(info monitor.EngineInfo) (remove func()) {
	m.setEngine(info.DB, &info)
	var once sync.Once
	return func() { once.Do(func() { m.setEngine(info.DB, nil) }) }
}

// setEngine sets (or, with nil, removes) the engine named name.
func (m *Monitor) setEngine(name string, info *monitor.EngineInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[string]monitor.EngineInfo{}
	if old := m.engines.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	if info != nil {
		next[name] = *info
	} else {
		delete(next, name)
	}
	m.engines.Store(&next)
}

// Tx counts transactions by outcome, and retries.
func (m *Monitor) Tx(_ context.Context, e monitor.TxEvent) {
	var outcome string
	switch {
	case e.Kind == monitor.TxRetry:
		if c := m.retries.with([5]string{e.DB, e.Label}); c != nil {
			c.Inc()
		}
		return
	case e.Kind == monitor.TxBegin && e.Err == nil:
		return // counted when it ends
	case e.Kind == monitor.TxRollback:
		outcome = "rolled_back"
	case e.Kind == monitor.TxCommit && e.Err == nil:
		outcome = "committed"
	default:
		outcome = "failed"
	}
	if c := m.txs.with([5]string{e.DB, e.Label, outcome}); c != nil {
		c.Inc()
	}
}

// Pool counts connects (with how long they took), dead connections and
// server-side cancels. Acquire timeouts are left to the engine's figures:
// db_client_connection_timeouts_total counts them.
func (m *Monitor) Pool(_ context.Context, e monitor.PoolEvent) {
	switch e.Kind {
	case monitor.PoolConnected, monitor.PoolConnectFailed:
		if o := m.connects.with([5]string{e.DB, outcome(e.Kind == monitor.PoolConnected)}); o != nil {
			o.Observe(e.Duration.Seconds())
		}
	case monitor.PoolDeadConn:
		if c := m.dead.with([5]string{e.DB}); c != nil {
			c.Inc()
		}
	case monitor.PoolCancel:
		if c := m.cancels.with([5]string{e.DB, outcome(e.Err == nil)}); c != nil {
			c.Inc()
		}
	}
}

// outcome is the label value of an outcome.
func outcome(ok bool) string {
	if ok {
		return "ok"
	}
	return "error"
}

// AddStatsSource adds an engine's pool figures to the scrapes until remove
// is called. Sources of the same name are added up. The engine's series
// of pool events are made then, at zero, so that they exist before the
// first event.
func (m *Monitor) AddStatsSource(name string, stats func() monitor.PoolStats) (remove func()) {
	for _, ok := range []bool{true, false} {
		m.connects.with([5]string{name, outcome(ok)})
		m.cancels.with([5]string{name, outcome(ok)})
	}
	m.dead.with([5]string{name})
	return m.pools.sources.Add(name, stats)
}

// vecCache finds the series of a metric vector by label values without
// allocating: WithLabelValues allocates its variadic slice on every call.
// Reads are lock-free; a new series copies the map.
type vecCache[M any] struct {
	m   atomic.Pointer[map[[5]string]M]
	mu  sync.Mutex
	get func([5]string) (M, error)
}

// with returns the series, or the zero M when the label values are
// refused (they are made valid UTF-8 first, so this should not happen).
func (c *vecCache[M]) with(lv [5]string) M {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[lv]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[lv]; ok {
			return v
		}
	}
	valid := lv
	for i := range valid {
		valid[i] = strings.ToValidUTF8(valid[i], "\uFFFD")
	}
	v, err := c.get(valid)
	if err != nil {
		var zero M
		return zero
	}
	next := make(map[[5]string]M, 1)
	if old != nil {
		for k, x := range *old {
			next[k] = x
		}
	}
	next[lv] = v
	c.m.Store(&next)
	return v
}

// poolCollector reads the stats sources at scrape time.
type poolCollector struct {
	sources monitor.StatsSources

	count, max, pending, waits, waitTime, timeouts, closed, leaks *prometheus.Desc
}

func newPoolCollector() *poolCollector {
	engine := []string{"engine"}
	return &poolCollector{
		count: prometheus.NewDesc("db_client_connection_count",
			"Connections open, by state: idle or used.", []string{"engine", "state"}, nil),
		max: prometheus.NewDesc("db_client_connection_max",
			"Connections the pools may open (0: unlimited).", engine, nil),
		pending: prometheus.NewDesc("db_client_connection_pending_requests",
			"Callers waiting for a connection now.", engine, nil),
		waits: prometheus.NewDesc("db_client_connection_waits_total",
			"Waits for a free connection.", engine, nil),
		waitTime: prometheus.NewDesc("db_client_connection_wait_time_seconds_total",
			"Time spent waiting for a free connection.", engine, nil),
		timeouts: prometheus.NewDesc("db_client_connection_timeouts_total",
			"Waits for a connection that ended in an acquire timeout.", engine, nil),
		closed: prometheus.NewDesc("db_client_connection_closed_total",
			"Connections closed by the pool, by reason: max_idle, max_idle_time, max_lifetime.",
			[]string{"engine", "reason"}, nil),
		leaks: prometheus.NewDesc("db_client_connection_leaks_total",
			"Connections held longer than the leak threshold.", engine, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.count, c.max, c.pending, c.waits, c.waitTime, c.timeouts, c.closed, c.leaks} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for name, s := range c.sources.Sum() {
		name = strings.ToValidUTF8(name, "\uFFFD")
		ch <- prometheus.MustNewConstMetric(c.count, gauge, float64(s.Idle), name, "idle")
		ch <- prometheus.MustNewConstMetric(c.count, gauge, float64(s.InUse), name, "used")
		ch <- prometheus.MustNewConstMetric(c.max, gauge, float64(s.MaxOpen), name)
		ch <- prometheus.MustNewConstMetric(c.pending, gauge, float64(s.Waiting), name)
		ch <- prometheus.MustNewConstMetric(c.waits, counter, float64(s.WaitCount), name)
		ch <- prometheus.MustNewConstMetric(c.waitTime, counter, s.WaitDuration.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(c.timeouts, counter, float64(s.AcquireTimeouts), name)
		ch <- prometheus.MustNewConstMetric(c.closed, counter, float64(s.MaxIdleClosed), name, "max_idle")
		ch <- prometheus.MustNewConstMetric(c.closed, counter, float64(s.MaxIdleTimeClosed), name, "max_idle_time")
		ch <- prometheus.MustNewConstMetric(c.closed, counter, float64(s.MaxLifetimeClosed), name, "max_lifetime")
		ch <- prometheus.MustNewConstMetric(c.leaks, counter, float64(s.Leaks), name)
	}
}
