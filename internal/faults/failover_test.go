package faults_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/session"
)

// failoverTimeout is each transaction's ctx in the failover test: long
// enough to ride out a failover that takes a few seconds, short enough
// that a hung call shows.
const failoverTimeout = 5 * time.Second

// TestPostgresFailover kills a PostgreSQL primary under 32 writers and
// promotes its synchronous standby, as a failover manager would: the
// engine, given both servers in one DSN with
// target_session_attrs=read-write, writes to the standby once it is
// promoted, without a restart. Every transaction reported committed is on
// the new primary (the synchronous standby had flushed every commit
// before the primary answered it); every failure is a ctx error,
// ErrAmbiguousCommit or a lost connection, within the transaction's
// deadline.
func TestPostgresFailover(t *testing.T) {
	s := begin(t)
	env := s.up(t, groupPGHA)
	dsn1, dsn2 := env["ENGINEKIT_FAULT_PG_HA1_DSN"], env["ENGINEKIT_FAULT_PG_HA2_DSN"]
	if dsn1 == "" || dsn2 == "" {
		t.Fatalf("faultdb up %s named no DSNs: %v", groupPGHA, env)
	}
	port1, port2 := pgPort(t, dsn1), pgPort(t, dsn2)
	both := severalHosts(t, dsn1, dsn2) + "&target_session_attrs=read-write"

	primary := direct(t, "postgres", dsn1)
	createTables(t, primary)
	var syncState string
	if err := primary.QueryRow("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg-ha2'").Scan(&syncState); err != nil || syncState != "sync" {
		t.Fatalf("pg-ha2 is not the synchronous standby of pg-ha1: %q, %v", syncState, err)
	}

	e := openEngine(t, dbfx.Config{DSN: both, MaxOpenConns: busy.open, AcquireTimeout: 5 * time.Second,
		ConnectTimeout: 10 * time.Second})
	m := e.Sessions()
	serverPort := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), failoverTimeout)
		defer cancel()
		var port string
		err := m.Tx(ctx, func(ctx context.Context) error {
			return m.Q(ctx).GetContext(ctx, &port, "SELECT inet_server_port()::text")
		})
		return port, err
	}
	if p, err := serverPort(); err != nil || p != port1 {
		t.Fatalf("before the failover the engine writes on port %q (%v); want pg-ha1's, %s", p, err, port1)
	}

	w := startLoad(m, load{workers: restartWorkers, timeout: failoverTimeout, backoff: busy.backoff})
	t.Cleanup(func() { w.finish() })
	if err := w.wait(30*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Fatalf("before the failover, every worker should commit %d transactions: %v", commitsEach, err)
	}

	// When pg-ha2 leaves recovery, as seen from a connection of its own.
	standby := direct(t, "postgres", dsn2)
	promotedAt := make(chan time.Time, 1)
	stopWatch := make(chan struct{})
	go func() {
		for {
			var inRecovery bool
			if err := standby.QueryRow("SELECT pg_is_in_recovery()").Scan(&inRecovery); err == nil && !inRecovery {
				promotedAt <- time.Now()
				return
			}
			tm := time.NewTimer(5 * time.Millisecond)
			select {
			case <-tm.C:
			case <-stopWatch:
				tm.Stop()
				close(promotedAt)
				return
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stopWatch:
		default:
			close(stopWatch)
		}
	})

	killTook := s.crash(t, pgHA1)
	down := time.Now()
	promoteTook := s.mustCtl(t, "promote", pgHA2)
	close(stopWatch)
	promoted, ok := <-promotedAt
	if !ok {
		t.Fatal("pg-ha2 was never seen out of recovery")
	}

	w.newEpoch()
	if err := w.wait(30*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Errorf("after the failover, every worker should commit %d transactions again: %v", commitsEach, err)
	}
	attempts := w.finish()
	if p, err := serverPort(); err != nil || p != port2 {
		t.Errorf("after the failover the engine writes on port %q (%v); want pg-ha2's, %s", p, err, port2)
	}

	// Commits that returned before kill-one did were made on pg-ha1, those
	// after on pg-ha2 (pg-ha1 answers nothing once kill-one has returned,
	// pg-ha2 nothing but reads until it is promoted). The last on pg-ha1
	// is within a few milliseconds of the kill (32 writers commit about
	// every 10ms between them): the outage is counted from it.
	lastOld, firstNew := outage(attempts, down)
	if firstNew.IsZero() {
		t.Fatal("no transaction committed after the failover")
	}

	longest := checkTimes(t, attempts, failoverTimeout+time.Second)
	tb := newTable("pg failover to a synchronous standby")
	reconcile(t, direct(t, "postgres", dsn2), tb, attempts)
	for c, n := range tb.failed {
		if !(strings.HasPrefix(c, "ctx.") || strings.HasPrefix(c, "ConnLost[")) {
			t.Errorf("%d transactions failed with %s (e.g. %s): want ctx errors, ErrAmbiguousCommit or a lost connection",
				n, c, tb.examples[c])
		}
	}
	for _, a := range attempts {
		if a.err != nil && !errors.Is(a.err, context.DeadlineExceeded) && !errors.Is(a.err, session.ErrAmbiguousCommit) &&
			!errors.Is(a.err, session.ErrConnLost) {
			t.Errorf("transaction %d failed with %v: not session.ErrConnLost", a.id, a.err)
		}
	}
	if tb.lost > 0 || tb.phantom > 0 || tb.partial > 0 {
		t.Errorf("lost %d, phantom %d, partial %d: want none", tb.lost, tb.phantom, tb.partial)
	}
	recovery := firstNew.Sub(lastOld)
	tb.note("writes resumed %.2fs after the kill (last commit on pg-ha1 to the first on pg-ha2), %s after pg-ha2 left recovery",
		recovery.Seconds(), firstNew.Sub(promoted).Round(time.Millisecond))
	tb.note("faultdb kill-one took %s, promote %s", killTook.Round(time.Millisecond), promoteTook.Round(time.Millisecond))
	tb.note("longest transaction %s (deadline %s)", longest.Round(time.Millisecond), failoverTimeout)
	tb.log(t)
	if after := firstNew.Sub(promoted); after > 2*time.Second {
		t.Errorf("writes resumed %s after pg-ha2 was promoted: want within a second or so", after)
	}
}

// pgPort is the port of a postgres:// DSN.
func pgPort(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// severalHosts is one postgres:// DSN naming the hosts of dsns, each with
// its port, in order, with the first's user, database and parameters.
func severalHosts(t *testing.T, dsns ...string) string {
	t.Helper()
	var hosts []string
	for _, d := range dsns {
		u, err := url.Parse(d)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, u.Host)
	}
	u, err := url.Parse(dsns[0])
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "HOSTS"
	return strings.Replace(u.String(), "HOSTS", strings.Join(hosts, ","), 1)
}
