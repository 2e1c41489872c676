package monitor_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/monitor"
)

// TestLifetimeExpires discards connections past their age when they go
// back to the pool, and counts them.
func TestLifetimeExpires(t *testing.T) {
	log := &fakeLog{}
	w := monitor.WrapConnector(&fakeConnector{log: log, full: true}, monitor.ConnectorOptions{MaxLifetime: time.Nanosecond})
	db := sql.OpenDB(w)
	defer db.Close()
	for range 3 {
		if _, err := db.ExecContext(context.Background(), "exec"); err != nil {
			t.Fatal(err)
		}
	}
	log.mu.Lock()
	calls := strings.Join(log.calls, ",")
	log.mu.Unlock()
	if got := strings.Count(calls, "connect"); got != 3 {
		t.Errorf("%d connections opened, want 3 (each expired after its statement): %s", got, calls)
	}
	if got := w.(*monitor.Connector).Stats().Expired; got != 3 {
		t.Errorf("Expired = %d, want 3", got)
	}
}

// TestWrapOnlyWhenNeeded leaves the connector alone when nothing is asked.
func TestWrapOnlyWhenNeeded(t *testing.T) {
	c := &fakeConnector{log: &fakeLog{}}
	tests := []struct {
		name string
		give monitor.ConnectorOptions
		want bool
	}{
		{"nothing", monitor.ConnectorOptions{DB: "x", SlowQuery: time.Second}, false},
		{"nop", monitor.ConnectorOptions{Monitor: monitor.Nop()}, false},
		{"multi of nops", monitor.ConnectorOptions{Monitor: monitor.Multi(monitor.Nop(), nil)}, false},
		{"monitor", monitor.ConnectorOptions{Monitor: newRecorder()}, true},
		{"leak threshold", monitor.ConnectorOptions{LeakThreshold: time.Second}, true},
		{"lifetime", monitor.ConnectorOptions{MaxLifetime: time.Hour}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, wrapped := monitor.WrapConnector(c, tt.give).(*monitor.Connector)
			if wrapped != tt.want {
				t.Errorf("wrapped = %v, want %v", wrapped, tt.want)
			}
		})
	}
}

// TestMultiForwards hands events, leaks and stats sources to every monitor.
func TestMultiForwards(t *testing.T) {
	a, b := newRecorder(), newRecorder()
	m := monitor.Multi(a, monitor.Nop(), b)
	m.Query(context.Background(), monitor.QueryEvent{DB: "x"})
	m.Tx(context.Background(), monitor.TxEvent{DB: "x"})
	m.(monitor.LeakMonitor).Leak(monitor.LeakEvent{DB: "x"})
	for _, r := range []*recorder{a, b} {
		if len(r.qs) != 1 || len(r.txs) != 1 || len(r.leaks) != 1 {
			t.Errorf("a monitor saw %d queries, %d transactions, %d leaks; want 1 each", len(r.qs), len(r.txs), len(r.leaks))
		}
	}
	var added, removed int
	s1, s2 := &sink{added: &added, removed: &removed}, &sink{added: &added, removed: &removed}
	remove := monitor.Multi(s1, a, s2).(monitor.StatsSink).AddStatsSource("x", func() monitor.PoolStats { return monitor.PoolStats{} })
	remove()
	if added != 2 || removed != 2 {
		t.Errorf("added %d, removed %d stats sources; want 2 and 2", added, removed)
	}
	if monitor.Multi(a) != monitor.Monitor(a) || !monitor.IsNop(monitor.Multi()) {
		t.Error("Multi of one is not that one, or Multi of none is not Nop")
	}
}

type sink struct {
	recorder
	added, removed *int
}

func (s *sink) AddStatsSource(string, func() monitor.PoolStats) func() {
	*s.added++
	return func() { *s.removed++ }
}

// TestWrapperClaimsWhatTheDriverHas: the optional interfaces whose mere
// presence changes database/sql's course are claimed only when the
// driver's connection has them; Unwrap gives the driver's own.
func TestWrapperClaimsWhatTheDriverHas(t *testing.T) {
	claims := func(c any) string {
		_, r := c.(driver.SessionResetter)
		_, e := c.(driver.ExecerContext)
		_, q := c.(driver.QueryerContext)
		return fmt.Sprintf("resetter=%v execer=%v queryer=%v", r, e, q)
	}
	for _, full := range []bool{false, true} {
		c := &fakeConnector{log: &fakeLog{}, full: full}
		bare, err := c.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		w := monitor.WrapConnector(c, monitor.ConnectorOptions{MaxLifetime: time.Hour})
		wrapped, err := w.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := claims(wrapped), claims(bare); got != want {
			t.Errorf("full=%v: wrapped claims %s, the driver has %s", full, got, want)
		}
		if got := monitor.Unwrap(wrapped); fmt.Sprintf("%T", got) != fmt.Sprintf("%T", bare) {
			t.Errorf("Unwrap gave %T, want %T", got, bare)
		}
	}
}
