package otelmon_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/monitor/otelmon"
)

// TestModuleProviders: Module's monitor makes its spans and metrics on
// the graph's providers.
func TestModuleProviders(t *testing.T) {
	s := newSDK(t)
	var m monitor.Monitor
	app := fx.New(fx.NopLogger,
		fx.Supply(fx.Annotate(s.tracers, fx.As(new(trace.TracerProvider))),
			fx.Annotate(s.meters, fx.As(new(metric.MeterProvider)))),
		otelmon.Module, fx.Populate(&m))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	tracer, ok := m.(monitor.QueryTracer)
	if !ok {
		t.Fatalf("the monitor, a %T, is no monitor.QueryTracer", m)
	}
	ctx := tracer.QueryStart(context.Background(), monitor.QueryStart{DB: "x", Op: monitor.OpQuery, SQL: "SELECT 1"})
	m.Query(ctx, monitor.QueryEvent{DB: "x", Op: monitor.OpQuery, SQL: "SELECT 1", Rows: -1})
	if spans := s.spans.GetSpans(); len(spans) != 1 || spans[0].Name != "SELECT" {
		t.Errorf("spans %v, want one SELECT", spans.Snapshots())
	}
	s.metric(t, "db.client.operation.duration")
}

// TestModuleWithoutProviders: with none in the graph, Module uses the
// global providers.
func TestModuleWithoutProviders(t *testing.T) {
	var m monitor.Monitor
	app := fx.New(fx.NopLogger, otelmon.Module, fx.Populate(&m))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(monitor.TxTracer); !ok {
		t.Errorf("the monitor, a %T, is no monitor.TxTracer", m)
	}
}
