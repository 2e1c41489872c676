package prommon

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/monitor"
)

// Module provides a monitor.Monitor, made by New, for dbfx.Module and
// dbfx.Named. It registers its metrics with the graph's
// prometheus.Registerer or, when there is none, its *prometheus.Registry
// (as fx.Supply(prometheus.NewRegistry()) provides it). With both, the
// Registerer is used: it may be the Registry under a prefix or constant
// labels. With neither, the app fails to start, naming what to supply.
//
// The graph must not have a monitor.Monitor of its own: see the package
// documentation for combining monitors.
var Module = fx.Module("enginekit.prommon",
	fx.Provide(provide),
)

// registries are what Module takes from the graph: one is needed.
type registries struct {
	fx.In
	Registerer prometheus.Registerer `optional:"true"`
	Registry   *prometheus.Registry  `optional:"true"`
}

func provide(r registries) (monitor.Monitor, error) {
	var reg prometheus.Registerer
	switch {
	case r.Registerer != nil:
		reg = r.Registerer
	case r.Registry != nil:
		reg = r.Registry
	default:
		return nil, errors.New("prommon: Module needs a prometheus.Registerer or a *prometheus.Registry " +
			"in the graph: fx.Supply(prometheus.NewRegistry()), say")
	}
	return New(reg)
}
