package dbfx

import (
	"go.uber.org/fx"
	"go.uber.org/zap"

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
var Module = fx.Module("enginekit",
	fx.Provide(fx.Annotate(provideEngine,
		fx.ParamTags(``, ``, `optional:"true"`, `group:"`+OptionsGroup+`"`))),
	fx.Invoke(func(*Engine) {}),
)

func provideEngine(lc fx.Lifecycle, cfg Config, log *zap.Logger, opts []Option) (*Engine, *session.Manager, error) {
	return newHooked(lc, cfg, log, opts)
}

// Named provides a further database: an *Engine and a *session.Manager
// tagged name:"<name>" (the name wins over cfg.Name), with the graph's
// *zap.Logger when there is one. Take them with
// fx.Annotate(f, fx.ParamTags(`name:"<name>"`)) or an fx.In field tagged so.
func Named(name string, cfg Config, opts ...Option) fx.Option {
	cfg.Name = name
	tag := `name:"` + name + `"`
	return fx.Module("enginekit."+name,
		fx.Provide(fx.Annotate(
			func(lc fx.Lifecycle, log *zap.Logger) (*Engine, *session.Manager, error) {
				return newHooked(lc, cfg, log, opts)
			},
			fx.ParamTags(``, `optional:"true"`),
			fx.ResultTags(tag, tag))),
		fx.Invoke(fx.Annotate(func(*Engine) {}, fx.ParamTags(tag))),
	)
}

// newHooked builds an engine and registers its start and stop.
func newHooked(lc fx.Lifecycle, cfg Config, log *zap.Logger, opts []Option) (*Engine, *session.Manager, error) {
	if log != nil {
		opts = append([]Option{WithLogger(log)}, opts...)
	}
	e, err := newEngine(cfg, opts...)
	if err != nil {
		return nil, nil, err
	}
	lc.Append(fx.Hook{OnStart: e.start, OnStop: e.Close})
	return e, e.sessions, nil
}
