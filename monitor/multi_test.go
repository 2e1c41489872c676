package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/enginekit/enginekit/monitor"
)

// TestMultiForwards hands events, leaks, pool events and stats sources to
// every monitor that takes them, and chains the ctx of the start hooks
// through the tracers in order.
func TestMultiForwards(t *testing.T) {
	ctx := context.Background()
	a, b := newRecorder(), newRecorder()
	m := monitor.Multi(a, monitor.Nop(), b)
	m.Query(ctx, monitor.QueryEvent{DB: "x"})
	m.Tx(ctx, monitor.TxEvent{DB: "x"})
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
	if monitor.Multi(a) != monitor.Monitor(a) || !monitor.IsNop(monitor.Multi()) || !monitor.IsNop(monitor.Multi(nil, monitor.Nop())) {
		t.Error("Multi of one is not that one, or Multi of none (or of nil and Nop) is not Nop")
	}
}

// TestMultiForwardsTracers: QueryStart and TxStart go to the tracers
// among the monitors, in order, each given the ctx the one before
// returned, and the ctx of the last is the result; the other monitors
// are skipped. Pool events go to every PoolMonitor.
func TestMultiForwardsTracers(t *testing.T) {
	var log []string
	t1, t2 := &tracer{recorder: newRecorder(), name: "t1", log: &log}, &tracer{recorder: newRecorder(), name: "t2", log: &log}
	plain := newRecorder()
	m := monitor.Multi(t1, plain, monitor.Nop(), monitor.Multi(t2)) // a Multi inside is flattened
	ctx := context.WithValue(context.Background(), chainKey{}, "caller")

	qt, ok := m.(monitor.QueryTracer)
	if !ok {
		t.Fatalf("Multi of tracers is %T, not a QueryTracer", m)
	}
	got := qt.QueryStart(ctx, monitor.QueryStart{DB: "x", Op: monitor.OpQuery, SQL: "SELECT 1"})
	if s := fmt.Sprint(got.Value(chainKey{})); s != "caller>t1:query>t2:query" {
		t.Errorf("QueryStart's ctx carries %q, want caller>t1:query>t2:query", s)
	}
	tt, ok := m.(monitor.TxTracer)
	if !ok {
		t.Fatalf("Multi of tracers is %T, not a TxTracer", m)
	}
	got = tt.TxStart(ctx, monitor.TxStart{DB: "x", Label: "l", Attempt: 2})
	if s := fmt.Sprint(got.Value(chainKey{})); s != "caller>t1:tx l 2>t2:tx l 2" {
		t.Errorf("TxStart's ctx carries %q, want caller>t1:tx l 2>t2:tx l 2", s)
	}

	pm, ok := m.(monitor.PoolMonitor)
	if !ok {
		t.Fatalf("Multi is %T, not a PoolMonitor", m)
	}
	errDown := errors.New("down")
	pm.Pool(ctx, monitor.PoolEvent{DB: "x", Kind: monitor.PoolConnectFailed, Err: errDown})
	pm.Pool(ctx, monitor.PoolEvent{DB: "x", Kind: monitor.PoolConnected})
	if s := fmt.Sprint(log); s != "[t1:pool connect_failed down t2:pool connect_failed down t1:pool connected <nil> t2:pool connected <nil>]" {
		t.Errorf("pool events seen: %s", s)
	}

	// A Multi whose monitors trace nothing still answers the hooks, with
	// the ctx it was given.
	none := monitor.Multi(newRecorder(), newRecorder())
	if got := none.(monitor.QueryTracer).QueryStart(ctx, monitor.QueryStart{}); got != ctx {
		t.Error("QueryStart of a Multi without tracers changed the ctx")
	}
	if got := none.(monitor.TxTracer).TxStart(ctx, monitor.TxStart{}); got != ctx {
		t.Error("TxStart of a Multi without tracers changed the ctx")
	}
	none.(monitor.PoolMonitor).Pool(ctx, monitor.PoolEvent{})
}

type chainKey struct{}

// tracer is a recorder that traces statements and transactions and takes
// pool events: each start hook appends its name to the chain in the ctx.
type tracer struct {
	*recorder
	name string
	log  *[]string
}

var (
	_ monitor.QueryTracer = (*tracer)(nil)
	_ monitor.TxTracer    = (*tracer)(nil)
	_ monitor.PoolMonitor = (*tracer)(nil)
)

func (t *tracer) chain(ctx context.Context, what string) context.Context {
	return context.WithValue(ctx, chainKey{}, fmt.Sprintf("%v>%s:%s", ctx.Value(chainKey{}), t.name, what))
}

func (t *tracer) QueryStart(ctx context.Context, e monitor.QueryStart) context.Context {
	return t.chain(ctx, string(e.Op))
}

func (t *tracer) TxStart(ctx context.Context, e monitor.TxStart) context.Context {
	return t.chain(ctx, fmt.Sprintf("tx %s %d", e.Label, e.Attempt))
}

func (t *tracer) Pool(_ context.Context, e monitor.PoolEvent) {
	*t.log = append(*t.log, fmt.Sprintf("%s:pool %s %v", t.name, e.Kind, e.Err))
}

type sink struct {
	recorder
	added, removed *int
}

func (s *sink) AddStatsSource(string, func() monitor.PoolStats) func() {
	*s.added++
	return func() { *s.removed++ }
}
