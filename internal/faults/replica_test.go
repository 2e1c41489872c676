package faults_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/session"
)

// healthInterval is the replica test's Config.HealthInterval.
const healthInterval = 200 * time.Millisecond

// TestPostgresReplica routes read-only scopes to a streaming replica, then
// stops and starts it under a steady load of reads.
func TestPostgresReplica(t *testing.T) {
	s := begin(t)
	dsn := s.database(t, "postgres")
	replicaDSN := withPGDatabase(t, s.replica, pgDatabaseName(t, dsn)) // the primary's, replayed
	primary := direct(t, "postgres", dsn)
	if _, err := primary.Exec("CREATE TABLE load (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	waitReplayed(t, replicaDSN)

	e := openEngine(t, dbfx.Config{DSN: dsn, Replicas: []string{replicaDSN}, HealthInterval: healthInterval,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second})
	m := e.Sessions()
	inRecovery := func(ctx context.Context, scope func(context.Context, func(context.Context) error, ...session.TxOption) error, opts ...session.TxOption) (bool, error) {
		var b bool
		err := scope(ctx, func(ctx context.Context) error {
			return m.Q(ctx).GetContext(ctx, &b, "SELECT pg_is_in_recovery()")
		}, opts...)
		return b, err
	}
	// readOnce runs one read-only scope.
	readOnce := func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		return inRecovery(ctx, m.ReadOnly)
	}
	// check runs n scopes and wants each to say pg_is_in_recovery() = want.
	check := func(what string, want bool, n int, scope func(context.Context, func(context.Context) error, ...session.TxOption) error, opts ...session.TxOption) {
		t.Helper()
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			got, err := inRecovery(ctx, scope, opts...)
			cancel()
			if err != nil || got != want {
				t.Fatalf("%s: pg_is_in_recovery() = %v, %v; want %v", what, got, err, want)
			}
		}
	}
	check("read-only scope", true, 20, m.ReadOnly)
	check("transaction scope", false, 5, m.Tx)
	check("SERIALIZABLE read-only scope", false, 5, m.ReadOnly, session.Isolation(sql.LevelSerializable))

	replica := func() dbfx.ReplicaHealth {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h := e.Health(ctx)
		if len(h.Replicas) != 1 {
			t.Fatalf("Health reports %d replicas, want 1: %+v", len(h.Replicas), h)
		}
		for _, r := range h.Replicas {
			return r
		}
		panic("unreachable")
	}
	if r := replica(); r.Status != dbfx.StatusOK || r.Lag < 0 {
		t.Fatalf("replica at the start: %+v", r)
	}

	// Lag under write load: reported, never negative.
	maxLag, lagSamples := writeLoad(t, primary, replica)

	// Reads from four goroutines, from now to the end.
	rd := startReaders(m, 4)
	t.Cleanup(func() { rd.finish() })

	// The replica goes down: reads go to the primary.
	stopTook := s.mustCtl(t, "stop-one", pgReplica)
	stopped := time.Now()
	pollUntil(t, 5*time.Second, "Health reports the replica down", func() bool {
		return replica().Status == dbfx.StatusDown
	})
	downIn := time.Since(stopped)
	pollUntil(t, 5*time.Second, "reads are served by the primary", func() bool {
		got, err := readOnce()
		return err == nil && !got
	})
	fallbackIn := time.Since(stopped)
	if r := replica(); r.Error == "" {
		t.Errorf("a replica down should say why: %+v", r)
	}
	check("read-only scope, replica down", false, 20, m.ReadOnly)
	if limit := healthInterval + time.Second; downIn > limit {
		t.Errorf("the replica was reported down %s after it stopped, want within about one health interval (%s)", downIn, healthInterval)
	}

	// Back up: reads return to it.
	s.mustCtl(t, "start-one", pgReplica)
	started := time.Now()
	pollUntil(t, 10*time.Second, "Health reports the replica up", func() bool {
		return replica().Status == dbfx.StatusOK
	})
	upIn := time.Since(started)
	pollUntil(t, 10*time.Second, "reads are served by the replica again", func() bool {
		got, err := readOnce()
		return err == nil && got
	})
	backIn := time.Since(started)
	check("read-only scope, replica back", true, 20, m.ReadOnly)
	if r := replica(); r.Lag < 0 {
		t.Errorf("replica lag %s", r.Lag)
	}

	reads := rd.finish()
	tb := newTable("pg replica stop/start")
	var byReplica, byPrimary int
	for _, r := range reads {
		tb.add(r.err)
		switch {
		case r.err != nil:
		case r.replica:
			byReplica++
		default:
			byPrimary++
		}
	}
	if byPrimary == 0 || byReplica == 0 {
		t.Errorf("reads: %d by the replica, %d by the primary; want both", byReplica, byPrimary)
	}
	tb.note("reads by the replica %d, by the primary %d", byReplica, byPrimary)
	tb.note("replica stopped (stop-one took %s): reported down %s later, reads on the primary %s later (HealthInterval %s)",
		stopTook.Round(time.Millisecond), downIn.Round(time.Millisecond), fallbackIn.Round(time.Millisecond), healthInterval)
	tb.note("restarted replica reported up after %s, reads on it after %s",
		upIn.Round(time.Millisecond), backIn.Round(time.Millisecond))
	tb.note("lag under write load: max %s over %d checks", maxLag, lagSamples)
	tb.log(t)
	if n := tb.failures(); n > 0 {
		t.Logf("%d of %d read-only scopes failed while the replica went down and up", n, tb.attempted)
	}
}

