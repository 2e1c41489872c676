// Package otelmon makes OpenTelemetry traces and metrics of enginekit's
// engines: a monitor.Monitor given to dbfx with dbfx.WithMonitor, or
// provided to the Fx graph by Module. It is the one package of enginekit
// that links OpenTelemetry: monitor, session, repo and dbfx do not.
//
//	mon, err := otelmon.New(otelmon.WithTracerProvider(tp), otelmon.WithMeterProvider(mp))
//	if err != nil { ... }
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(postgres.Driver()), dbfx.WithMonitor(mon))
//
// Under Fx, Module provides the graph's monitor.Monitor on the graph's
// trace.TracerProvider and metric.MeterProvider, when it has them:
//
//	fx.New(fx.Supply(cfg), dbfx.Module, postgres.Module, otelmon.Module, ...)
//
// To use it beside another monitor (prommon's, the zap one), provide
// monitor.Multi of them in place of Module.
//
// # Spans
//
// Each attempt of a transaction scope (session's Tx, ReadOnly, Tx[T]
// that begin a transaction) is an internal span named TRANSACTION, or
// TRANSACTION and the scope's label, under the span of the scope's ctx.
// Its statements are client spans under it: BEGIN, each statement run in
// the scope (the SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO SAVEPOINT of
// nested scopes included), then COMMIT or ROLLBACK. A statement outside a
// transaction is a client span under the span of its ctx. A retried
// transaction is one span per attempt (enginekit.transaction.attempt 1,
// 2...), the failed attempt's with the failing statement's error.type,
// and the retry is an event (RetryEvent, with the attempt that failed and
// its error.type) on the span of the scope's ctx.
//
// Statement spans follow OpenTelemetry's stable database conventions:
// named after the operation and table ("SELECT users"), with
// db.system.name (postgresql, mysql for MySQL and MariaDB, sqlite),
// db.namespace (the database, or SQLite's file), db.operation.name
// (monitor.Operation), db.collection.name (the first table the statement
// names, monitor.Collection), server.address and server.port, and on
// failure error.type (monitor.ErrorType: enginekit's class of the error,
// named after session's sentinels, such as duplicate or conflict, else
// the SQLSTATE or the error's Go type), db.response.status_code
// (PostgreSQL's SQLSTATE) and an Error status. The text of an error is
// never recorded: a driver's message may quote a statement's values.
// db.query.text is opt-in (WithQueryText), with the statement's literals
// replaced by ? (monitor.NormalizeSQL).
//
// # Exporting spans in batches
//
// The monitor ends a span for each statement. The SDK's batch span
// processor (sdktrace.WithBatcher) sends each ended span over a channel
// to its goroutine, which wakes that goroutine for each one: on a
// PostgreSQL point read of about 120 µs, on 2 cores, it made the read 14%
// slower and cost 30% more CPU than no monitor. Batcher is a batch span
// processor that wakes its goroutine once per batch (or batch timeout)
// instead; give it to the tracer provider in place of WithBatcher:
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelmon.NewBatcher(exp)))
//
// # Metrics
//
//	db.client.operation.duration          histogram, s: every statement, BEGIN, COMMIT, ROLLBACK and prepare;
//	                                      db.system.name, db.namespace, db.operation.name, db.collection.name,
//	                                      server.address, server.port, error.type on failure
//	db.client.connection.count            {connection}, db.client.connection.state idle or used
//	db.client.connection.max              {connection}, 0 when unlimited
//	db.client.connection.pending_requests {request}: callers waiting for a connection now
//	db.client.connection.timeouts         {timeout}: waits that ended in an acquire timeout
//	db.client.connection.create_time      histogram, s: each connect (error.type when it failed)
//	enginekit.db.client.connection.waits           waits for a free connection
//	enginekit.db.client.connection.wait_time.total s, their total time
//	enginekit.db.client.connection.dead            connections found dead at checkout, discarded
//	enginekit.db.client.operation.cancels          statements stopped on the server when their ctx ended
//	enginekit.db.client.transaction.retries        {retry}: transactions run again after a retryable failure;
//	                                               enginekit.engine, error.type, enginekit.transaction.label
//
// The histograms have the conventions' bucket bounds (DurationBuckets).
// The connection metrics carry db.client.connection.pool.name, the
// engine's name, and are read from the engines when the meter collects.
// The pools do not time each wait, so db.client.connection.wait_time (a
// histogram) is not made: its total and count are, under enginekit's
// names.
//
// # Module and Go version
//
// otelmon is a package of enginekit's root module, not a module of its
// own: programs that do not import it link no OpenTelemetry (Go links
// only the packages a program imports), and one module is simpler to
// depend on and to version. The root module's go directive is not raised
// for it: it requires OpenTelemetry Go v1.41.0, the newest release whose
// modules ask for no newer Go than enginekit's (1.24; v1.42.0 needs 1.25).
package otelmon
