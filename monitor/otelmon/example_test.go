package otelmon_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/monitor/otelmon"
	"github.com/enginekit/enginekit/session"
)

func Example() {
	ctx := context.Background()
	// An application's tracer provider; here one that keeps its spans.
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(ctx)

	mon, err := otelmon.New(otelmon.WithTracerProvider(tp)) // and WithMeterProvider(mp) for the metrics
	if err != nil {
		fmt.Println(err)
		return
	}
	e, err := dbfx.Open(ctx, dbfx.Config{Name: "app", DSN: ":memory:"},
		dbfx.WithDriver(sqlite3.Driver()), dbfx.WithMonitor(mon))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close(ctx)
	_, _ = e.DB().ExecContext(ctx, "CREATE TABLE users (id INTEGER PRIMARY KEY)")

	ctx, request := tp.Tracer("app").Start(ctx, "POST /signup")
	_ = e.Sessions().Tx(ctx, func(ctx context.Context) error {
		_, err := e.Sessions().Q(ctx).ExecContext(ctx, "INSERT INTO users (id) VALUES (1)")
		return err
	}, session.Label("signup"))
	request.End()

	byID := map[string]string{}
	for _, s := range spans.GetSpans() {
		byID[s.SpanContext.SpanID().String()] = s.Name
	}
	for _, s := range spans.GetSpans() {
		if parent, ok := byID[s.Parent.SpanID().String()]; ok {
			fmt.Printf("%s, under %s\n", s.Name, parent)
		} else {
			fmt.Println(s.Name)
		}
	}
	// Output:
	// CREATE
	// BEGIN, under TRANSACTION signup
	// INSERT users, under TRANSACTION signup
	// COMMIT, under TRANSACTION signup
	// TRANSACTION signup, under POST /signup
	// POST /signup
}
