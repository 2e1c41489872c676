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
// Monitors: Nop, Multi, NewZap (log lines), prommon.New (Prometheus
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
// # The connector wrapper
//
// database/sql changes course on the mere presence of some optional
// interfaces: it keeps the connection of a transaction rolled back by its
// ctx only when the driver's connection is a driver.SessionResetter
// (sqlite3's is not), and it prepares every statement when the connection
// has neither ExecerContext nor QueryerContext. The wrapper claims those
// only when the wrapped connection has them, and ColumnConverter only on
// statements that have it; the others (ConnPrepareContext, ConnBeginTx,
// Pinger, Validator, NamedValueChecker, StmtExecContext...) it always
// claims, answering for a driver without one as database/sql would have.
// Rows and results are the driver's own, so all their optional interfaces
// remain. sql.Conn.Raw hands out the wrapper: Unwrap gives the driver's
// connection.
//
// A connection's checkout starts when database/sql calls ResetSession on
// it, or else at its first use; its checkin is IsValid. The leak clock
// and the jittered lifetime are checked there: a connection past its age
// is refused by ResetSession and not given back by IsValid, so database/sql
// closes it.
//
// WrapConnector wraps only when asked for something: a monitor other than
// Nop, a leak threshold or a lifetime. Without a monitor the wrapper does
// not read the clock per statement and allocates nothing; dbfx therefore
// wraps every pool that has a ConnMaxLifetime, for its jitter.
package monitor
