package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// groupGalera: galera1, galera2 and galera3, a MariaDB Galera cluster
// (faultdb up DIR galera), each node with database test.
const groupGalera = "galera"

var galeraNodes = [3]string{"galera1", "galera2", "galera3"}

// TestGalera starts the cluster once for its faults (starting it takes
// one to two minutes on this machine, most of it the joiners' rsync state
// transfers): a statement past its deadline, writers on every node at
// once, then a node killed under load.
func TestGalera(t *testing.T) {
	s := begin(t)
	env := s.up(t, groupGalera)
	var dsns [3]string
	for i := range dsns {
		key := fmt.Sprintf("ENGINEKIT_FAULT_GALERA%d_DSN", i+1)
		if dsns[i] = env[key]; dsns[i] == "" {
			t.Fatalf("faultdb up %s named no %s: %v", groupGalera, key, env)
		}
	}
	t.Run("cancel", func(t *testing.T) { galeraCancel(t, dsns) })
	t.Run("conflicts", func(t *testing.T) { galeraConflicts(t, dsns) })
	t.Run("node not ready", func(t *testing.T) { galeraNotReady(t, dsns) })
	t.Run("node loss", func(t *testing.T) { galeraNodeLoss(t, s, dsns) })
}

// galeraNotReady: a node cut off from the others (gmcast.isolate) keeps
// running but leaves the cluster's primary component: it still accepts
// connections, and refuses every statement with 1047 until it is back.
// An engine whose DSN names that node and that holds a connection to it
// loses that connection at its next statement (ErrConnLost, the
// connection discarded), and its next transaction commits on another
// node; an engine opened meanwhile passes the node over at connect. The
// node is then let back, and is Synced in a cluster of 3 again for the
// faults that follow.
func galeraNotReady(t *testing.T, dsns [3]string) {
	galeraDDL(t, dsns, "nr", "CREATE TABLE nr (id BIGINT PRIMARY KEY)")
	addr := func(dsn string) string { return galeraAddr(t, dsn) }
	cfg := dbfx.Config{DSN: dsns[0], FailoverAddrs: []string{addr(dsns[1]), addr(dsns[2])},
		MaxOpenConns: 1, ConnectTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	write := func(e *dbfx.Engine, id int) (port string, err error) {
		m := e.Sessions()
		err = m.Tx(ctx, func(ctx context.Context) error {
			if _, err := m.Q(ctx).ExecContext(ctx, "INSERT INTO nr (id) VALUES (?)", id); err != nil {
				return err
			}
			return m.Q(ctx).GetContext(ctx, &port, "SELECT CAST(@@port AS CHAR)")
		})
		return port, err
	}
	onNode1 := func(port string) bool { return strings.HasSuffix(addr(dsns[0]), ":"+port) }
	before := openEngine(t, cfg)
	if port, err := write(before, 1); err != nil || !onNode1(port) {
		t.Fatalf("a write before the cut: on port %s, %v; want galera1's", port, err)
	}

	node1 := direct(t, "mysql", dsns[0]) // no wsrep_sync_wait: a node cut off refuses it
	status := func(name string) string {
		var k, v string
		if err := node1.QueryRowContext(ctx, "SHOW STATUS LIKE '"+name+"'").Scan(&k, &v); err != nil {
			return "error: " + err.Error()
		}
		return v
	}
	isolate := func(on int) error {
		_, err := node1.ExecContext(context.Background(), fmt.Sprintf("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=%d'", on))
		return err
	}
	if err := isolate(1); err != nil {
		t.Fatal(err)
	}
	back := false
	defer func() {
		if !back {
			_ = isolate(0)
		}
	}()
	pollUntil(t, time.Minute, "galera1 leaves the primary component (wsrep_ready OFF)", func() bool { return status("wsrep_ready") == "OFF" })
	var n int
	err := node1.QueryRowContext(ctx, "SELECT COUNT(*) FROM nr").Scan(&n)
	if me := (*mysql.MySQLError)(nil); !errors.As(err, &me) || me.Number != 1047 {
		t.Fatalf("a statement on galera1 cut off: %v; want error 1047", err)
	}

	// The engine opened before holds its one connection idle, to galera1:
	// a statement on it fails with ErrConnLost (1047), and the connection
	// is not used again.
	_, stmtErr := before.Sessions().Q(ctx).ExecContext(ctx, "INSERT INTO nr (id) VALUES (2)")
	if me := (*mysql.MySQLError)(nil); !errors.Is(stmtErr, session.ErrConnLost) || !errors.As(stmtErr, &me) || me.Number != 1047 {
		t.Fatalf("a statement on the engine's connection to galera1, cut off: %v; want ErrConnLost with error 1047", stmtErr)
	}
	port, err := write(before, 2)
	if err != nil || onNode1(port) {
		t.Fatalf("the next write of that engine: on port %s, %v; want another node", port, err)
	}
	t.Logf("galera1 cut off: the engine's statement failed with %v, then its write committed on port %s", stmtErr, port)
	after := openEngine(t, cfg)
	if port, err := write(after, 3); err != nil || onNode1(port) {
		t.Fatalf("a write by an engine opened while galera1 is cut off: on port %s, %v; want another node", port, err)
	}
	if err := galeraDirect(t, dsns[1]).QueryRowContext(ctx, "SELECT COUNT(*) FROM nr").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows on galera2: %d, %v; want 3", n, err)
	}

	if err := isolate(0); err != nil {
		t.Fatal(err)
	}
	back = true
	pollUntil(t, 2*time.Minute, "galera1 is Synced in a cluster of 3 again", func() bool {
		return status("wsrep_ready") == "ON" && status("wsrep_local_state_comment") == "Synced" && status("wsrep_cluster_size") == "3"
	})
	if err := galeraDirect(t, dsns[0]).QueryRowContext(ctx, "SELECT COUNT(*) FROM nr").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows on galera1 once back: %d, %v; want 3", n, err)
	}
}

