package otelmon_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor/otelmon"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// database is what the spans of engine e must say of its database.
func database(t *testing.T, e *dbfx.Engine, cfg dbfx.Config) map[string]string {
	t.Helper()
	ctx := testContext(t)
	want := map[string]string{"enginekit.engine": e.Name()}
	var q string
	switch e.Driver() {
	case "postgres":
		want["db.system.name"], want["server.address"], want["server.port"] = "postgresql", "127.0.0.1", "5432"
		q = "SELECT current_database()"
	case "mysql":
		want["db.system.name"], want["server.address"], want["server.port"] = "mysql", "127.0.0.1", "3306"
		q = "SELECT DATABASE()"
	default:
		want["db.system.name"] = "sqlite"
		want["db.namespace"], _, _ = strings.Cut(cfg.DSN, "?")
		return want
	}
	var ns string
	if err := e.DB().GetContext(ctx, &ns, q); err != nil {
		t.Fatal(err)
	}
	want["db.namespace"] = ns
	return want
}

// span is a span as the tests compare them.
type span struct {
	name   string
	parent string // the parent's name
	attrs  map[string]string
	status codes.Code
	events []string
}

// tree returns the spans under root (root first), depth first, in the order
// they started.
func tree(spans tracetest.SpanStubs, root trace.SpanID) []span {
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	slices.SortStableFunc(spans, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	var out []span
	var walk func(id trace.SpanID)
	walk = func(id trace.SpanID) {
		s := byID[id]
		sp := span{name: s.Name, attrs: attrs(s.Attributes), status: s.Status.Code}
		if p, ok := byID[s.Parent.SpanID()]; ok {
			sp.parent = p.Name
		}
		for _, ev := range s.Events {
			sp.events = append(sp.events, ev.Name+fmt.Sprint(attrs(ev.Attributes)))
		}
		out = append(out, sp)
		for _, c := range spans {
			if c.Parent.SpanID() == id {
				walk(c.SpanContext.SpanID())
			}
		}
	}
	walk(root)
	return out
}

func isDuplicate(err error) bool { return errors.Is(err, session.ErrDuplicate) }

// TestTransactionSpans: a transaction whose first attempt fails on a
// duplicate key and is retried; the second runs two statements, one in a
// nested scope (a savepoint), and commits. The spans of each attempt are
// under the request's span, and its statements under it.
func TestTransactionSpans(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := newSDK(t)
		e := openEngine(t, cfg, dbfx.WithMonitor(s.monitor(t)))
		mustExec(t, e, "CREATE TABLE items (id INTEGER PRIMARY KEY)")
		db := database(t, e, cfg)
		m := e.Sessions()
		insert := func(ctx context.Context, id int) error {
			q := m.Q(ctx)
			_, err := q.ExecContext(ctx, q.Rebind("INSERT INTO items (id) VALUES (?)"), id)
			return err
		}
		s.spans.Reset()

		ctx, request := s.tracers.Tracer("test").Start(testContext(t), "request")
		attempts := 0
		err := m.Tx(ctx, func(ctx context.Context) error {
			attempts++
			if err := insert(ctx, 1); err != nil {
				return err
			}
			if attempts == 1 {
				return insert(ctx, 1) // a duplicate key: retried
			}
			if err := m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, 2) },
				session.Propagation(session.Nested)); err != nil {
				return err
			}
			var n int
			return m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM items")
		}, session.Label("transfer"), session.Retry(session.RetryPolicy{MaxAttempts: 2, RetryOn: isDuplicate}))
		request.End()
		if err != nil {
			t.Fatalf("Tx: %v", err)
		}
		if attempts != 2 {
			t.Fatalf("the transaction ran %d times, want 2", attempts)
		}

		got := tree(s.spans.GetSpans(), request.SpanContext().SpanID())
		const tx = "TRANSACTION transfer"
		want := []struct {
			name, parent string
			attrs        map[string]string
			failed       bool
		}{
			{"request", "", nil, false},
			{tx, "request", map[string]string{"enginekit.transaction.attempt": "1", "enginekit.transaction.label": "transfer",
				"enginekit.transaction.outcome": "rolled_back", "error.type": ""}, false},
			{"BEGIN", tx, map[string]string{"db.operation.name": "BEGIN"}, false},
			{"INSERT items", tx, map[string]string{"db.operation.name": "INSERT", "db.collection.name": "items", "error.type": ""}, false},
			{"INSERT items", tx, map[string]string{"db.operation.name": "INSERT", "db.collection.name": "items", "error.type": "duplicate"}, true},
			{"ROLLBACK", tx, map[string]string{"db.operation.name": "ROLLBACK"}, false},
			{tx, "request", map[string]string{"enginekit.transaction.attempt": "2", "enginekit.transaction.outcome": "committed"}, false},
			{"BEGIN", tx, nil, false},
			{"INSERT items", tx, map[string]string{"error.type": ""}, false},
			{"SAVEPOINT", tx, map[string]string{"db.operation.name": "SAVEPOINT", "db.collection.name": ""}, false},
			{"INSERT items", tx, nil, false},
			{"RELEASE SAVEPOINT", tx, map[string]string{"db.operation.name": "RELEASE SAVEPOINT"}, false},
			{"SELECT items", tx, map[string]string{"db.operation.name": "SELECT", "db.collection.name": "items"}, false},
			{"COMMIT", tx, map[string]string{"db.operation.name": "COMMIT"}, false},
		}
		names := func() string {
			var b strings.Builder
			for _, g := range got {
				fmt.Fprintf(&b, "\n\t%s (under %s) %v", g.name, g.parent, g.attrs)
			}
			return b.String()
		}
		if len(got) != len(want) {
			t.Fatalf("%d spans, want %d:%s", len(got), len(want), names())
		}
		for i, w := range want {
			g := got[i]
			if g.name != w.name || g.parent != w.parent {
				t.Fatalf("span %d is %s under %s, want %s under %s:%s", i, g.name, g.parent, w.name, w.parent, names())
			}
			if i == 0 {
				continue
			}
			if !has(g.attrs, db) || !has(g.attrs, w.attrs) {
				t.Errorf("span %d %s: attributes %v, want %v and %v", i, g.name, g.attrs, db, w.attrs)
			}
			if failed := g.status == codes.Error; failed != w.failed {
				t.Errorf("span %d %s: status %v, want failed %v", i, g.name, g.status, w.failed)
			}
			if _, ok := g.attrs["db.query.text"]; ok {
				t.Errorf("span %d %s has db.query.text without WithQueryText", i, g.name)
			}
		}
		wantEvent := fmt.Sprint(map[string]string{"enginekit.engine": e.Name(), "enginekit.transaction.attempt": "1",
			"enginekit.transaction.label": "transfer", "error.type": "duplicate"})
		if ev := got[0].events; len(ev) != 1 || ev[0] != otelmon.RetryEvent+wantEvent {
			t.Errorf("request's events = %v, want one %s%s", ev, otelmon.RetryEvent, wantEvent)
		}

		// enginekit.db.client.transaction.retries: the one retry, with its
		// engine, failure class and label.
		retries := s.metric(t, "enginekit.db.client.transaction.retries").Data.(metricdata.Sum[int64])
		if len(retries.DataPoints) != 1 || retries.DataPoints[0].Value != 1 || !retries.IsMonotonic ||
			!has(attrs(retries.DataPoints[0].Attributes.ToSlice()), map[string]string{"enginekit.engine": e.Name(),
				"error.type": "duplicate", "enginekit.transaction.label": "transfer"}) {
			t.Errorf("retries = %+v, want one point of 1 with the engine, error.type duplicate and the label", retries.DataPoints)
		}

		// db.client.operation.duration: by operation, table and error.
		dur := s.metric(t, "db.client.operation.duration")
		if dur.Unit != "s" {
			t.Errorf("duration's unit = %q, want s", dur.Unit)
		}
		hist, ok := dur.Data.(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("duration is a %T, want a histogram", dur.Data)
		}
		counts := map[string]uint64{}
		for _, dp := range hist.DataPoints {
			a := attrs(dp.Attributes.ToSlice())
			if !has(a, map[string]string{"db.system.name": db["db.system.name"], "db.namespace": db["db.namespace"],
				"server.address": db["server.address"], "server.port": db["server.port"], "enginekit.engine": ""}) {
				t.Errorf("data point %v lacks the database's attributes %v", a, db)
			}
			if !slices.Equal(dp.Bounds, otelmon.DurationBuckets()) {
				t.Errorf("bounds %v, want %v", dp.Bounds, otelmon.DurationBuckets())
			}
			counts[a["db.operation.name"]+" "+a["db.collection.name"]+" "+a["error.type"]] += dp.Count
		}
		for k, want := range map[string]uint64{
			"INSERT items ":          3,
			"INSERT items duplicate": 1,
			"BEGIN  ":                2,
			"COMMIT  ":               1,
			"ROLLBACK  ":             1,
			"SAVEPOINT  ":            1,
			"RELEASE SAVEPOINT  ":    1,
			"SELECT items ":          1,
		} {
			if counts[k] != want {
				t.Errorf("duration count of %q = %d, want %d (all: %v)", k, counts[k], want, counts)
			}
		}
	})
}

