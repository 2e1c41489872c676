package dbfx_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

func TestStartupStepsRunInOrderOnTheStartedEngine(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		var ran []string
		var got dbfx.Startup
		first := dbfx.WithStartup(func(ctx context.Context, s dbfx.Startup) error {
			ran = append(ran, "first")
			got = s
			if err := s.Engine.DB().PingContext(ctx); err != nil {
				t.Errorf("the database does not answer the step: %v", err)
			}
			db, err := s.OpenDB()
			if err != nil {
				return err
			}
			defer db.Close()
			return db.PingContext(ctx)
		})
		second := dbfx.WithStartup(func(context.Context, dbfx.Startup) error {
			ran = append(ran, "second")
			return nil
		})
		e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), first, second)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
		if strings.Join(ran, ",") != "first,second" {
			t.Fatalf("steps ran %v", ran)
		}
		if got.Engine != e || got.Log == nil || got.Driver != cfg.Driver || got.Family != cfg.Driver {
			t.Fatalf("step got %+v", got)
		}
		wantFile := ""
		if cfg.Driver == "sqlite3" {
			wantFile = cfg.DSN
		}
		if got.File != wantFile {
			t.Fatalf("File = %q, want %q", got.File, wantFile)
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestStartupInMemory(t *testing.T) {
	var got dbfx.Startup
	step := dbfx.WithStartup(func(_ context.Context, s dbfx.Startup) error { got = s; return nil })
	e, err := dbfx.Open(testContext(t), dbfx.Config{DSN: ":memory:"}, fxtest.WithDrivers(), step)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if got.OpenDB != nil || got.File != "" || got.Family != "sqlite3" {
		t.Fatalf("in memory the step got OpenDB %v, File %q, Family %q: want nil, \"\", sqlite3", got.OpenDB != nil, got.File, got.Family)
	}
}

func TestStartupRedacts(t *testing.T) {
	const secret = "s3cretword"
	cfg := fxtest.SQLite(t)
	cfg.DSN += "?_auth_pass=" + secret // go-sqlite3 without user authentication ignores it
	var redacted string
	step := dbfx.WithStartup(func(_ context.Context, s dbfx.Startup) error {
		redacted = s.Redact("the password is " + secret)
		return nil
	})
	e, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), step)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if redacted == "" || strings.Contains(redacted, secret) {
		t.Fatalf("Redact gave %q", redacted)
	}
}

func TestFailedStartupStepFailsTheStart(t *testing.T) {
	errStep := errors.New("step failed")
	var e *dbfx.Engine
	failing := dbfx.WithStartup(func(_ context.Context, s dbfx.Startup) error { e = s.Engine; return errStep })
	after := dbfx.WithStartup(func(context.Context, dbfx.Startup) error {
		t.Error("a step after the failed one ran")
		return nil
	})
	_, err := dbfx.Open(testContext(t), fxtest.SQLite(t), fxtest.WithDrivers(), failing, after)
	if !errors.Is(err, errStep) {
		t.Fatalf("Open = %v, want the step's error", err)
	}
	if err := e.DB().PingContext(testContext(t)); err == nil {
		t.Fatal("the engine's pool is open after its start failed")
	}
}
