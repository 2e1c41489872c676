// Package monitor observes what enginekit sends to the database: every
// statement, transaction and leaked connection, as events handed to a
// Monitor.
//
// Statements are seen by wrapping the driver's driver.Connector with
// WrapConnector and opening the pool with sql.OpenDB, so raw database/sql,
// sqlx, session scopes and repositories are all observed. The wrapper
// forwards every optional driver interface with the same behaviour and
// errors; it also gives each connection a jittered lifetime and reports
// connections held past a leak threshold.
//
// Monitors: Nop, Multi, NewZap (log lines), NewPrometheus (metrics), or
// any type of your own with the two methods of Monitor:
//
//	reg := prometheus.NewRegistry()
//	prom, err := monitor.NewPrometheus(reg)
//	if err != nil { ... }
//	m := monitor.Multi(prom, monitor.NewZap(logger))
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithMonitor(m))
//
// Under dbfx there is nothing to wire by hand: dbfx.Module takes a
// monitor.Monitor and a prometheus.Registerer from the Fx graph when they
// are there.
package monitor