// TestPoolMetrics: the connection metrics carry the engine's name and
// the pools' figures.
func TestPoolMetrics(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := newSDK(t)
		cfg.MaxOpenConns = 3
		e := openEngine(t, cfg, dbfx.WithMonitor(s.monitor(t)))
		pool := map[string]string{"db.client.connection.pool.name": e.Name()}
		// One connection held: used 1.
		err := e.Sessions().Conn(testContext(t), func(ctx context.Context) error {
			st := e.Stats()
			count := s.metric(t, "db.client.connection.count").Data.(metricdata.Sum[int64])
			byState := map[string]int64{}
			for _, dp := range count.DataPoints {
				a := attrs(dp.Attributes.ToSlice())
				if !has(a, pool) {
					t.Errorf("count data point %v lacks %v", a, pool)
				}
				byState[a["db.client.connection.state"]] += dp.Value
			}
			if byState["used"] != int64(st.InUse) || byState["idle"] != int64(st.Idle) || byState["used"] < 1 {
				t.Errorf("count by state = %v, want used %d idle %d (and used at least 1)", byState, st.InUse, st.Idle)
			}
			if count.IsMonotonic {
				t.Error("db.client.connection.count is monotonic")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		max := s.metric(t, "db.client.connection.max").Data.(metricdata.Sum[int64])
		if len(max.DataPoints) != 1 || max.DataPoints[0].Value != int64(e.Stats().MaxOpen) || !has(attrs(max.DataPoints[0].Attributes.ToSlice()), pool) {
			t.Errorf("max = %+v, want one point of %d with %v", max.DataPoints, e.Stats().MaxOpen, pool)
		}
		for _, name := range []string{"db.client.connection.pending_requests", "db.client.connection.timeouts"} {
			m := s.metric(t, name)
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			}
			if len(points) != 1 || points[0].Value != 0 || !has(attrs(points[0].Attributes.ToSlice()), pool) {
				t.Errorf("%s = %+v, want one point of 0 with %v", name, points, pool)
			}
		}
		create := s.metric(t, "db.client.connection.create_time").Data.(metricdata.Histogram[float64])
		var connects uint64
		for _, dp := range create.DataPoints {
			if has(attrs(dp.Attributes.ToSlice()), pool) {
				connects += dp.Count
			}
		}
		if connects < 1 {
			t.Errorf("create_time counted %d connects, want at least 1", connects)
		}
	})
}

