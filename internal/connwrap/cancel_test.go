package connwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/internal/drv"
	"github.com/enginekit/enginekit/monitor"
)

// cancelConnector opens connections whose statements a drv.Canceller
// stops, as MySQL's KILL QUERY does: each connection has an id, and a
// statement runs until its ctx ends (the driver then returns at once, as
// go-sql-driver/mysql does) or until it is cancelled on the "server".
type cancelConnector struct {
	ids       atomic.Int64
	cancelErr error         // what Cancel answers
	started   chan struct{} // told when a statement that waits starts waiting

	mu        sync.Mutex
	cancelled []int64                 // the ids Cancel was called for, in order
	stopped   map[int64]chan struct{} // closed when Cancel is called for the id
}

var _ drv.Canceller = (*cancelConnector)(nil)

func newCancelConnector() *cancelConnector {
	return &cancelConnector{stopped: map[int64]chan struct{}{}, started: make(chan struct{}, 1)}
}

func (c *cancelConnector) Connect(context.Context) (driver.Conn, error) {
	id := c.ids.Add(1)
	c.mu.Lock()
	c.stopped[id] = make(chan struct{})
	c.mu.Unlock()
	return &cancelConn{c: c, id: id}, nil
}

func (c *cancelConnector) Driver() driver.Driver { return nil }

func (c *cancelConnector) Identify(_ context.Context, dc driver.Conn) (any, error) {
	return dc.(*cancelConn).id, nil
}

func (c *cancelConnector) Cancel(_ context.Context, cid any) error {
	id := cid.(int64)
	c.mu.Lock()
	c.cancelled = append(c.cancelled, id)
	close(c.stopped[id]) // a second Cancel for one connection panics
	c.mu.Unlock()
	return c.cancelErr
}

func (c *cancelConnector) cancels() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.cancelled...)
}

func (c *cancelConnector) stoppedCh(id int64) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped[id]
}

// errInterrupted is the "server's" answer to a statement it stopped.
var errInterrupted = errors.New("query execution was interrupted")

// cancelConn runs statements by their text: "fast" returns at once;
// "sleep" runs until its ctx ends; "stubborn" until it is cancelled on
// the server, whatever its ctx (a driver that waits for the server's
// answer); "rows" returns rows whose reading runs until the ctx ends.
type cancelConn struct {
	c  *cancelConnector
	id int64
}

func (c *cancelConn) Prepare(q string) (driver.Stmt, error) { return &cancelStmt{c: c, q: q}, nil }
func (c *cancelConn) Close() error                          { return nil }
func (c *cancelConn) Begin() (driver.Tx, error)             { return cancelTx{}, nil }
func (c *cancelConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	return cancelTx{}, nil
}
func (c *cancelConn) ResetSession(context.Context) error { return nil }
func (c *cancelConn) IsValid() bool                      { return true }

func (c *cancelConn) ExecContext(ctx context.Context, q string, _ []driver.NamedValue) (driver.Result, error) {
	if err := c.run(ctx, q); err != nil {
		return nil, err
	}
	return driver.RowsAffected(1), nil
}

func (c *cancelConn) QueryContext(ctx context.Context, q string, _ []driver.NamedValue) (driver.Rows, error) {
	if q == "rows" {
		return &cancelRows{ctx: ctx, started: c.c.started}, nil
	}
	if err := c.run(ctx, q); err != nil {
		return nil, err
	}
	return &cancelRows{}, nil
}

func (c *cancelConn) run(ctx context.Context, q string) error {
	switch q {
	case "fast":
		return nil
	case "sleep":
		c.c.started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	case "stubborn":
		c.c.started <- struct{}{}
		<-c.c.stoppedCh(c.id)
		return errInterrupted
	}
	return errors.New("unknown statement " + q)
}

type cancelStmt struct {
	c *cancelConn
	q string
}

func (s *cancelStmt) Close() error  { return nil }
func (s *cancelStmt) NumInput() int { return -1 }
func (s *cancelStmt) Exec([]driver.Value) (driver.Result, error) {
	return nil, errors.New("legacy Exec")
}
func (s *cancelStmt) Query([]driver.Value) (driver.Rows, error) {
	return nil, errors.New("legacy Query")
}
func (s *cancelStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.q, args)
}
func (s *cancelStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.q, args)
}

type cancelTx struct{}

func (cancelTx) Commit() error   { return nil }
func (cancelTx) Rollback() error { return nil }

// cancelRows has one row, or, with a ctx, blocks in Next until it ends.
type cancelRows struct {
	ctx     context.Context
	started chan struct{}
	done    bool
}

func (r *cancelRows) Columns() []string { return []string{"n"} }
func (r *cancelRows) Close() error      { return nil }
func (r *cancelRows) Next(dest []driver.Value) error {
	if r.ctx != nil {
		r.started <- struct{}{}
		<-r.ctx.Done()
		return r.ctx.Err()
	}
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}

// openCancel opens a pool of one connection on a cancelConnector, wrapped
// with a recorder.
func openCancel(t *testing.T) (*sql.DB, *cancelConnector, *connwrap.Connector, *recorder) {
	t.Helper()
	cc := newCancelConnector()
	rec := newRecorder()
	w := connwrap.Wrap(cc, connwrap.Options{DB: "cancel", Monitor: rec})
	db := sql.OpenDB(w)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db, cc, w, rec
}