// galeraAddr is the host:port of a node's DSN.
func galeraAddr(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Addr
}

// galeraDirect opens a pool on one node whose reads first wait until the
// node has applied every writeset the cluster had ordered when they were
// sent (wsrep_sync_wait=1): what it reads is the cluster's state.
func galeraDirect(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["wsrep_sync_wait"] = "1"
	return direct(t, "mysql", cfg.FormatDSN())
}

// galeraDDL runs each statement on the first node and returns once every
// node has it (DDL is replicated in total order, but another node may
// apply it a moment after the first returned).
func galeraDDL(t *testing.T, dsns [3]string, table string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := galeraDirect(t, dsns[0])
	for _, q := range stmts {
		if _, err := first.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, dsn := range dsns {
		db := galeraDirect(t, dsn)
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("table %s on %s: %v", table, dsn, err)
		}
	}
}

// conflictCounter is a monitor that counts Galera's conflicts: error 1213
// (a certification failure at COMMIT, or a local transaction aborted by
// a replicated one while it ran a statement) and the retries they led to.
type conflictCounter struct {
	atCommit, inStatement, retries atomic.Int64
}

func (c *conflictCounter) Query(_ context.Context, e monitor.QueryEvent) {
	var me *mysql.MySQLError
	if !errors.As(e.Err, &me) || me.Number != 1213 {
		return
	}
	if e.Op == monitor.OpCommit {
		c.atCommit.Add(1)
	} else {
		c.inStatement.Add(1)
	}
}

func (c *conflictCounter) Tx(_ context.Context, e monitor.TxEvent) {
	if e.Kind == monitor.TxRetry {
		c.retries.Add(1)
	}
}