// TestStatementSpans: a statement outside a transaction is a client span
// under the span of its ctx; the query text is there only when asked for,
// without its literals; a failed statement says its class, not its
// message.
func TestStatementSpans(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := newSDK(t)
		e := openEngine(t, cfg, dbfx.WithMonitor(s.monitor(t, otelmon.WithQueryText())))
		mustExec(t, e, "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))")
		mustExec(t, e, "INSERT INTO items (id, name) VALUES (1, 'a')")
		s.spans.Reset()
		ctx, parent := s.tracers.Tracer("test").Start(testContext(t), "handler")
		q := e.Sessions().Q(ctx)
		var name string
		if err := q.GetContext(ctx, &name, q.Rebind("SELECT name FROM items WHERE id = ? AND name <> 'secret'"), 1); err != nil {
			t.Fatal(err)
		}
		_, err := q.ExecContext(ctx, "INSERT INTO items (id, name) VALUES (1, 'secret2')")
		if err == nil {
			t.Fatal("a duplicate key inserted")
		}
		parent.End()
		got := tree(s.spans.GetSpans(), parent.SpanContext().SpanID())
		if len(got) != 3 {
			t.Fatalf("spans %+v, want the handler's and two statements", got)
		}
		sel, ins := got[1], got[2]
		if sel.name != "SELECT items" || sel.parent != "handler" || ins.name != "INSERT items" || ins.parent != "handler" {
			t.Fatalf("spans %+v, want SELECT items and INSERT items under handler", got)
		}
		if text := sel.attrs["db.query.text"]; strings.Contains(text, "secret") || !strings.Contains(text, "FROM items") {
			t.Errorf("SELECT's db.query.text = %q, want it normalised", text)
		}
		if ins.status != codes.Error || ins.attrs["error.type"] != "duplicate" {
			t.Errorf("INSERT: status %v, attributes %v, want Error and error.type duplicate", ins.status, ins.attrs)
		}
		for _, sp := range s.spans.GetSpans() {
			if sp.Status.Description != "" && strings.Contains(sp.Status.Description, "secret") {
				t.Errorf("span %s's status quotes the statement: %q", sp.Name, sp.Status.Description)
			}
			if sp.SpanKind != trace.SpanKindClient && sp.Name != "handler" {
				t.Errorf("span %s is of kind %v, want client", sp.Name, sp.SpanKind)
			}
		}
		if e.Driver() == "postgres" && ins.attrs["db.response.status_code"] != "23505" {
			t.Errorf("INSERT's db.response.status_code = %q, want 23505", ins.attrs["db.response.status_code"])
		}
	})
}

