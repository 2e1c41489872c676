package dbfx

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// OptionsGroup is the Fx value group from which Module takes further
// Options (migrations, say): provide them with
// fx.Provide(fx.Annotate(f, fx.ResultTags(`group:"enginekit.options"`))).
const OptionsGroup = "enginekit.options"

// Module provides the application's primary *Engine and its
// *session.Manager from an untagged Config in the graph (fx.Supply(cfg)),
// with the *zap.Logger of the graph when there is one and the Options of the
// OptionsGroup group. The engine connects in OnStart (fx.Invoke functions
// run before OnStart, so before the database answers) and closes in
// OnStop. It is always constructed, so that an unreachable database fails
// the app's start.
//
// When the graph has a monitor.Monitor, the engine reports to it; when it
// has a prometheus.Registerer, the engine keeps metrics there too (see
// monitor.Prometheus; every engine of the app shares them, told apart by
// the label engine). Give only one of them a Prometheus monitor, or its
// metrics count twice.
var Module = fx.Module("enginekit",
	fx.Provide(fx.Annotate(provideEngine,
		fx.ParamTags(``, ``, `optional:"true"`, `optional:"true"`, `optional:"true"`, `group:"`+OptionsGroup+`"`))),
	fx.Invoke(func(*Engine) {}),
)

func provideEngine(lc fx.Lifecycle, cfg Config, log *zap.Logger, mon monitor.Monitor, reg prometheus.Registerer, opts []Option) (*Engine, *session.Manager, error) {
	return newHooked(lc, cfg, graphDeps{log, mon, reg}, opts)
}

// Named provides a further database: an *Engine and a *session.Manager
// tagged name:"<name>" (the name wins over cfg.Name), with the graph's
// *zap.Logger, monitor.Monitor and prometheus.Registerer when there are
// some, as Module. Take them with fx.Annotate(f, fx.ParamTags(`name:"<name>"`))
// or an fx.In field tagged so.
func Named(name string, cfg Config, opts ...Option) fx.Option {
	cfg.Name = name
	tag := `name:"` + name + `"`
	return fx.Module("enginekit."+name,
		fx.Provide(fx.Annotate(
			func(lc fx.Lifecycle, log *zap.Logger, mon monitor.Monitor, reg prometheus.Registerer) (*Engine, *session.Manager, error) {
				return newHooked(lc, cfg, graphDeps{log, mon, reg}, opts)
			},
			fx.ParamTags(``, `optional:"true"`, `optional:"true"`, `optional:"true"`),
			fx.ResultTags(tag, tag))),
		fx.Invoke(fx.Annotate(func(*Engine) {}, fx.ParamTags(tag))),
	)
}

// graphDeps are the optional values an engine takes from the Fx graph.
type graphDeps struct {
	log *zap.Logger
	mon monitor.Monitor
	reg prometheus.Registerer
}

// newHooked builds an engine and registers its start and stop.
func newHooked(lc fx.Lifecycle, cfg Config, deps graphDeps, opts []Option) (*Engine, *session.Manager, error) {
	var first []Option
	if deps.log != nil {
		first = append(first, WithLogger(deps.log))
	}
	mon := deps.mon
	if deps.reg != nil {
		prom, err := monitor.NewPrometheus(deps.reg)
		if err != nil {
			return nil, nil, err
		}
		mon = monitor.Multi(mon, prom)
	}
	if mon != nil {
		first = append(first, WithMonitor(mon))
	}
	e, err := newEngine(cfg, append(first, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	lc.Append(fx.Hook{OnStart: e.start, OnStop: e.Close})
	return e, e.sessions, nil
}
