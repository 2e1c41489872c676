package dbfx_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// readiness is what HealthHandler answers for engines.
type readiness struct {
	code    int
	Status  dbfx.Status `json:"status"`
	Engines map[string]struct {
		Status dbfx.Status `json:"status"`
		Reason string      `json:"reason"`
	} `json:"engines"`
}

func ready(t *testing.T, engines ...*dbfx.Engine) readiness {
	t.Helper()
	rec := serve(dbfx.HealthHandler(engines...), http.MethodGet)
	r := readiness{code: rec.Code}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return r
}

// TestReadinessStarting: readiness answers 503 "starting" before the
// engine's start, and while its start runs its startup steps (the step
// below asks it), then 200 "ok"; with one engine started and one not, the
// app is "starting"; a down engine outranks a starting one.
func TestReadinessStarting(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var primary, audit *dbfx.Engine
		var during readiness
		duringStep := dbfx.WithStartup(func(context.Context, dbfx.Startup) error {
			during = ready(t, primary)
			return nil
		})
		app := fxtest.New(t, fx.Supply(cfg), dbfx.Options(duringStep),
			dbfx.Named("audit", fxtest.SQLite(t)),
			fx.Populate(&primary),
			fx.Invoke(fx.Annotate(func(e *dbfx.Engine) { audit = e }, fx.ParamTags(`name:"audit"`))))

		before := ready(t, primary)
		if before.code != http.StatusServiceUnavailable || before.Status != dbfx.StatusStarting ||
			before.Engines["primary"].Reason != "engine not started" {
			t.Errorf("before the start: %+v", before)
		}
		app.RequireStart()
		if during.code != http.StatusServiceUnavailable || during.Status != dbfx.StatusStarting ||
			during.Engines["primary"].Reason != "engine starting" {
			t.Errorf("during the start: %+v", during)
		}
		if after := ready(t, primary, audit); after.code != http.StatusOK || after.Status != dbfx.StatusOK {
			t.Errorf("after the start: %+v", after)
		}

		// One engine started, another not yet: the app is not ready.
		var pending *dbfx.Engine
		fxtest.New(t, fx.Populate(&pending)) // never started: Fx never stops it
		defer pending.Close(context.Background())
		if mixed := ready(t, primary, pending); mixed.code != http.StatusServiceUnavailable || mixed.Status != dbfx.StatusStarting {
			t.Errorf("one engine started, one not: %+v", mixed)
		}
		app.RequireStop()
		if r := ready(t, primary, pending); r.code != http.StatusServiceUnavailable || r.Status != dbfx.StatusDown {
			t.Errorf("one engine closed, one not started: %+v, want down", r)
		}
	})
}
