package dbfx_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// started records which engines ran a startup step, by step name.
type started struct {
	mu   sync.Mutex
	runs []string
}

func (s *started) step(label string) dbfx.Option {
	return dbfx.WithStartup(func(_ context.Context, st dbfx.Startup) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.runs = append(s.runs, label+"@"+st.Engine.Name())
		return nil
	})
}

func (s *started) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := slices.Clone(s.runs)
	slices.Sort(r)
	return r
}

// TestNamedTakesItsConfigAndOptionsFromTheGraph: Named given the zero
// Config takes the one tagged with its name, as a configuration module
// provides it; OptionsFor reaches that engine alone, Options the primary
// alone, and Named's own options still apply.
func TestNamedTakesItsConfigAndOptionsFromTheGraph(t *testing.T) {
	var s started
	auditCfg := fxtest.SQLite(t)
	auditCfg.Name = "ignored" // the name given to Named wins
	var audit *dbfx.Engine
	app := fxtest.New(t,
		// A configuration module: provides the audit database's Config under its name.
		fx.Provide(fx.Annotate(func() dbfx.Config { return auditCfg }, fx.ResultTags(`name:"audit"`))),
		dbfx.Named("audit", dbfx.Config{}, s.step("given")),
		dbfx.OptionsFor("audit", s.step("for-audit")),
		dbfx.OptionsFor("other", s.step("for-other")),
		dbfx.Options(s.step("primary-group")),
		fx.Invoke(fx.Annotate(func(e *dbfx.Engine) { audit = e }, fx.ParamTags(`name:"audit"`))),
	)
	app.RequireStart()
	defer app.RequireStop()
	if audit.Name() != "audit" {
		t.Fatalf("audit engine named %q", audit.Name())
	}
	if _, err := os.Stat(auditCfg.DSN); err != nil {
		t.Fatalf("the graph's Config was not used: its database file: %v", err)
	}
	if want := []string{"for-audit@audit", "given@audit", "primary-group@primary"}; !slices.Equal(s.got(), want) {
		t.Fatalf("steps ran %v, want %v", s.got(), want)
	}
}

// TestNamedConfigErrors: the zero Config with none in the graph, or a
// Config given to Named with one in the graph too, fails the app with an
// error saying so.
func TestNamedConfigErrors(t *testing.T) {
	tagged := func(cfg dbfx.Config) fx.Option {
		return fx.Provide(fx.Annotate(func() dbfx.Config { return cfg }, fx.ResultTags(`name:"audit"`)))
	}
	tests := []struct {
		name string
		give []fx.Option
		want string
	}{
		{"none", []fx.Option{dbfx.Named("audit", dbfx.Config{})}, `Named("audit") was given the zero Config and the graph has no Config tagged name:"audit"`},
		{"two", []fx.Option{dbfx.Named("audit", fxtest.SQLite(t)), tagged(fxtest.SQLite(t))}, `Named("audit"): two Configs`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(append(tt.give, fx.NopLogger, dbfx.Module, fx.Supply(fxtest.SQLite(t)))...)
			if err := app.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