// galeraConflicts: three engines, one per node, write the same rows at
// once: increments of three shared counters and inserts of keys that
// every writer inserts at about the same time. Galera certifies each
// transaction against those the other nodes committed meanwhile: the
// loser's COMMIT fails with 1213, which Manager.Tx retries. Every
// transaction reported committed is in the log table once, each counter
// equals the number of logged transactions that incremented it (none
// lost, none counted twice), on every node.
func galeraConflicts(t *testing.T, dsns [3]string) {
	galeraDDL(t, dsns, "gc",
		"CREATE TABLE gc (k INT PRIMARY KEY, n BIGINT NOT NULL)",
		"CREATE TABLE gl (id BIGINT PRIMARY KEY, node INT NOT NULL, hot INT NOT NULL, fresh INT NOT NULL)")

	const (
		perNode = 4  // writers per engine
		each    = 40 // transactions per writer
		hotKeys = 3
	)
	policy := session.RetryPolicy{MaxAttempts: 50, BaseDelay: 2 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	var counters [3]*conflictCounter
	var managers [3]*session.Manager
	for i, dsn := range dsns {
		counters[i] = &conflictCounter{}
		e := openEngine(t, dbfx.Config{Name: galeraNodes[i], DSN: dsn, MaxOpenConns: perNode + 2,
			ConnectTimeout: 10 * time.Second}, dbfx.WithMonitor(counters[i]))
		managers[i] = e.Sessions()
	}

	type outcome struct {
		id         int64
		node       int
		hot, fresh int
		attempts   int
		err        error
		took       time.Duration
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for node := range 3 {
		for w := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				m := managers[node]
				for seq := range each {
					o := outcome{id: int64((node*perNode+w+1)*1_000_000 + seq), node: node + 1,
						hot: seq % hotKeys, fresh: 1000 + seq}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					begun := time.Now()
					o.err = m.Tx(ctx, func(ctx context.Context) error {
						o.attempts++
						q := m.Q(ctx)
						if _, err := q.ExecContext(ctx, "INSERT INTO gl (id, node, hot, fresh) VALUES (?, ?, ?, ?)",
							o.id, o.node, o.hot, o.fresh); err != nil {
							return err
						}
						for _, k := range []int{o.hot, o.fresh} {
							if _, err := q.ExecContext(ctx,
								"INSERT INTO gc (k, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1", k); err != nil {
								return err
							}
						}
						return nil
					}, session.Retry(policy), session.Label("galera-conflict"))
					o.took = time.Since(begun)
					cancel()
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
				}
			}()
		}
	}
	begun := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(begun)

	tb := newTable("galera multi-primary conflicts")
	reported := map[int64]outcome{}
	retried, extraAttempts := 0, 0
	for _, o := range outcomes {
		tb.add(o.err)
		reported[o.id] = o
		if o.attempts > 1 {
			retried++
			extraAttempts += o.attempts - 1
		}
		if o.err != nil && !errors.Is(o.err, session.ErrAmbiguousCommit) {
			t.Errorf("transaction %d failed after %d attempts: %v", o.id, o.attempts, o.err)
		}
	}

	// The state of each node, read once it has applied everything.
	duplicated, lost, phantom := 0, 0, 0
	var states []string
	for i, dsn := range dsns {
		db := galeraDirect(t, dsn)
		logged := map[int64]bool{}
		want := map[int]int64{}
		rows, err := db.Query("SELECT id, hot, fresh FROM gl")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var hot, fresh int
			if err := rows.Scan(&id, &hot, &fresh); err != nil {
				t.Fatal(err)
			}
			logged[id] = true
			want[hot]++
			want[fresh]++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		got := map[int]int64{}
		rows, err = db.Query("SELECT k, n FROM gc")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k int
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				t.Fatal(err)
			}
			got[k] = n
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		for id, o := range reported {
			switch {
			case o.err == nil && !logged[id]:
				lost++
				t.Errorf("%s: transaction %d was reported committed but is not logged", galeraNodes[i], id)
			case o.err != nil && !errors.Is(o.err, session.ErrAmbiguousCommit) && logged[id]:
				phantom++
				t.Errorf("%s: transaction %d failed (%v) but is logged", galeraNodes[i], id, o.err)
			}
		}
		for id := range logged {
			if _, ok := reported[id]; !ok {
				t.Errorf("%s: id %d is logged but no writer ran it", galeraNodes[i], id)
			}
		}
		for k := range merge(want, got) {
			switch d := got[k] - want[k]; {
			case d > 0:
				duplicated += int(d)
				t.Errorf("%s: counter %d is %d, %d more than the logged transactions that incremented it", galeraNodes[i], k, got[k], d)
			case d < 0:
				lost += int(-d)
				t.Errorf("%s: counter %d is %d, %d less than the logged transactions that incremented it", galeraNodes[i], k, got[k], -d)
			}
		}
		var sum int64
		for _, n := range got {
			sum += n
		}
		states = append(states, fmt.Sprintf("%s %d logged, counters sum %d", galeraNodes[i], len(logged), sum))
	}
	tb.lost = lost
	tb.phantom = phantom

	var atCommit, inStatement, retries int64
	for _, c := range counters {
		atCommit += c.atCommit.Load()
		inStatement += c.inStatement.Load()
		retries += c.retries.Load()
	}
	var longest time.Duration
	for _, o := range outcomes {
		longest = max(longest, o.took)
	}
	tb.note("conflicts seen=%d (1213 at COMMIT %d, on a statement %d)", atCommit+inStatement, atCommit, inStatement)
	tb.note("retried=%d transactions (%d retries, %d by the monitor)", retried, extraAttempts, retries)
	tb.note("duplicated=%d", duplicated)
	tb.note("%d engines x %d writers x %d transactions in %.1fs, longest %s", len(dsns), perNode, each,
		elapsed.Seconds(), longest.Round(time.Millisecond))
	tb.note("every node: %s", strings.Join(states, "; "))
	tb.log(t)

	if atCommit+inStatement == 0 {
		t.Error("no conflict was seen: the writers did not overlap")
	}
	if int64(extraAttempts) != retries {
		t.Errorf("the writers ran %d attempts more than their transactions, the monitor saw %d retries", extraAttempts, retries)
	}
	if retried == 0 {
		t.Error("no transaction was retried")
	}
}