// waitCancels waits until Cancel was called n times in all (it runs on a
// goroutine of its own), at most CancelWithin and a margin.
func waitCancels(t *testing.T, cc *cancelConnector, n int) []int64 {
	t.Helper()
	deadline := time.Now().Add(connwrap.CancelWithin + time.Second)
	for {
		ids := cc.cancels()
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("Cancel called %d times, want %d", len(ids), n)
		}
		time.Sleep(time.Millisecond) // a poll: the cancel's goroutine tells no one
	}
}

// TestCancelOncePerCancelledStatement: a statement whose ctx ends while it
// runs is cancelled on the server exactly once, whichever comes first:
// the driver's return with the ctx's error (go-sql-driver/mysql returns at
// once) or the wrapper's watch of the ctx; its connection is never used
// again; the monitor hears of each cancel. On every path: exec, query,
// prepared statements, the reading of rows.
func TestCancelOncePerCancelledStatement(t *testing.T) {
	db, cc, w, rec := openCancel(t)
	paths := map[string]func(ctx context.Context) error{
		"exec": func(ctx context.Context) error { _, err := db.ExecContext(ctx, "sleep"); return err },
		"query": func(ctx context.Context) error {
			var n int
			return db.QueryRowContext(ctx, "sleep").Scan(&n)
		},
		"prepared": func(ctx context.Context) error {
			s, err := db.PrepareContext(context.Background(), "sleep")
			if err != nil {
				return err
			}
			defer s.Close()
			_, err = s.ExecContext(ctx)
			return err
		},
		"rows": func(ctx context.Context) error {
			rows, err := db.QueryContext(ctx, "rows")
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
			}
			return rows.Err()
		},
	}
	const rounds = 40
	want := 0
	for name, call := range paths {
		for i := range rounds {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			if i%4 == 0 {
				cancel() // ended before: database/sql sends nothing
			} else {
				want++
			}
			go func() { done <- call(ctx) }()
			if i%4 != 0 {
				<-cc.started
				// Vary who sees the end first: the driver's return or the
				// wrapper's watch.
				time.AfterFunc(time.Duration(i%3)*50*time.Microsecond, cancel)
			}
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: %v, want context.Canceled", name, err)
			}
			cancel()
		}
	}
	ids := waitCancels(t, cc, want)
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("connection %d cancelled twice: %v", id, ids)
		}
		seen[id] = true
	}
	if len(ids) != want {
		t.Errorf("%d cancels, want %d (one per statement sent)", len(ids), want)
	}
	// Every connection cancelled was discarded: the one used now is new.
	var n int
	if err := db.QueryRowContext(context.Background(), "fast").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Cancels != int64(len(ids)) || s.CancelsFailed != 0 {
		t.Errorf("stats %+v, want %d cancels", s, len(ids))
	}
	events := 0
	for _, e := range rec.poolEvents() {
		if e.Kind == monitor.PoolCancel {
			events++
			if e.Err != nil || e.DB != "cancel" {
				t.Errorf("event %+v", e)
			}
		}
	}
	if events != len(ids) {
		t.Errorf("%d PoolCancel events, want %d", events, len(ids))
	}
}

// TestNoCancelOfAFinishedStatement: a statement that returned before its
// ctx ended is not cancelled, and its connection serves the next one.
func TestNoCancelOfAFinishedStatement(t *testing.T) {
	db, cc, _, _ := openCancel(t)
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := db.ExecContext(ctx, "fast"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "fast").Scan(&n); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	if ids := cc.cancels(); len(ids) != 0 {
		t.Errorf("cancelled %v, want nothing", ids)
	}
	if n := cc.ids.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
}

// TestCancelledTransactionRefusesTheRest: in a transaction, once a
// statement was cancelled on the server the connection refuses every
// later statement (the cancel must reach nothing else), and COMMIT rolls
// back. A driver that waits for the server's answer to the cancel
// returns the ctx's error with it.
func TestCancelledTransactionRefusesTheRest(t *testing.T) {
	db, cc, _, _ := openCancel(t)
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = tx.ExecContext(ctx, "stubborn")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errInterrupted) {
		t.Errorf("cancelled statement: %v, want the ctx's error with the driver's", err)
	}
	if _, err := tx.ExecContext(context.Background(), "fast"); err == nil || !strings.Contains(err.Error(), "stopped on the server") {
		t.Errorf("statement after the cancel: %v, want it refused", err)
	}
	if err := tx.Commit(); err == nil || !strings.Contains(err.Error(), "rolled back instead of committed") {
		t.Errorf("commit: %v, want a rollback", err)
	}
	if ids := cc.cancels(); len(ids) != 1 {
		t.Errorf("cancelled %v, want one", ids)
	}
}

// TestFailedCancelReported: a cancel that fails is reported to the
// monitor with its error.
func TestFailedCancelReported(t *testing.T) {
	db, cc, w, rec := openCancel(t)
	cc.cancelErr = errors.New("not attempted: another server")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := db.ExecContext(ctx, "sleep"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	waitCancels(t, cc, 1)
	deadline := time.Now().Add(time.Second)
	for w.Stats().CancelsFailed == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the event follows Cancel's return
	}
	var got []monitor.PoolEvent
	for _, e := range rec.poolEvents() {
		if e.Kind == monitor.PoolCancel {
			got = append(got, e)
		}
	}
	if len(got) != 1 || !errors.Is(got[0].Err, cc.cancelErr) {
		t.Errorf("events %+v, want one PoolCancel with the cancel's error", got)
	}
}
