// Package monitor observes what enginekit sends to the database: every
// statement, transaction, pool event and leaked connection, as events
// handed to a Monitor.
//
// Statements are seen at the driver level, by the connection wrapper that
// every engine (dbfx) opens its pools on, so raw database/sql, sqlx,
// session scopes and repositories are all observed; transactions by the
// session scopes that own them.
//
// Monitors: Nop, Multi, NewZap and NewSlog (log lines, each failure at
// the level of its error's class; FailureLevel), prommon.New (Prometheus
// metrics; in package github.com/enginekit/enginekit/monitor/prommon, so
// that only the programs that use it link the Prometheus client), or any
// type of your own with the two methods of Monitor:
//
//	reg := prometheus.NewRegistry()
//	prom, err := prommon.New(reg)
//	if err != nil { ... }
//	m := monitor.Multi(prom, monitor.NewZap(logger))
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(postgres.Driver()), dbfx.WithMonitor(m))
//
// Under dbfx there is nothing to wire by hand: dbfx.Module takes the Fx
// graph's monitor.Monitor when there is one, and prommon.Module provides
// one on the graph's Prometheus registry.
//
// # Optional interfaces
//
// A Monitor may implement more, found by type assertion, so that a
// monitor written for fewer keeps compiling as interfaces are added;
// Multi forwards each to those of its monitors that implement it:
//
//   - QueryTracer: QueryStart before each statement, BEGIN, COMMIT and
//     ROLLBACK; the ctx it returns is the ctx of the Query call that ends
//     it, so a span opened there is closed there, without a map or a lock.
//   - TxTracer: TxStart before each attempt of a transaction scope; the
//     ctx it returns is the attempt's, so its statements (QueryStart) see
//     what TxStart put there, and so do the Tx events of its end.
//   - PoolMonitor: a connection opened, a connect that failed, a caller
//     that waited for a connection longer than the acquire timeout, a
//     pooled connection found dead and discarded before use, a statement
//     stopped on the server when its ctx ended (PoolKind lists them).
//   - LeakMonitor: a connection held past the leak threshold, with the
//     stack that took it.
//   - StatsSink: a function that returns the engine's pool figures
//     (PoolStats), for a monitor that reads them on demand (a scrape).
//   - EngineMonitor: each engine's name and database System when it
//     opens, and when it closes (the zap monitor reads each engine's SQL
//     as its database does).
//
// Events are delivered synchronously on the goroutine that caused them:
// a monitor must be quick and safe for concurrent use, and must not keep
// a QueryEvent's Args.
//
// # SQL in logs
//
// NormalizeSQL replaces the literals of a statement by ? and removes its
// comments, reading it as its database does: what a log line or a span
// may carry of a statement without the values written into it (a
// password in CREATE USER ... PASSWORD '...'). The zap monitor logs SQL so.
package monitor
