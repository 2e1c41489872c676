package faults_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

func TestPostgresDownAtStart(t *testing.T) { downAtStart(t, "pg", "postgres") }

func TestMariaDBDownAtStart(t *testing.T) { downAtStart(t, "mariadb", "mysql") }

// startMargin is how much longer than ConnectTimeout a failing start may
// take: the last ping's own time and the app's start around it.
const startMargin = time.Second

// downAtStart starts an app while its database is down: with a short
// ConnectTimeout the start fails in time with dbfx.ErrConnect; with a
// long one, and the database started a moment after the app, it succeeds.
func downAtStart(t *testing.T, prefix, driverName string) {
	s := begin(t)
	server := serverOf(driverName)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)
	s.mustCtl(t, "stop-one", server)

	// Down for good: the start fails within ConnectTimeout.
	tb := newTable(prefix + " down at start")
	const short = 1500 * time.Millisecond
	var e *dbfx.Engine
	app := fxtest.New(t, fx.NopLogger, fx.Supply(dbfx.Config{Driver: driverName, DSN: dsn, ConnectTimeout: short}),
		fx.Populate(&e))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begun := time.Now()
	err := app.Start(ctx)
	failedIn := time.Since(begun)
	tb.add(err)
	switch {
	case err == nil:
		t.Fatal("the app started with its database down")
	case !errors.Is(err, dbfx.ErrConnect):
		t.Errorf("start: %v, want dbfx.ErrConnect", err)
	}
	if failedIn > short+startMargin {
		t.Errorf("the start failed after %s, want within ConnectTimeout %s (+%s)", failedIn, short, startMargin)
	}
	if failedIn < short {
		t.Errorf("the start gave up after %s, before ConnectTimeout %s", failedIn, short)
	}
	fxtest.RequireNoLeaks(t, e)
	tb.note("failed after %s (ConnectTimeout %s)", failedIn.Round(time.Millisecond), short)

	// Up a moment after the app starts: the start waits for it.
	const long = 20 * time.Second
	const upAfter = 750 * time.Millisecond
	var e2 *dbfx.Engine
	app2 := fxtest.New(t, fx.NopLogger, fx.StartTimeout(long+10*time.Second),
		fx.Supply(dbfx.Config{Driver: driverName, DSN: dsn, ConnectTimeout: long}), fx.Populate(&e2))
	up := make(chan error, 1)
	var upAt time.Time
	go func() {
		// The server starts while the app is already waiting for it.
		t := time.NewTimer(upAfter)
		defer t.Stop()
		<-t.C
		upAt = time.Now()
		up <- s.ctl(context.Background(), "start-one", server)
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), long+10*time.Second)
	defer cancel2()
	begun = time.Now()
	err = app2.Start(ctx2)
	startedIn := time.Since(begun)
	if uerr := <-up; uerr != nil {
		t.Fatal(uerr)
	}
	tb.add(err)
	if err != nil {
		t.Fatalf("the start should wait for the database that came up: %v", err)
	}
	if startedIn < upAfter {
		t.Errorf("started after %s, before the server was started (%s)", startedIn, upAfter)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), opTimeout)
	defer wcancel()
	if err := insert(wctx, e2.Sessions(), 1, ""); err != nil {
		t.Errorf("a transaction after the start: %v", err)
	}
	fxtest.RequireNoLeaks(t, e2)
	app2.RequireStop()
	tb.note("second start: server started %s after the app, the app started after %s (ConnectTimeout %s)",
		upAt.Sub(begun).Round(time.Millisecond), startedIn.Round(time.Millisecond), long)
	tb.log(t)
}
