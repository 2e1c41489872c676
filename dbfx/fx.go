package dbfx

import (
	"errors"
	"reflect"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// OptionsGroup is the Fx value group from which Module takes further
// Options (migrate.Module puts its migrations there): provide them with
// Options, or with
// fx.Provide(fx.Annotate(f, fx.ResultTags(`group:"enginekit.options"`))).
const OptionsGroup = "enginekit.options"

// Options hands Options to the primary engine of Module through the Fx
// graph, in the OptionsGroup group: dbfx.Options(dbfx.WithPreparedQueries()).
func Options(opts ...Option) fx.Option {
	provides := make([]any, len(opts))
	for i, o := range opts {
		provides[i] = fx.Annotate(func() Option { return o }, fx.ResultTags(`group:"`+OptionsGroup+`"`))
	}
	return fx.Provide(provides...)
}

// defaultConfigName tags the Config that DefaultConfig supplies.
const defaultConfigName = "enginekit.default"

// Module provides the application's primary *Engine and its
// *session.Manager from an untagged Config in the graph (fx.Supply(cfg)),
// or else the one DefaultConfig supplies, on the drivers whose Modules are
// in the graph (postgres.Module, mysql.Module, sqlite3.Module). It takes
// the graph's *zap.Logger and monitor.Monitor when there are some, and
// the Options of the OptionsGroup group. The engine connects in OnStart
// and closes in OnStop. fx.Invoke functions run before OnStart: there,
// and in constructors, its scopes and statements (repositories' and
// Engine.DB()'s included) fail with session.ErrNotStarted without
// reaching the database, and Health reports it down. It is always
// constructed, so that an unreachable database fails the app's start.
//
// Metrics: put prommon.Module (github.com/enginekit/enginekit/monitor/prommon)
// in the graph, or supply a monitor.Monitor of your own.
var Module = fx.Module("enginekit",
	fx.Provide(provideEngine),
	fx.Invoke(func(*Engine) {}),
)

// graphDeps are what an engine takes from the Fx graph.
type graphDeps struct {
	fx.In
	Lifecycle fx.Lifecycle
	Drivers   []Driver        `group:"enginekit.drivers"`
	Log       *zap.Logger     `optional:"true"`
	Monitor   monitor.Monitor `optional:"true"`
}

type moduleParams struct {
	fx.In
	Deps     graphDeps
	Config   Config   `optional:"true"`
	Fallback Config   `name:"enginekit.default" optional:"true"`
	Options  []Option `group:"enginekit.options"`
}

func provideEngine(p moduleParams) (*Engine, *session.Manager, error) {
	cfg := p.Config
	if reflect.ValueOf(cfg).IsZero() {
		cfg = p.Fallback
	}
	if reflect.ValueOf(cfg).IsZero() {
		return nil, nil, errors.New("dbfx: Module needs a Config in the graph: fx.Supply(dbfx.Config{...})")
	}
	return newHooked(p.Deps, cfg, p.Options)
}

// DefaultConfig supplies cfg as the Config of Module when the graph has
// none of its own: fxtest uses it for its private SQLite database.
func DefaultConfig(cfg Config) fx.Option {
	return fx.Supply(fx.Annotate(cfg, fx.ResultTags(`name:"`+defaultConfigName+`"`)))
}

// Named provides a further database: an *Engine and a *session.Manager
// tagged name:"<name>" (the name wins over cfg.Name), on the graph's
// drivers, *zap.Logger and monitor.Monitor as Module. Take them with
// fx.Annotate(f, fx.ParamTags(`name:"<name>"`)) or an fx.In field tagged
// so.
func Named(name string, cfg Config, opts ...Option) fx.Option {
	cfg.Name = name
	tag := `name:"` + name + `"`
	return fx.Module("enginekit."+name,
		fx.Provide(fx.Annotate(
			func(deps graphDeps) (*Engine, *session.Manager, error) { return newHooked(deps, cfg, opts) },
			fx.ResultTags(tag, tag))),
		fx.Invoke(fx.Annotate(func(*Engine) {}, fx.ParamTags(tag))),
	)
}

// newHooked builds an engine and registers its start and stop.
func newHooked(deps graphDeps, cfg Config, opts []Option) (*Engine, *session.Manager, error) {
	first := make([]Option, 0, len(deps.Drivers)+2)
	for _, d := range deps.Drivers {
		first = append(first, WithDriver(d))
	}
	if deps.Log != nil {
		first = append(first, WithLogger(deps.Log))
	}
	if deps.Monitor != nil {
		first = append(first, WithMonitor(deps.Monitor))
	}
	e, err := newEngine(cfg, append(first, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	deps.Lifecycle.Append(fx.Hook{OnStart: e.start, OnStop: e.Close})
	return e, e.sessions, nil
}
