package otelmon_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/monitor/otelmon"
)

// testExporter records the names of the spans of each export. It
// signals on exported after each export and on entered when one starts,
// without waiting for a reader; when release is set, an export waits
// until it is closed, whatever its ctx says; it notes two exports at
// once (overlap) and counts its Shutdown calls.
type testExporter struct {
	mu      sync.Mutex
	batches [][]string

	exported chan struct{}
	entered  chan struct{}
	release  chan struct{}

	inFlight  atomic.Int32
	overlap   atomic.Bool
	shutdowns atomic.Int32
}

func newTestExporter() *testExporter {
	return &testExporter{exported: make(chan struct{}, 1), entered: make(chan struct{}, 1)}
}

func (e *testExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.inFlight.Add(1) > 1 {
		e.overlap.Store(true)
	}
	defer e.inFlight.Add(-1)
	signal(e.entered)
	if e.release != nil {
		<-e.release
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	// Let other goroutines run while this export is in flight, so that
	// an export made beside it would overlap it.
	for range 3 {
		runtime.Gosched()
	}
	e.mu.Lock()
	e.batches = append(e.batches, names)
	e.mu.Unlock()
	signal(e.exported)
	return nil
}

func (e *testExporter) Shutdown(context.Context) error {
	e.shutdowns.Add(1)
	return nil
}

// exports are the span names of each export so far.
func (e *testExporter) exports() [][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.batches)
}

// names are the names of the spans exported so far.
func (e *testExporter) names() []string {
	return slices.Concat(e.exports()...)
}

// signal sends on the 1-buffered ch unless a signal already waits there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// await waits for a signal on ch, failing the test after 10 seconds.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s after 10s", what)
	}
}

// sampler samples every span but those whose name starts with
// "unsampled", which are recorded and not sampled: they reach the
// processor's OnEnd.
type sampler struct{}

func (sampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	if strings.HasPrefix(p.Name, "unsampled") {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly, Tracestate: psc.TraceState()}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: psc.TraceState()}
}

func (sampler) Description() string { return "test sampler" }

// batcherTracer is a tracer of a provider whose one processor is b; the
// provider (and so b) is shut down when the test ends.
func batcherTracer(t *testing.T, b *otelmon.Batcher) trace.Tracer {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithSampler(sampler{}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			t.Errorf("tracer provider's Shutdown: %v", err)
		}
	})
	return tp.Tracer("test")
}

// endSpans starts and ends spans named prefix0, prefix1... up to n.
func endSpans(tr trace.Tracer, prefix string, n int) {
	for i := range n {
		_, span := tr.Start(context.Background(), fmt.Sprint(prefix, i))
		span.End()
	}
}

func names(prefix string, n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprint(prefix, i))
	}
	return s
}

func TestBatcherExportsAFullBatch(t *testing.T) {
	exp := newTestExporter()
	b := otelmon.NewBatcher(exp, otelmon.WithBatchSize(4), otelmon.WithBatchTimeout(time.Hour))
	tr := batcherTracer(t, b)
	endSpans(tr, "s", 4)
	await(t, exp.exported, "export of a full batch")
	if got, want := exp.exports(), [][]string{names("s", 4)}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("exports: %q, want %q", got, want)
	}
}

func TestBatcherBatchSizeIsAtMostTheQueueSize(t *testing.T) {
	exp := newTestExporter()
	b := otelmon.NewBatcher(exp, otelmon.WithQueueSize(3), otelmon.WithBatchSize(100), otelmon.WithBatchTimeout(time.Hour))
	tr := batcherTracer(t, b)
	endSpans(tr, "s", 3)
	await(t, exp.exported, "export of a full queue")
	if got, want := exp.names(), names("s", 3); !slices.Equal(got, want) {
		t.Errorf("exported %q, want %q", got, want)
	}
	if b.Dropped() != 0 {
		t.Errorf("Dropped: %d, want 0", b.Dropped())
	}
}

