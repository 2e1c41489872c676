package dbfx

import (
	"errors"
	"fmt"
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
// They do not reach the engines of Named: give those OptionsFor.
func Options(opts ...Option) fx.Option { return provideOptions(OptionsGroup, opts) }

// OptionsFor hands Options to the engine Named(name, ...) through the Fx
// graph, in the group OptionsGroupFor(name), as Options does for the
// primary engine: a module that owns the audit database's migrations, say,
// puts dbfx.OptionsFor("audit", migrate.OnStart(auditMigrations)) in the
// graph. The engine takes them after the Options given to Named.
func OptionsFor(name string, opts ...Option) fx.Option {
	return provideOptions(OptionsGroupFor(name), opts)
}

// OptionsGroupFor is the Fx value group from which the engine Named(name,
// ...) takes further Options: "enginekit.options.<name>".
func OptionsGroupFor(name string) string { return OptionsGroup + "." + name }

func provideOptions(group string, opts []Option) fx.Option {
	provides := make([]any, len(opts))
	for i, o := range opts {
		provides[i] = fx.Annotate(func() Option { return o }, fx.ResultTags(`group:"`+group+`"`))
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
// tagged name:"<name>" (the name wins over the Config's Name), on the
// graph's drivers, *zap.Logger and monitor.Monitor as Module, with opts
// and then the Options that OptionsFor(name, ...) put in the graph. Take
// them with fx.Annotate(f, fx.ParamTags(`name:"<name>"`)) or an fx.In
// field tagged so.
//
// Its Config is cfg, or, when cfg is the zero Config, the Config the graph
// holds under the tag name:"<name>", as a configuration module provides
// it:
//
//	fx.Provide(fx.Annotate(loadAuditConfig, fx.ResultTags(`name:"audit"`)))
//	dbfx.Named("audit", dbfx.Config{})
//
// A zero cfg with no such Config in the graph, or a non-zero cfg with
// one, fails the app's construction with an error saying so.
func Named(name string, cfg Config, opts ...Option) fx.Option {
	tag := `name:"` + name + `"`
	given := !reflect.ValueOf(cfg).IsZero()
	// graphDeps is an fx.In struct, which fx.Annotate cannot tag beside
	// the tagged parameters: its fields are taken one by one.
	build := func(lc fx.Lifecycle, ds []Driver, log *zap.Logger, mon monitor.Monitor,
		fromGraph Config, more []Option) (*Engine, *session.Manager, error) {
		deps := graphDeps{Lifecycle: lc, Drivers: ds, Log: log, Monitor: mon}
		c := cfg
		inGraph := !reflect.ValueOf(fromGraph).IsZero()
		switch {
		case given && inGraph:
			return nil, nil, fmt.Errorf("dbfx: Named(%q): two Configs: one given to Named and one in the graph tagged %s; "+
				"pass dbfx.Config{} to Named to use the graph's", name, tag)
		case !given && !inGraph:
			return nil, nil, fmt.Errorf("dbfx: Named(%q) was given the zero Config and the graph has no Config tagged %s: "+
				"provide one with fx.Annotate(f, fx.ResultTags(`%s`)) or pass it to Named", name, tag, tag)
		case inGraph:
			c = fromGraph
		}
		c.Name = name
		return newHooked(deps, c, append(opts[:len(opts):len(opts)], more...))
	}
	return fx.Module("enginekit."+name,
		fx.Provide(fx.Annotate(build,
			fx.ParamTags(``, `group:"`+DriversGroup+`"`, `optional:"true"`, `optional:"true"`,
				tag+` optional:"true"`, `group:"`+OptionsGroupFor(name)+`"`),
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
