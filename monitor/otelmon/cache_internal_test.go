package otelmon

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/enginekit/enginekit/monitor"
)

// A statement's shape is kept by its text, but only for texts up to
// maxCachedText: a longer one (a large multi-row INSERT) gets the same
// span, and the cache does not hold it.
func TestLongTextsAreNotCached(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	m, err := New(WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	cached := func() int {
		if p := m.texts.m.Load(); p != nil {
			return len(*p)
		}
		return 0
	}
	long := "INSERT INTO items (id) VALUES (?)" + strings.Repeat(", (?)", maxCachedText/5)
	for i, q := range []string{long, "INSERT INTO items (id) VALUES (?)"} {
		ctx := m.QueryStart(context.Background(), monitor.QueryStart{DB: "main", Op: monitor.OpExec, SQL: q})
		m.Query(ctx, monitor.QueryEvent{DB: "main", Op: monitor.OpExec, SQL: q, Rows: 1})
		if got := spans.GetSpans(); len(got) != i+1 || got[i].Name != "INSERT items" {
			t.Fatalf("statement %d (%d bytes): spans %v, want INSERT items", i, len(q), got)
		}
		if n := cached(); n != i {
			t.Errorf("after statement %d (%d bytes): %d texts cached, want %d", i, len(q), n, i)
		}
	}
}
