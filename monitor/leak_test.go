package monitor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// TestLeakReported holds a connection past the leak threshold and sees it
// reported with the stack that took it, and counted. (prommon's tests
// see the count in db_client_connection_leaks_total.)
func TestLeakReported(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		rec := newRecorder()
		cfg.LeakThreshold = time.Millisecond
		e := openEngine(t, cfg, dbfx.WithMonitor(rec))
		ctx := testContext(t)
		conn := takeAndHold(t, e)
		defer conn()
		// Other checkouts may outlast a millisecond too (the start's
		// ping under the race detector): look for the one taken here.
		for {
			select {
			case ev := <-rec.leaks:
				if !strings.Contains(ev.Stack, "takeAndHold") {
					continue
				}
				if ev.DB != e.Name() || ev.Held < cfg.LeakThreshold {
					t.Errorf("leak event %+v: want engine %q, held at least %s", ev, e.Name(), cfg.LeakThreshold)
				}
				if strings.Contains(ev.Stack, "database/sql.") {
					t.Errorf("the stack shows database/sql's frames:\n%s", ev.Stack)
				}
			case <-ctx.Done():
				t.Fatal("no leak reported")
			}
			break
		}
		if got := e.Stats().Leaks; got < 1 {
			t.Errorf("Stats().Leaks = %d, want at least 1", got)
		}
	})
}

// takeAndHold takes a connection of e's pool and uses it; the caller
// gives it back by calling the result.
func takeAndHold(t *testing.T, e *dbfx.Engine) (release func()) {
	t.Helper()
	conn, err := e.DB().Conn(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(testContext(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	return func() { conn.Close() }
}