// merge returns the keys of a and b.
func merge(a, b map[int]int64) map[int]bool {
	out := map[int]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// galeraNodeLoss: one engine given all three nodes (the DSN's galera1,
// FailoverAddrs galera2 and galera3) writes from 16 workers; galera1 is
// killed (SIGKILL). The writers go on through galera2 without a restart;
// those caught on galera1 fail with a lost connection, a ctx error or
// ErrAmbiguousCommit, within their deadline. galera1 is started again
// under the load: it rejoins (IST) and is Synced in a cluster of 3, and
// holds every transaction reported committed.
func galeraNodeLoss(t *testing.T, s servers, dsns [3]string) {
	galeraDDL(t, dsns, "fb", "CREATE TABLE fa (id BIGINT PRIMARY KEY)", "CREATE TABLE fb (id BIGINT PRIMARY KEY)")
	addr := func(dsn string) string { return galeraAddr(t, dsn) }
	// Opened here rather than by openEngine: its Close is part of the
	// row (see below).
	cfg := dbfx.Config{DSN: dsns[0], FailoverAddrs: []string{addr(dsns[1]), addr(dsns[2])},
		MaxOpenConns: busy.open, AcquireTimeout: 5 * time.Second, ConnectTimeout: 5 * time.Second}
	octx, ocancel := context.WithTimeout(context.Background(), 60*time.Second)
	e, err := dbfx.Open(octx, cfg, fxtest.WithDrivers())
	ocancel()
	if err != nil {
		t.Fatal(err)
	}
	var closeErr error
	var closed sync.Once
	closeEngine := func() {
		closed.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			fxtest.RequireNoLeaks(t, e)
			closeErr = e.Close(ctx)
		})
	}
	t.Cleanup(closeEngine)
	m := e.Sessions()
	nodePort := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), failoverTimeout)
		defer cancel()
		var port string
		err := m.Tx(ctx, func(ctx context.Context) error {
			return m.Q(ctx).GetContext(ctx, &port, "SELECT CAST(@@port AS CHAR)")
		})
		return port, err
	}
	portOf := func(dsn string) string { a := addr(dsn); return a[strings.LastIndexByte(a, ':')+1:] }
	if p, err := nodePort(); err != nil || p != portOf(dsns[0]) {
		t.Fatalf("before the kill the engine writes on port %q (%v); want galera1's, %s", p, err, portOf(dsns[0]))
	}

	const workers = 16
	w := startLoad(m, load{workers: workers, timeout: failoverTimeout, backoff: busy.backoff})
	t.Cleanup(func() { w.finish() })
	if err := w.wait(60*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Fatalf("before the kill, every worker should commit %d transactions: %v", commitsEach, err)
	}

	killTook := s.crash(t, galeraNodes[0])
	down := time.Now()
	w.newEpoch()
	if err := w.wait(60*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Errorf("after the kill, every worker should commit %d transactions again: %v", commitsEach, err)
	}
	allBack := time.Since(down)
	if p, err := nodePort(); err != nil || p == portOf(dsns[0]) {
		t.Errorf("after the kill the engine writes on port %q (%v); want galera2's or galera3's", p, err)
	}

	// galera1 rejoins under the load.
	rejoinTook := s.mustCtl(t, "start-one", galeraNodes[0])
	w.newEpoch()
	if err := w.wait(60*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Errorf("after galera1 rejoined, every worker should commit %d transactions: %v", commitsEach, err)
	}
	attempts := w.finish()

	rejoined := galeraDirect(t, dsns[0])
	var size, state string
	if err := rejoined.QueryRow("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE'").Scan(&size); err != nil {
		t.Fatal(err)
	}
	if err := rejoined.QueryRow("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT'").Scan(&state); err != nil {
		t.Fatal(err)
	}
	if size != "3" || state != "Synced" {
		t.Errorf("galera1 after its restart: wsrep_cluster_size %s, wsrep_local_state_comment %s; want 3, Synced", size, state)
	}

	// The outage: from the last commit before the kill to the first after.
	lastOld, firstNew := outage(attempts, down)
	if firstNew.IsZero() {
		t.Fatal("no transaction committed after the kill")
	}

	longest := checkTimes(t, attempts, failoverTimeout+time.Second)
	tb := newTable("galera node loss")
	reconcile(t, galeraDirect(t, dsns[1]), tb, attempts)
	// The rejoined node holds the same.
	for _, table := range []string{"fa", "fb"} {
		on1, on2 := ids(t, rejoined, table), ids(t, galeraDirect(t, dsns[1]), table)
		if len(on1) != len(on2) {
			t.Errorf("table %s: %d ids on the rejoined galera1, %d on galera2", table, len(on1), len(on2))
		}
		for id := range on2 {
			if !on1[id] {
				t.Errorf("table %s: id %d is on galera2 but not on the rejoined galera1", table, id)
				break
			}
		}
	}
	for c, n := range tb.failed {
		if !(strings.HasPrefix(c, "ctx.") || strings.HasPrefix(c, "ConnLost[")) {
			t.Errorf("%d transactions failed with %s (e.g. %s): want ctx errors, ErrAmbiguousCommit or a lost connection",
				n, c, tb.examples[c])
		}
	}
	for _, a := range attempts {
		if a.err != nil && !errors.Is(a.err, context.DeadlineExceeded) && !errors.Is(a.err, session.ErrConnLost) {
			t.Errorf("transaction %d failed with %v: not session.ErrConnLost", a.id, a.err)
		}
	}
	if tb.lost > 0 || tb.phantom > 0 || tb.partial > 0 {
		t.Errorf("lost %d, phantom %d, partial %d: want none", tb.lost, tb.phantom, tb.partial)
	}
	tb.note("writes resumed %.2fs after the kill (last commit on galera1 to the first on another node), every worker committed again within %.2fs",
		firstNew.Sub(lastOld).Seconds(), allBack.Seconds())
	tb.note("faultdb kill-one took %s, start-one (rejoin, Synced, cluster of %s) %s", killTook.Round(time.Millisecond),
		size, rejoinTook.Round(time.Millisecond))
	tb.note("longest transaction %s (deadline %s)", longest.Round(time.Millisecond), failoverTimeout)
	// An idle connection to galera1 that no caller took again since the
	// kill (the pool reuses its newest idle connections first) may still
	// be in the pool: closing a connection whose server is gone is no
	// error (internal/connwrap), so Close returns nil.
	w.finish()
	closeEngine()
	if closeErr != nil {
		t.Errorf("Engine.Close: %v", closeErr)
	}
	tb.note("Engine.Close: %v", closeErr)
	tb.log(t)
}

