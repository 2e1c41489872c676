package prommon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/monitor/prommon"
)

// TestModuleRegistries builds Module on each way of supplying a registry
// and finds the monitor's metrics where they belong.
func TestModuleRegistries(t *testing.T) {
	tests := []struct {
		name   string
		supply func(registry, other *prometheus.Registry) fx.Option
		// into is the registry that gets the metrics, "registry" or "other".
		into string
	}{
		{"Registry", func(registry, _ *prometheus.Registry) fx.Option {
			return fx.Supply(registry)
		}, "registry"},
		{"Registerer", func(registry, _ *prometheus.Registry) fx.Option {
			return fx.Supply(fx.Annotate(registry, fx.As(new(prometheus.Registerer))))
		}, "registry"},
		{"one Registry as both", func(registry, _ *prometheus.Registry) fx.Option {
			return fx.Supply(fx.Annotate(registry, fx.As(fx.Self()), fx.As(new(prometheus.Registerer))))
		}, "registry"},
		{"Registerer and Registry: the Registerer", func(registry, other *prometheus.Registry) fx.Option {
			return fx.Options(fx.Supply(registry), fx.Supply(fx.Annotate(other, fx.As(new(prometheus.Registerer)))))
		}, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			regs := map[string]*prometheus.Registry{"registry": prometheus.NewRegistry(), "other": prometheus.NewRegistry()}
			var m monitor.Monitor
			app := fx.New(fx.NopLogger, tt.supply(regs["registry"], regs["other"]), prommon.Module, fx.Populate(&m))
			if err := app.Err(); err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(monitor.StatsSink); !ok {
				t.Errorf("the monitor, a %T, is no monitor.StatsSink", m)
			}
			m.Query(context.Background(), monitor.QueryEvent{DB: "x", Op: monitor.OpExec, SQL: "SELECT 1"})
			for name, reg := range regs {
				got, want := opCount(t, reg, "x", "SELECT", ""), uint64(0)
				if name == tt.into {
					want = 1
				}
				if got != want {
					t.Errorf("%s: exec count = %d, want %d", name, got, want)
				}
			}
		})
	}
}

// TestModuleWithoutRegistry fails the app, naming what to supply.
func TestModuleWithoutRegistry(t *testing.T) {
	app := fx.New(fx.NopLogger, prommon.Module, fx.Invoke(func(monitor.Monitor) {}))
	err := app.Err()
	if err == nil {
		t.Fatal("the app built without a registry")
	}
	for _, want := range []string{"prometheus.Registerer", "*prometheus.Registry"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	if err := app.Start(context.Background()); err == nil {
		t.Error("the app started")
	}
}

// TestModuleAndAnotherMonitor: Module provides the graph's monitor.Monitor,
// so a graph with one of its own is refused.
func TestModuleAndAnotherMonitor(t *testing.T) {
	app := fx.New(fx.NopLogger,
		fx.Supply(prometheus.NewRegistry()),
		fx.Supply(fx.Annotate(&recorder{}, fx.As(new(monitor.Monitor)))),
		prommon.Module,
		fx.Invoke(func(monitor.Monitor) {}),
	)
	if app.Err() == nil {
		t.Fatal("the app built with two monitor.Monitors")
	}
}

// TestModuleDecorated combines Module's monitor with another, as the
// package documentation shows: both see the engine's statements.
func TestModuleDecorated(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	var e *dbfx.Engine
	app := fxtest.New(t,
		fx.Supply(reg),
		prommon.Module,
		fx.Decorate(func(prom monitor.Monitor) monitor.Monitor { return monitor.Multi(prom, rec) }),
		fx.Populate(&e),
	)
	app.RequireStart()
	mustExec(t, e, "SELECT 1")
	if got := opCount(t, reg, e.Name(), "SELECT", ""); got != 1 {
		t.Errorf("exec count = %d, want 1", got)
	}
	if got := rec.queries(); got != 1 {
		t.Errorf("the other monitor saw %d statements, want 1", got)
	}
	if sample(t, reg, "db_client_connection_max", map[string]string{"engine": e.Name()}) == nil {
		t.Error("no pool figures: Multi did not pass the StatsSink on")
	}
	app.RequireStop()
}

// TestModuleProvided combines Module's monitor with another in a
// constructor of the app's own, in place of Module.
func TestModuleProvided(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	var e *dbfx.Engine
	app := fxtest.New(t,
		fx.Supply(reg),
		fx.Provide(func(reg *prometheus.Registry) (monitor.Monitor, error) {
			prom, err := prommon.New(reg, prommon.Buckets(0.5, 1))
			if err != nil {
				return nil, err
			}
			return monitor.Multi(prom, rec), nil
		}),
		fx.Populate(&e),
	)
	app.RequireStart()
	mustExec(t, e, "SELECT 1")
	m := sample(t, reg, "db_client_operation_duration_seconds",
		map[string]string{"engine": e.Name(), "db_operation_name": "SELECT", "error_type": ""})
	if got := m.GetHistogram().GetSampleCount(); got != 1 {
		t.Errorf("exec count = %d, want 1", got)
	}
	if got := len(m.GetHistogram().GetBucket()); got != 2 {
		t.Errorf("%d buckets, want 2", got)
	}
	if got := rec.queries(); got != 1 {
		t.Errorf("the other monitor saw %d statements, want 1", got)
	}
	app.RequireStop()
}
