package otelmon

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/monitor"
)

// Module provides a monitor.Monitor, made by New, for dbfx.Module and
// dbfx.Named, on the graph's trace.TracerProvider and
// metric.MeterProvider when it has them (the global ones otherwise).
//
// The graph must not have a monitor.Monitor of its own: combine monitors
// with monitor.Multi in a provider of your own instead (see the package
// documentation).
var Module = fx.Module("enginekit.otelmon",
	fx.Provide(provide),
)

// providers are what Module takes from the graph.
type providers struct {
	fx.In
	Tracers trace.TracerProvider `optional:"true"`
	Meters  metric.MeterProvider `optional:"true"`
}

func provide(p providers) (monitor.Monitor, error) {
	return New(WithTracerProvider(p.Tracers), WithMeterProvider(p.Meters))
}