// TestUnsampled: with nothing sampled, statements still run and the
// duration is still recorded.
func TestUnsampled(t *testing.T) {
	s := newSDK(t)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.spans), sdktrace.WithSampler(sdktrace.NeverSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	mon, err := otelmon.New(otelmon.WithTracerProvider(tp), otelmon.WithMeterProvider(s.meters))
	if err != nil {
		t.Fatal(err)
	}
	e := openEngine(t, fxtest.SQLite(t), dbfx.WithMonitor(mon))
	err = e.Sessions().Tx(testContext(t), func(ctx context.Context) error {
		_, err := e.Sessions().Q(ctx).ExecContext(ctx, "CREATE TABLE t (id INTEGER)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.spans.GetSpans()); n != 0 {
		t.Errorf("%d spans exported, want none", n)
	}
	hist := s.metric(t, "db.client.operation.duration").Data.(metricdata.Histogram[float64])
	var n uint64
	for _, dp := range hist.DataPoints {
		n += dp.Count
	}
	if n < 3 {
		t.Errorf("%d durations recorded, want BEGIN, CREATE and COMMIT at least", n)
	}
}

type item struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name"`
}

// TestRepositorySpans: a repository's statements, which quote their
// table, name it as one's own statements do.
func TestRepositorySpans(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := newSDK(t)
		e := openEngine(t, cfg, dbfx.WithMonitor(s.monitor(t)))
		mustExec(t, e, "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)")
		items, err := repo.New[item, int64](e.Sessions(), repo.Table("items"))
		if err != nil {
			t.Fatal(err)
		}
		s.spans.Reset()
		ctx := testContext(t)
		if err := items.Insert(ctx, &item{ID: 1, Name: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := items.Get(ctx, 1); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, sp := range s.spans.GetSpans() {
			if sp.Name != "PREPARE items" { // the statement cache's
				names = append(names, sp.Name)
			}
			if got := attrs(sp.Attributes)["db.collection.name"]; got != "items" {
				t.Errorf("span %s: db.collection.name %q, want items", sp.Name, got)
			}
		}
		if !slices.Equal(names, []string{"INSERT items", "SELECT items"}) {
			t.Errorf("spans %v, want INSERT items and SELECT items", names)
		}
	})
}
