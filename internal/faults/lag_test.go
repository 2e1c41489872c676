package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/session"
)

// maxLag is the lag test's Config.MaxReplicaLag.
const maxLag = time.Second

// TestPostgresReplicaLag pauses the replica's replay (pg_wal_replay_pause)
// while the primary writes: with Config.MaxReplicaLag, reads leave the
// lagging replica for the primary (and see the write) once a health check
// finds it too far behind, Health reports it, and once replay resumes and
// it caught up, reads return to it. An idle primary does not make an up to
// date replica look behind. Then session's ReadYourWrites: a request's
// reads after its write go to the primary while the replica has not
// replayed it (others still read there, stale), and back to the replica
// once it has.
func TestPostgresReplicaLag(t *testing.T) {
	s := begin(t)
	dsn := s.database(t, "postgres")
	replicaDSN := withPGDatabase(t, s.replica, pgDatabaseName(t, dsn))
	primary := direct(t, "postgres", dsn)
	if _, err := primary.Exec("CREATE TABLE kv (k INT PRIMARY KEY, v INT NOT NULL); INSERT INTO kv VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	standby := direct(t, "postgres", replicaDSN)
	replayed := func(want int) func() bool {
		return func() bool {
			var v int
			return standby.QueryRow("SELECT v FROM kv WHERE k = 1").Scan(&v) == nil && v == want
		}
	}
	pollUntil(t, 30*time.Second, "the replica has table kv", replayed(0))
	// Whatever happens, the replica replays again after the test.
	t.Cleanup(func() {
		db := direct(t, "postgres", replicaDSN)
		if _, err := db.Exec("SELECT pg_wal_replay_resume()"); err != nil {
			t.Errorf("resume the replica's replay: %v", err)
		}
	})
	pause := func() {
		t.Helper()
		if _, err := standby.Exec("SELECT pg_wal_replay_pause()"); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, 10*time.Second, "the replica's replay is paused", func() bool {
			var st string
			return standby.QueryRow("SELECT pg_get_wal_replay_pause_state()").Scan(&st) == nil && st == "paused"
		})
	}
	resume := func() {
		t.Helper()
		if _, err := standby.Exec("SELECT pg_wal_replay_resume()"); err != nil {
			t.Fatal(err)
		}
	}
	write := func(v int) time.Time {
		t.Helper()
		if _, err := primary.Exec("UPDATE kv SET v = $1 WHERE k = 1", v); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}

	tb := newTable("pg replica lag (replay paused), MaxReplicaLag 1s, HealthInterval 200ms")
	e := openEngine(t, dbfx.Config{DSN: dsn, Replicas: []string{replicaDSN}, HealthInterval: healthInterval,
		MaxReplicaLag: maxLag, AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second})
	m := e.Sessions()
	// read runs a read-only scope under ctx: where it ran, and v.
	read := func(ctx context.Context, m *session.Manager) (onReplica bool, v int, err error) {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		err = m.ReadOnly(ctx, func(ctx context.Context) error {
			return m.Q(ctx).QueryRowxContext(ctx, "SELECT pg_is_in_recovery(), v FROM kv WHERE k = 1").Scan(&onReplica, &v)
		})
		tb.add(err)
		return onReplica, v, err
	}
	replicaHealth := func(e *dbfx.Engine) dbfx.ReplicaHealth {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h := e.Health(ctx)
		if len(h.Replicas) != 1 {
			t.Fatalf("Health reports %d replicas, want 1", len(h.Replicas))
		}
		return h.Replicas[0]
	}
	want := func(what string, onReplica bool, v int, gotReplica bool, got int, err error) {
		t.Helper()
		if err != nil || gotReplica != onReplica || got != v {
			t.Fatalf("%s: on the replica %v, v = %d, %v; want on the replica %v, v = %d", what, gotReplica, got, err, onReplica, v)
		}
	}

	// An idle primary: the last transaction the replica replayed is older
	// than MaxReplicaLag, yet it has replayed everything: not lagging.
	pollUntil(t, 10*time.Second, "the replica's last replayed transaction is older than MaxReplicaLag", func() bool {
		var age float64
		return standby.QueryRow("SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())").Scan(&age) == nil &&
			age > (maxLag+maxLag/2).Seconds()
	})
	// Watched over three health checks.
	var idleLag time.Duration
	for idleSince := time.Now(); time.Since(idleSince) < 3*healthInterval; {
		r := replicaHealth(e)
		if r.Status != dbfx.StatusOK || r.Lagging || r.Lag >= maxLag {
			t.Fatalf("an up to date replica of an idle primary: %+v; want ok, not lagging", r)
		}
		idleLag = max(idleLag, r.Lag)
		tm := time.NewTimer(10 * time.Millisecond)
		<-tm.C
	}
	for range 5 {
		gotReplica, got, err := read(context.Background(), m)
		want("idle primary", true, 0, gotReplica, got, err)
	}

	// Replay paused, then a write: the replica falls behind.
	pause()
	wrote := write(1)
	pollUntil(t, 10*time.Second, "Health reports the replica lagging", func() bool {
		r := replicaHealth(e)
		return r.Lagging && r.Status == dbfx.StatusDegraded && r.Lag > maxLag
	})
	laggingIn := time.Since(wrote)
	r := replicaHealth(e)
	if ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second); e.Health(ctx).Status != dbfx.StatusDegraded {
		cancel()
		t.Errorf("an engine whose replica lags should be degraded")
	} else {
		cancel()
	}
	if replayed(1)() {
		t.Fatal("the paused replica replayed the write")
	}
	for range 10 {
		gotReplica, got, err := read(context.Background(), m)
		want("replica lagging", false, 1, gotReplica, got, err)
	}

	// Replay resumes: reads return to the replica once it caught up.
	resume()
	resumed := time.Now()
	pollUntil(t, 10*time.Second, "Health reports the replica caught up", func() bool {
		r := replicaHealth(e)
		return !r.Lagging && r.Status == dbfx.StatusOK
	})
	caughtUpIn := time.Since(resumed)
	pollUntil(t, 10*time.Second, "reads are served by the replica again", func() bool {
		gotReplica, got, err := read(context.Background(), m)
		return err == nil && gotReplica && got == 1
	})
	backIn := time.Since(resumed)
	for range 10 {
		gotReplica, got, err := read(context.Background(), m)
		want("replica caught up", true, 1, gotReplica, got, err)
	}

	// Read-your-writes, on an engine that lets a replica serve however far
	// behind it is (no MaxReplicaLag): other reads stay on the stale
	// replica, the writer's go to the primary.
	e2 := openEngine(t, dbfx.Config{DSN: dsn, Replicas: []string{replicaDSN}, HealthInterval: healthInterval,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second})
	m2 := e2.Sessions()
	pause()
	ctx := context.Background()
	if err := m2.Tx(ctx, func(ctx context.Context) error {
		_, err := m2.Q(ctx).ExecContext(ctx, "UPDATE kv SET v = 2 WHERE k = 1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	mine := m2.ReadYourWrites(ctx)
	for range 5 {
		gotReplica, got, err := read(ctx, m2)
		want("another request, replica paused", true, 1, gotReplica, got, err)
		gotReplica, got, err = read(mine, m2)
		want("ReadYourWrites, replica paused", false, 2, gotReplica, got, err)
	}
	if m.ReadYourWrites(ctx) == ctx {
		t.Error("ReadYourWrites of an engine with replicas returned ctx unmarked")
	}
	resume()
	resumed2 := time.Now()
	pollUntil(t, 10*time.Second, "ReadYourWrites reads go to the replica once it replayed the write", func() bool {
		gotReplica, got, err := read(mine, m2)
		return err == nil && gotReplica && got == 2
	})
	rywBackIn := time.Since(resumed2)
	// Called inside a transaction, whose writes are not committed yet: the
	// primary for good. Its read-only scopes run outside the transaction
	// (NotSupported suspends it), where they choose their pool.
	if err := m2.Tx(ctx, func(ctx context.Context) error {
		marked := m2.ReadYourWrites(ctx)
		return m2.Tx(marked, func(ctx context.Context) error {
			gotReplica, got, err := read(ctx, m2)
			want("ReadYourWrites called in a transaction", false, 2, gotReplica, got, err)
			return nil
		}, session.Propagation(session.NotSupported))
	}); err != nil {
		t.Fatal(err)
	}
	if err := m2.Tx(ctx, func(ctx context.Context) error {
		return m2.Tx(ctx, func(ctx context.Context) error {
			gotReplica, got, err := read(ctx, m2)
			want("unmarked, in a suspended transaction", true, 2, gotReplica, got, err)
			return nil
		}, session.Propagation(session.NotSupported))
	}); err != nil {
		t.Fatal(err)
	}

	tb.note("idle primary: replica's last replayed transaction over %.1fs old, reported lag at most %s (not lagging)", (maxLag + maxLag/2).Seconds(), idleLag)
	tb.note("replay paused and a write: lagging reported %s after the write (lag %s), reads on the primary saw the write",
		laggingIn.Round(time.Millisecond), r.Lag.Round(time.Millisecond))
	tb.note("replay resumed: caught up %s later, reads on the replica %s later", caughtUpIn.Round(time.Millisecond), backIn.Round(time.Millisecond))
	tb.note("ReadYourWrites: the writer read its write on the primary while others read the stale replica; its reads went back to the replica %s after replay resumed",
		rywBackIn.Round(time.Millisecond))
	tb.log(t)
	if tb.failures() > 0 {
		t.Errorf("%d reads failed", tb.failures())
	}
}
