package faults_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

func TestPostgresStatementCacheRestart(t *testing.T) {
	statementCacheRestart(t, "pg statement cache restart", "postgres")
}

func TestMariaDBStatementCacheRestart(t *testing.T) {
	statementCacheRestart(t, "mariadb statement cache restart", "mysql")
}

// prepareCount counts the statements prepared on connections.
type prepareCount struct{ n atomic.Int64 }

func (p *prepareCount) Query(_ context.Context, e monitor.QueryEvent) {
	if e.Op == monitor.OpPrepare && e.Err == nil {
		p.n.Add(1)
	}
}

func (p *prepareCount) Tx(context.Context, monitor.TxEvent) {}

// statementCacheRestart runs cached prepared statements (session.Manager.
// Prepared) from 8 goroutines, in write transactions and on the pool,
// while the server restarts. The same engine commits again afterwards:
// database/sql prepares the cached statements anew on the new connections,
// and the cache keeps the same statements. Every outcome is reconciled
// with the database.
func statementCacheRestart(t *testing.T, fault, driverName string) {
	s := begin(t)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)
	p := &prepareCount{}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	e, err := dbfx.Open(ctx, dbfx.Config{Driver: driverName, DSN: dsn, MaxOpenConns: 8,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second}, fxtest.WithDrivers(), dbfx.WithMonitor(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fxtest.RequireNoLeaks(t, e)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	m := e.Sessions()

	const workers, commitsEach = 8, 5
	var (
		mu           sync.Mutex
		attempts     []attempt
		since        = make([]int, workers) // commits read back per worker since the last epoch
		readFailures int                    // reads on the pool that failed after their commit
		stop         = make(chan struct{})
		wg           sync.WaitGroup
	)
	run := func(g int) {
		defer wg.Done()
		for seq := int64(1); ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			id := int64(g+1)*1_000_000 + seq
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			begun := time.Now()
			err := preparedWrite(ctx, m, id)
			took := time.Since(begun)
			readErr := err
			if err == nil {
				readErr = preparedRead(ctx, m, id)
			}
			cancel()
			mu.Lock()
			attempts = append(attempts, attempt{id: id, err: err, took: took})
			if readErr == nil {
				since[g]++
			} else if err == nil {
				readFailures++
			}
			mu.Unlock()
			if readErr != nil {
				time.Sleep(10 * time.Millisecond) // while the server is down every attempt fails at once
			}
		}
	}
	committedEach := func(n int) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range since {
			if c < n {
				return false
			}
		}
		return true
	}
	waitFor := func(d time.Duration, cond func() bool) error {
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				return fmt.Errorf("not within %s", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	finish := func() []attempt {
		mu.Lock()
		select {
		case <-stop:
		default:
			close(stop)
		}
		mu.Unlock()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return append([]attempt(nil), attempts...)
	}
	wg.Add(workers)
	for g := range workers {
		go run(g)
	}
	t.Cleanup(func() { finish() })
	if err := waitFor(30*time.Second, func() bool { return committedEach(commitsEach) }); err != nil {
		t.Fatalf("before the restart, every worker should commit %d transactions: %v", commitsEach, err)
	}
	cached, prepared := m.Stats().Statements, p.n.Load()

	down := s.mustCtl(t, "restart", serverOf(driverName))

	mu.Lock()
	clear(since)
	mu.Unlock()
	recovered := time.Now()
	if err := waitFor(30*time.Second, func() bool { return committedEach(commitsEach) }); err != nil {
		t.Errorf("after the restart, every worker should commit %d transactions again: %v", commitsEach, err)
	}
	recovery := time.Since(recovered)
	all := finish()

	if got := m.Stats().Statements; got != cached {
		t.Errorf("%d statements cached after the restart, %d before: want the same", got, cached)
	}
	reprepared := p.n.Load() - prepared
	if reprepared == 0 {
		t.Error("no statement was prepared again after the restart")
	}
	checkTimes(t, all, opTimeout)
	tb := newTable(fault)
	reconcile(t, db, tb, all)
	tb.note("faultdb restart took %s", down.Round(time.Millisecond))
	tb.note("every worker committed %d again within %s", commitsEach, recovery.Round(time.Millisecond))
	tb.note("%d statements cached, %d prepares on connections after the restart", cached, reprepared)
	tb.note("%d reads of a commit failed (during the restart)", readFailures)
	tb.log(t)
}

// preparedWrite inserts id into fa and fb in one transaction, through
// cached prepared statements, and reads its own write in between.
func preparedWrite(ctx context.Context, m *session.Manager, id int64) error {
	return m.Tx(ctx, func(ctx context.Context) error {
		q := m.Prepared(ctx)
		if _, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fa (id) VALUES (?)"), id); err != nil {
			return err
		}
		var n int
		if err := q.GetContext(ctx, &n, m.Rebind("SELECT COUNT(*) FROM fa WHERE id = ?"), id); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("the transaction does not see its own write of %d", id)
		}
		_, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fb (id) VALUES (?)"), id)
		return err
	}, session.Label("fault"))
}

// preparedRead reads id back on the pool, through a cached statement.
func preparedRead(ctx context.Context, m *session.Manager, id int64) error {
	var n int
	if err := m.Prepared(ctx).GetContext(ctx, &n, m.Rebind("SELECT COUNT(*) FROM fb WHERE id = ?"), id); err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("committed %d is not in fb", id)
	}
	return nil
}