func TestBatcherExportsAPartialBatchAfterTheTimeout(t *testing.T) {
	exp := newTestExporter()
	b := otelmon.NewBatcher(exp, otelmon.WithBatchTimeout(5*time.Millisecond))
	tr := batcherTracer(t, b)
	endSpans(tr, "s", 3)
	await(t, exp.exported, "export after the batch timeout")
	if got, want := exp.names(), names("s", 3); !slices.Equal(got, want) {
		t.Errorf("exported %q, want %q", got, want)
	}
}

func TestBatcherForceFlush(t *testing.T) {
	exp := newTestExporter()
	b := otelmon.NewBatcher(exp, otelmon.WithBatchSize(4), otelmon.WithBatchTimeout(time.Hour))
	tr := batcherTracer(t, b)
	endSpans(tr, "s", 10)
	if err := b.ForceFlush(testContext(t)); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	if got, want := exp.names(), names("s", 10); !slices.Equal(got, want) {
		t.Errorf("exported %q, want %q", got, want)
	}
	for _, batch := range exp.exports() {
		if len(batch) > 4 {
			t.Errorf("an export of %d spans, more than the batch size 4", len(batch))
		}
	}
}

func TestBatcherForceFlushHonoursCtx(t *testing.T) {
	for _, tc := range []struct {
		name string
		// spans ended before ForceFlush; their export blocks: 4 fill a
		// batch, whose export blocks the goroutine before ForceFlush
		// asks it; 1 is exported by ForceFlush itself.
		spans int
	}{
		{"goroutine busy", 4},
		{"flush's own export", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := newTestExporter()
			exp.release = make(chan struct{})
			b := otelmon.NewBatcher(exp, otelmon.WithBatchSize(4), otelmon.WithBatchTimeout(time.Hour))
			tr := batcherTracer(t, b)
			defer close(exp.release)
			endSpans(tr, "s", tc.spans)
			if tc.spans == 4 {
				await(t, exp.entered, "export of the full batch")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			flushed := make(chan error, 1)
			go func() { flushed <- b.ForceFlush(ctx) }()
			if tc.spans == 1 {
				await(t, exp.entered, "ForceFlush's export")
			}
			cancel()
			select {
			case err := <-flushed:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("ForceFlush: %v, want %v", err, context.Canceled)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ForceFlush still blocked 10s after its ctx ended")
			}
		})
	}
}

func TestBatcherDropsWhenTheQueueIsFull(t *testing.T) {
	exp := newTestExporter()
	exp.release = make(chan struct{})
	b := otelmon.NewBatcher(exp, otelmon.WithQueueSize(4), otelmon.WithBatchSize(2), otelmon.WithBatchTimeout(time.Hour))
	tr := batcherTracer(t, b)
	endSpans(tr, "a", 2)
	await(t, exp.entered, "export of the first batch") // the goroutine holds a0 and a1, the queue is empty
	endSpans(tr, "b", 4)                               // fills the queue
	endSpans(tr, "c", 3)                               // dropped
	if got := b.Dropped(); got != 3 {
		t.Errorf("Dropped: %d, want 3", got)
	}
	close(exp.release)
	if err := b.ForceFlush(testContext(t)); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	if got, want := exp.names(), append(names("a", 2), names("b", 4)...); !slices.Equal(got, want) {
		t.Errorf("exported %q, want %q", got, want)
	}
}

func TestBatcherSkipsUnsampledSpans(t *testing.T) {
	exp := newTestExporter()
	b := otelmon.NewBatcher(exp, otelmon.WithBatchTimeout(time.Hour))
	tr := batcherTracer(t, b)
	endSpans(tr, "unsampled", 3)
	endSpans(tr, "s", 2)
	if err := b.ForceFlush(testContext(t)); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	if got, want := exp.names(), names("s", 2); !slices.Equal(got, want) {
		t.Errorf("exported %q, want %q", got, want)
	}
}

func TestBatcherShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	exp := newTestExporter()
	b := otelmon.NewBatcher(exp, otelmon.WithBatchSize(4), otelmon.WithQueueSize(8), otelmon.WithBatchTimeout(time.Hour))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	tr := tp.Tracer("test")
	endSpans(tr, "s", 6)
	ctx := testContext(t)
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got, want := exp.names(), names("s", 6); !slices.Equal(got, want) {
		t.Errorf("exported %q, want %q", got, want)
	}
	if n := exp.shutdowns.Load(); n != 1 {
		t.Errorf("exporter's Shutdown called %d times, want 1", n)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	endSpans(tr, "late", 10) // more than the queue holds
	if err := b.ForceFlush(ctx); err != nil {
		t.Errorf("ForceFlush after Shutdown: %v", err)
	}
	if err := tp.Shutdown(ctx); err != nil { // Shuts b down a third time.
		t.Errorf("tracer provider's Shutdown: %v", err)
	}
	if got, want := exp.names(), names("s", 6); !slices.Equal(got, want) {
		t.Errorf("exported after Shutdown: %q, want %q", got, want)
	}
	if n := exp.shutdowns.Load(); n != 1 {
		t.Errorf("exporter's Shutdown called %d times, want 1", n)
	}
	if n := b.Dropped(); n != 0 {
		t.Errorf("Dropped: %d, want 0 (spans ended after Shutdown are not counted)", n)
	}
}

func TestBatcherShutdownHonoursCtx(t *testing.T) {
	before := goleak.IgnoreCurrent()
	exp := newTestExporter()
	exp.release = make(chan struct{})
	b := otelmon.NewBatcher(exp, otelmon.WithBatchSize(2), otelmon.WithBatchTimeout(time.Hour))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	endSpans(tp.Tracer("test"), "s", 3)
	await(t, exp.entered, "export of the full batch")
	ctx, cancel := context.WithCancel(context.Background())
	shut := make(chan error, 1)
	go func() { shut <- b.Shutdown(ctx) }()
	cancel()
	select {
	case err := <-shut:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown: %v, want %v", err, context.Canceled)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still blocked 10s after its ctx ended")
	}
	// Once the export returns, the goroutine calls the exporter's
	// Shutdown and returns (goleak.VerifyNone waits for it).
	close(exp.release)
	goleak.VerifyNone(t, before)
	if n := exp.shutdowns.Load(); n != 1 {
		t.Errorf("exporter's Shutdown called %d times, want 1", n)
	}
	if n := b.Dropped(); n != 1 {
		t.Errorf("Dropped: %d, want 1 (the span queued behind the blocked export)", n)
	}
}

func TestBatcherNeverCallsTheExporterConcurrently(t *testing.T) {
	exp := newTestExporter()
	b := otelmon.NewBatcher(exp, otelmon.WithBatchSize(8), otelmon.WithQueueSize(128),
		otelmon.WithBatchTimeout(time.Millisecond))
	tr := batcherTracer(t, b)
	const goroutines, spans = 8, 500
	var enders sync.WaitGroup
	for g := range goroutines {
		enders.Add(1)
		go func() {
			defer enders.Done()
			endSpans(tr, fmt.Sprint("g", g, "-"), spans)
		}()
	}
	ended := make(chan struct{})
	go func() { enders.Wait(); close(ended) }()
	ctx := testContext(t)
	flushes := 0
	for done := false; !done; flushes++ {
		select {
		case <-ended:
			done = true
		default:
		}
		if err := b.ForceFlush(ctx); err != nil {
			t.Fatalf("ForceFlush: %v", err)
		}
	}
	if exp.overlap.Load() {
		t.Error("the exporter was called by two goroutines at once")
	}
	got := len(exp.names())
	if total := uint64(goroutines * spans); uint64(got)+b.Dropped() != total {
		t.Errorf("%d spans exported and %d dropped, want %d in all", got, b.Dropped(), total)
	}
	t.Logf("%d exports, %d flushes, %d spans dropped", len(exp.exports()), flushes, b.Dropped())
}