// waitReplayed waits until the replica has replayed the test's CREATE
// DATABASE and its tables: it answers a query on the database's table.
func waitReplayed(t *testing.T, replicaDSN string) {
	t.Helper()
	db := direct(t, "postgres", replicaDSN)
	pollUntil(t, 30*time.Second, "the replica has the test's database", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var n int
		return db.QueryRowContext(ctx, "SELECT COUNT(*) FROM load").Scan(&n) == nil
	})
	db.Close()
}

// writeLoad inserts rows on the primary for a second, sampling the
// replica's lag as Health reports it; it returns the largest.
func writeLoad(t *testing.T, primary *sql.DB, replica func() dbfx.ReplicaHealth) (time.Duration, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if _, err := primary.ExecContext(ctx, "INSERT INTO load (v) SELECT repeat('x', 200) FROM generate_series(1, 500)"); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var maxLag time.Duration
	samples := 0
	tick := time.NewTicker(healthInterval / 2)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		r := replica()
		if r.Status != dbfx.StatusOK {
			t.Errorf("replica under write load: %+v", r)
		}
		if r.Lag < 0 {
			t.Errorf("replica lag %s", r.Lag)
		}
		maxLag = max(maxLag, r.Lag)
		samples++
	}
	if err := <-done; err != nil {
		t.Fatalf("write load: %v", err)
	}
	return maxLag, samples
}

// pollUntil checks cond every 10ms until it holds, at most limit. There
// is no event for what it waits for (a health check's result, say).
func pollUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	begun := time.Now()
	deadline := begun.Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what)
		}
		tm := time.NewTimer(10 * time.Millisecond)
		<-tm.C
	}
}

// read is one read-only scope of the readers.
type read struct {
	replica bool // pg_is_in_recovery() was true
	err     error
}

// readers run read-only scopes from n goroutines until finished.
type readers struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	mu    sync.Mutex
	reads []read
}

func startReaders(m *session.Manager, n int) *readers {
	rd := &readers{stop: make(chan struct{})}
	rd.wg.Add(n)
	for range n {
		go func() {
			defer rd.wg.Done()
			for {
				select {
				case <-rd.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				var b bool
				err := m.ReadOnly(ctx, func(ctx context.Context) error {
					return m.Q(ctx).GetContext(ctx, &b, "SELECT pg_is_in_recovery()")
				})
				cancel()
				rd.mu.Lock()
				rd.reads = append(rd.reads, read{replica: b && err == nil, err: err})
				rd.mu.Unlock()
				if err != nil {
					tm := time.NewTimer(10 * time.Millisecond)
					select {
					case <-tm.C:
					case <-rd.stop:
						tm.Stop()
						return
					}
				}
			}
		}()
	}
	return rd
}

func (rd *readers) finish() []read {
	rd.once.Do(func() { close(rd.stop) })
	rd.wg.Wait()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.reads
}