// cancelRecorder keeps an engine's server-side cancels.
type cancelRecorder struct {
	monitor.Monitor
	mu      sync.Mutex
	cancels []monitor.PoolEvent
}

func (r *cancelRecorder) Pool(_ context.Context, e monitor.PoolEvent) {
	if e.Kind == monitor.PoolCancel {
		r.mu.Lock()
		r.cancels = append(r.cancels, e)
		r.mu.Unlock()
	}
}

func (r *cancelRecorder) first() (monitor.PoolEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cancels) == 0 {
		return monitor.PoolEvent{}, false
	}
	return r.cancels[0], true
}

// galeraCancel: a statement whose ctx ended, on a Galera node. dbfx/mysql
// sends KILL QUERY only once the cancel's connection has found, by
// IS_USED_LOCK, the lock the statement's connection took with GET_LOCK at
// connect. Some Galera versions refuse GET_LOCK (1235): there the cancel
// is reported as not attempted and the statement runs to its end. Where
// it is allowed (MariaDB 10.11.19, galera 26.4.23 here), user-level locks
// are each node's own, not replicated: another node does not see the
// lock, so a cancel that reached it would send nothing, and on the
// statement's own node the statement is stopped. Either way the caller
// gets its ctx error within about a second of its deadline and the engine
// goes on.
func galeraCancel(t *testing.T, dsns [3]string) {
	node1, node2 := galeraDirect(t, dsns[0]), galeraDirect(t, dsns[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := node1.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var got sql.NullInt64
	lockErr := held.QueryRowContext(ctx, "SELECT GET_LOCK('enginekit.galera.probe', 0)").Scan(&got)
	var me *mysql.MySQLError
	refused := errors.As(lockErr, &me) && me.Number == 1235
	switch {
	case refused:
	case lockErr != nil || got.Int64 != 1:
		t.Fatalf("GET_LOCK on galera1: %v, %v; want 1, or error 1235", got, lockErr)
	default:
		var holder sql.NullInt64
		if err := node2.QueryRowContext(ctx, "SELECT IS_USED_LOCK('enginekit.galera.probe')").Scan(&holder); err != nil {
			t.Fatal(err)
		}
		if holder.Valid {
			t.Fatalf("a lock taken on galera1 is held by connection %d on galera2: user-level locks are replicated, "+
				"and dbfx/mysql's check of the statement's server no longer holds", holder.Int64)
		}
	}

	rec := &cancelRecorder{Monitor: monitor.Nop()}
	e := openEngine(t, dbfx.Config{DSN: dsns[0], ConnectTimeout: 10 * time.Second}, dbfx.WithMonitor(rec))
	const sleep = "DO SLEEP(4) /* galera cancel */"
	sctx, scancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	begun := time.Now()
	_, stmtErr := e.DB().ExecContext(sctx, sleep)
	took := time.Since(begun)
	scancel()
	if !errors.Is(stmtErr, context.DeadlineExceeded) || took > 1500*time.Millisecond {
		t.Fatalf("a 4s statement with a 500ms deadline: %v after %s; want DeadlineExceeded within about a second", stmtErr, took)
	}
	pollUntil(t, 10*time.Second, "the cancel is reported", func() bool { _, ok := rec.first(); return ok })
	ev, _ := rec.first()
	running := func() int {
		var n int
		if err := node1.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = ?", sleep).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var outcome string
	if refused {
		if ev.Err == nil || !strings.Contains(ev.Err.Error(), "not attempted") || !strings.Contains(ev.Err.Error(), "GET_LOCK") {
			t.Errorf("the cancel where GET_LOCK is refused: %v; want it reported as not attempted", ev.Err)
		}
		if n := running(); n != 1 {
			t.Errorf("%d statements %q run on galera1 after their caller gave up; want 1 (not stopped on the server)", n, sleep)
		}
		outcome = fmt.Sprintf("GET_LOCK refused: cancel not attempted (%v), the statement ran on", ev.Err)
	} else {
		if ev.Err != nil {
			t.Errorf("the cancel on galera1, which allows GET_LOCK: %v; want KILL QUERY sent", ev.Err)
		}
		pollUntil(t, 3*time.Second, "the statement is gone from galera1", func() bool { return running() == 0 })
		outcome = fmt.Sprintf("GET_LOCK allowed (node-local: galera2 does not see galera1's lock): KILL QUERY sent in %s, "+
			"the statement stopped %s after it began", ev.Duration.Round(time.Millisecond), time.Since(begun).Round(time.Millisecond))
	}
	if err := e.Check(ctx); err != nil {
		t.Errorf("the engine after the cancel: %v", err)
	}
	tb := newTable("galera statement past its deadline")
	tb.add(stmtErr)
	tb.note("returned DeadlineExceeded after %s (deadline 500ms); %s", took.Round(time.Millisecond), outcome)
	tb.log(t)
}
