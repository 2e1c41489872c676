package faults_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// The workers of the restart tests, and how many transactions each must
// commit before the fault and after it.
const (
	restartWorkers = 32
	commitsEach    = 5
)

// restartPool is the pool and the load of a restart test.
type restartPool struct {
	name    string // in the fault's name; "" for busy
	open    int    // MaxOpenConns
	idle    int    // MaxIdleConns (0: the default)
	fill    bool   // open every connection of the pool before the writers start
	backoff time.Duration
}

var (
	// busy: 32 workers on a pool of 16, each trying again 10ms after an
	// error. No connection is ever idle, and during the downtime the
	// workers meet every connection the fault broke.
	busy = restartPool{open: 16, backoff: 10 * time.Millisecond}
	// idlePool: 32 workers on a pool of 64 that a burst filled earlier,
	// each waiting 1s after an error (longer than a restart takes): most
	// of the connections sit idle through the downtime, dead, and the
	// first callers after it would meet them (unless each is checked when
	// taken from the pool).
	idlePool = restartPool{name: "idle pool", open: 64, idle: 64, fill: true, backoff: time.Second}
)

func TestPostgresRestart(t *testing.T) {
	restartUnderLoad(t, "pg restart", "postgres", busy, "restart")
}

func TestPostgresCrash(t *testing.T) {
	restartUnderLoad(t, "pg crash", "postgres", busy, "kill-one", "start-one")
}

func TestPostgresRestartIdlePool(t *testing.T) {
	restartUnderLoad(t, "pg restart", "postgres", idlePool, "restart")
}

func TestMariaDBRestart(t *testing.T) {
	restartUnderLoad(t, "mariadb restart", "mysql", busy, "restart")
}

func TestMariaDBCrash(t *testing.T) {
	restartUnderLoad(t, "mariadb crash", "mysql", busy, "kill-one", "start-one")
}

func TestMariaDBRestartIdlePool(t *testing.T) {
	restartUnderLoad(t, "mariadb restart", "mysql", idlePool, "restart")
}

func TestPostgresRestartQuietPool(t *testing.T) {
	restartQuiet(t, "pg restart, quiet pool", "postgres")
}

func TestMariaDBRestartQuietPool(t *testing.T) {
	restartQuiet(t, "mariadb restart, quiet pool", "mysql")
}

// quietConns is the pool of restartQuiet, and quietCalls the
// transactions run one after the other once the server is up.
const (
	quietConns = 16
	quietCalls = 20
)

// restartQuiet restarts the primary of driverName while nothing runs, a
// moment after every connection of the pool was used, then runs
// transactions one after the other. A connection used less than
// Config.IdleCheck ago is not checked when taken from the pool (so that a
// busy pool pays nothing): the first transaction may meet one that the
// restart killed, and fail, but the loss it meets gets every other
// connection checked at its checkout, wherever it was met (a statement,
// BEGIN, COMMIT): at most one caller fails, never one per connection.
func restartQuiet(t *testing.T, fault, driverName string) {
	s := begin(t)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)
	events := &poolEvents{}
	e := openEngine(t, dbfx.Config{Driver: driverName, DSN: dsn, MaxOpenConns: quietConns, MaxIdleConns: quietConns,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second}, dbfx.WithMonitor(events))
	fillPool(t, e.Sessions(), quietConns)
	used := time.Now()

	down := s.mustCtl(t, "restart", serverOf(driverName))
	up := time.Now()

	var attempts []attempt
	for i := range quietCalls {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		id := int64(1 + i)
		begun := time.Now()
		err := insert(ctx, e.Sessions(), id, "")
		ended := time.Now()
		cancel()
		attempts = append(attempts, attempt{id: id, err: err, took: ended.Sub(begun), ended: ended})
	}
	afterUp := failedAfter(attempts, up)
	for _, a := range afterUp {
		if a.id != attempts[0].id {
			t.Errorf("transaction %d (of %d, one after the other) failed after the server was up: %v",
				a.id, quietCalls, a.err)
		}
	}

	longest := checkTimes(t, attempts, opTimeout)
	tb := newTable(fault)
	reconcile(t, db, tb, attempts)
	tb.note("%d connections used %s before the server was up", quietConns, up.Sub(used).Round(time.Millisecond))
	tb.note("faultdb restart took %s", down.Round(time.Millisecond))
	tb.note("%d transactions one after the other: failed after the server was up %d (at most the first)",
		quietCalls, len(afterUp))
	tb.note("dead connections discarded at checkout: %d", events.dead.Load())
	tb.note("longest transaction %s", longest.Round(time.Millisecond))
	tb.log(t)
	if tb.failed["other"] > 0 {
		t.Errorf("%d transactions failed with errors of no known class", tb.failed["other"])
	}
}

