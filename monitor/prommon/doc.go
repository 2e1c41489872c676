// Package prommon keeps Prometheus metrics of enginekit's engines: a
// monitor.Monitor whose series carry each engine's name, with the pools'
// figures read at scrape time (the metrics are listed under Monitor). It
// is the one package of enginekit that links the Prometheus client:
// monitor, session, repo and dbfx do not.
//
// Without Fx, New makes the monitor on a registry, and dbfx.WithMonitor
// gives it to an engine; one serves every engine:
//
//	reg := prometheus.NewRegistry()
//	prom, err := prommon.New(reg)
//	if err != nil { ... }
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(postgres.Driver()), dbfx.WithMonitor(prom))
//
// # Under Fx
//
// Module provides the graph's monitor.Monitor, which dbfx.Module and
// dbfx.Named report to, on the graph's prometheus.Registerer or else its
// *prometheus.Registry:
//
//	fx.New(
//		fx.Supply(cfg, prometheus.NewRegistry()),
//		dbfx.Module, postgres.Module, prommon.Module,
//		...
//	)
//
// Since Module provides the monitor.Monitor, the graph can hold no other
// (Fx refuses a type provided twice). An app that wants several monitors
// combines them itself with monitor.Multi: in place of Module,
//
//	fx.Provide(func(reg *prometheus.Registry, log *zap.Logger) (monitor.Monitor, error) {
//		prom, err := prommon.New(reg)
//		if err != nil {
//			return nil, err
//		}
//		return monitor.Multi(prom, monitor.NewZap(log)), nil
//	})
//
// or beside it, decorating the monitor it provides:
//
//	prommon.Module,
//	fx.Decorate(func(prom monitor.Monitor, log *zap.Logger) monitor.Monitor {
//		return monitor.Multi(prom, monitor.NewZap(log))
//	}),
//
// The first way is also how to give New options such as Buckets.
package prommon