// poolEvents counts the pool events of an engine.
type poolEvents struct {
	dead, cancels atomic.Int64
}

func (p *poolEvents) Query(context.Context, monitor.QueryEvent) {}
func (p *poolEvents) Tx(context.Context, monitor.TxEvent)       {}

func (p *poolEvents) Pool(_ context.Context, e monitor.PoolEvent) {
	switch e.Kind {
	case monitor.PoolDeadConn:
		p.dead.Add(1)
	case monitor.PoolCancel:
		p.cancels.Add(1)
	}
}

// restartUnderLoad runs faultdb ops on the primary of driverName while 32
// goroutines run write transactions, then checks that the same engine
// commits again, that no caller fails once the server is back up (faultdb
// returns once it answers: every connection the pool still holds from
// before is dead, and none may reach a caller), and that every outcome its
// callers were told is true.
func restartUnderLoad(t *testing.T, fault, driverName string, pool restartPool, ops ...string) {
	s := begin(t)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)
	events := &poolEvents{}
	e := openEngine(t, dbfx.Config{Driver: driverName, DSN: dsn, MaxOpenConns: pool.open, MaxIdleConns: pool.idle,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second}, dbfx.WithMonitor(events))
	if pool.name != "" {
		fault += ", " + pool.name
	}
	if pool.fill {
		fillPool(t, e.Sessions(), pool.open)
	}

	w := startLoad(e.Sessions(), load{workers: restartWorkers, backoff: pool.backoff})
	t.Cleanup(func() { w.finish() }) // a test that fails half-way leaves no worker running
	if err := w.wait(30*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Fatalf("before the fault, every worker should commit %d transactions: %v", commitsEach, err)
	}
	before := w.committed()
	openBefore := e.Stats().Open
	deadBefore := events.dead.Load()

	begun := time.Now()
	for _, op := range ops {
		if op == "kill-one" {
			s.crash(t, serverOf(driverName))
		} else {
			s.mustCtl(t, op, serverOf(driverName))
		}
	}
	up := time.Now()
	down := up.Sub(begun)

	// The pool recovers on its own: every worker commits again.
	w.newEpoch()
	recovered := time.Now()
	if err := w.wait(30*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Errorf("after the fault, every worker should commit %d transactions again: %v", commitsEach, err)
	}
	recovery := time.Since(recovered)
	attempts := w.finish()

	// New transactions on the same engine succeed.
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		id := int64(999_000_000 + i)
		begun := time.Now()
		err := insert(ctx, e.Sessions(), id, "")
		ended := time.Now()
		cancel()
		if err != nil {
			t.Errorf("a new transaction after the fault: %v", err)
		}
		attempts = append(attempts, attempt{id: id, err: err, took: ended.Sub(begun), ended: ended})
	}

	// Every error a caller met after the server was up again counts:
	// whether its transaction began before (waiting for a connection, say)
	// or after.
	afterUp := failedAfter(attempts, up)
	for _, a := range afterUp {
		t.Errorf("transaction %d failed %s after the server was up (it took %s): %v",
			a.id, a.ended.Sub(up).Round(time.Millisecond), a.took.Round(time.Millisecond), a.err)
	}

	longest := checkTimes(t, attempts, opTimeout)
	tb := newTable(fault)
	reconcile(t, db, tb, attempts)
	tb.note("%d committed before the fault", before)
	if pool.fill {
		tb.note("%d connections open before it", openBefore)
	}
	tb.note("faultdb %v took %s", ops, down.Round(time.Millisecond))
	tb.note("failed after the server was up: %d", len(afterUp))
	tb.note("dead connections discarded at checkout: %d", events.dead.Load()-deadBefore)
	tb.note("every worker committed %d again within %s", commitsEach, recovery.Round(time.Millisecond))
	tb.note("longest transaction %s", longest.Round(time.Millisecond))
	tb.log(t)
	if tb.failed["other"] > 0 {
		t.Errorf("%d transactions failed with errors of no known class", tb.failed["other"])
	}
}

// fillPool opens n connections: n transactions each hold one until all n
// do, then end. The pool keeps them idle (MaxIdleConns permitting).
func fillPool(t *testing.T, m *session.Manager, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		holding int
		all     = make(chan struct{}) // closed once n hold a connection
		wg      sync.WaitGroup
		errs    = make(chan error, n)
	)
	wg.Add(n)
	for range n {
		go func() {
			defer wg.Done()
			errs <- m.Tx(ctx, func(ctx context.Context) error {
				mu.Lock()
				if holding++; holding == n {
					close(all)
				}
				mu.Unlock()
				select {
				case <-all:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("filling the pool with %d connections: %v", n, err)
		}
	}
}
