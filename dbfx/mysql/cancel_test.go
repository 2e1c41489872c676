package mysql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/testdb"
	"github.com/enginekit/enginekit/monitor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sleepSQL is the statement the tests cancel: 20s unless stopped.
const sleepSQL = "SELECT SLEEP(20)"

// TestCancelledStatementStopsOnTheServer: a statement whose ctx ends is
// stopped on the server (KILL QUERY), outside any scope and in a
// transaction: the caller gets the ctx's error within about a second of
// the deadline, the statement is gone from the process list within a
// second, and the monitor hears of the cancel.
func TestCancelledStatementStopsOnTheServer(t *testing.T) {
	cfg := fxtest.MySQL(t)
	mon := &poolEvents{}
	e := open(t, cfg, mon, mysql.Driver())
	m := e.Sessions()
	admin := adminDB(t, cfg.DSN)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Q", func(ctx context.Context) error {
			var n int
			return m.Q(ctx).GetContext(ctx, &n, sleepSQL)
		}},
		{"Tx", func(ctx context.Context) error {
			return m.Tx(ctx, func(ctx context.Context) error {
				var n int
				return m.Q(ctx).GetContext(ctx, &n, sleepSQL)
			})
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			before := mon.count()
			ctx, cancel := context.WithTimeout(testContext(t), 500*time.Millisecond)
			defer cancel()
			begun := time.Now()
			err := c.call(ctx)
			returned := time.Since(begun)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s = %v, want the ctx's deadline error", c.name, err)
			}
			if returned > 1500*time.Millisecond {
				t.Errorf("%s returned after %s, want about 1s at most after a 500ms deadline", c.name, returned)
			}
			gone, ok := pollGone(t, admin, cfg.DSN, time.Second)
			t.Logf("%s returned after %s; the statement left the process list %s after the call returned",
				c.name, returned.Round(time.Millisecond), gone.Round(time.Millisecond))
			if !ok {
				t.Errorf("%s: the statement was still running on the server 1s after the call returned", c.name)
			}
			ev := mon.wait(t, before+1)
			if ev.Kind != monitor.PoolCancel || ev.Err != nil {
				t.Errorf("monitor got %+v, want a PoolCancel without error", ev)
			}
			t.Logf("PoolCancel reported, the cancel took %s", ev.Duration.Round(time.Millisecond))
		})
	}
	// The engine goes on: the killed connections were discarded.
	var one int
	if err := m.Q(testContext(t)).GetContext(testContext(t), &one, "SELECT 1"); err != nil || one != 1 {
		t.Fatalf("after the cancels: %d, %v", one, err)
	}
}

// TestFinishedStatementIsNotKilled: a statement that returned just before
// its ctx ended is not stopped on the server (nothing is sent), and its
// connection goes on serving the next statement of the pool.
func TestFinishedStatementIsNotKilled(t *testing.T) {
	cfg := fxtest.MySQL(t)
	cfg.MaxOpenConns, cfg.MaxIdleConns = 1, 1
	mon := &poolEvents{}
	e := open(t, cfg, mon, mysql.Driver())
	m := e.Sessions()
	ctx, cancel := context.WithTimeout(testContext(t), 400*time.Millisecond)
	defer cancel()
	var id, slept int64
	if err := m.Q(ctx).GetContext(ctx, &slept, "SELECT SLEEP(0.1)"); err != nil {
		t.Fatal(err)
	}
	if err := m.Q(ctx).GetContext(ctx, &id, "SELECT CONNECTION_ID()"); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done() // the deadline passes after the statements returned
	var next int64
	if err := m.Q(testContext(t)).GetContext(testContext(t), &next, "SELECT CONNECTION_ID()"); err != nil {
		t.Fatal(err)
	}
	if next != id {
		t.Errorf("the next statement ran on connection %d, want %d: the connection was discarded", next, id)
	}
	if n := mon.count(); n != 0 {
		t.Errorf("monitor got %d PoolCancel events, want none: %+v", n, mon.all())
	}
}

// TestNoCancelOnAnotherServer: when the cancel's connection reaches a
// server other than the statement's (behind a proxy or a cluster address
// that sends it elsewhere), no KILL is sent: on that server the
// statement's connection id may be another client's. The other server's
// answer is simulated: the cancel asks the server it reaches about a lock
// no connection holds, which is what any server but the statement's
// answers (see the connector's doc); the statement's own server, which
// received no KILL, still runs it.
func TestNoCancelOnAnotherServer(t *testing.T) {
	cfg := fxtest.MySQL(t)
	mon := &poolEvents{}
	e := open(t, cfg, mon, mysql.DriverAskingFor(func(lock string) string { return lock + ".elsewhere" }))
	m := e.Sessions()
	admin := adminDB(t, cfg.DSN)
	ctx, cancel := context.WithTimeout(testContext(t), 500*time.Millisecond)
	defer cancel()
	var n int
	err := m.Q(ctx).GetContext(ctx, &n, sleepSQL)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the ctx's deadline error", err)
	}
	ev := mon.wait(t, 1)
	if ev.Kind != monitor.PoolCancel || ev.Err == nil || !strings.Contains(ev.Err.Error(), "not attempted") {
		t.Errorf("monitor got %+v, want a PoolCancel whose Err says it was not attempted", ev)
	}
	t.Logf("PoolCancel: %v", ev.Err)
	ids := running(t, admin, cfg.DSN)
	if len(ids) != 1 {
		t.Fatalf("%d statements running after the refused cancel, want the one no KILL reached", len(ids))
	}
	if _, err := admin.ExecContext(testContext(t), "KILL QUERY "+strconv.FormatInt(ids[0], 10)); err != nil {
		t.Fatal(err)
	}
	if _, ok := pollGone(t, admin, cfg.DSN, 5*time.Second); !ok {
		t.Fatal("the statement did not stop")
	}
}

// open opens an engine on cfg with d and mon, closed at cleanup.
func open(t *testing.T, cfg dbfx.Config, mon monitor.Monitor, d dbfx.Driver) *dbfx.Engine {
	t.Helper()
	e, err := dbfx.Open(testContext(t), cfg, dbfx.WithDriver(d), dbfx.WithMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fxtest.RequireNoLeaks(t, e)
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

// testContext ends when the test does, or after a minute.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// adminDB is a pool of its own on dsn's server, outside any engine.
func adminDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// running returns the ids of the connections running sleepSQL in dsn's
// database.
func running(t *testing.T, admin *sql.DB, dsn string) []int64 {
	t.Helper()
	mc, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	rows, err := admin.QueryContext(testContext(t),
		"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO = ?", mc.DBName, sleepSQL)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// pollGone polls the process list until sleepSQL no longer runs in dsn's
// database, at most within: how long it took, and whether it is gone.
func pollGone(t *testing.T, admin *sql.DB, dsn string, within time.Duration) (time.Duration, bool) {
	t.Helper()
	begun := time.Now()
	for {
		if len(running(t, admin, dsn)) == 0 {
			return time.Since(begun), true
		}
		if time.Since(begun) > within {
			return time.Since(begun), false
		}
		time.Sleep(10 * time.Millisecond) // a poll: the server tells no one when a statement ends
	}
}

// poolEvents records the PoolCancel events of an engine.
type poolEvents struct {
	mu     sync.Mutex
	events []monitor.PoolEvent
}

func (p *poolEvents) Query(context.Context, monitor.QueryEvent) {}
func (p *poolEvents) Tx(context.Context, monitor.TxEvent)       {}

func (p *poolEvents) Pool(_ context.Context, e monitor.PoolEvent) {
	if e.Kind != monitor.PoolCancel {
		return
	}
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

func (p *poolEvents) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

func (p *poolEvents) all() []monitor.PoolEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]monitor.PoolEvent(nil), p.events...)
}

// wait waits (at most the cancel's bound and a margin) for the nth event
// and returns it.
func (p *poolEvents) wait(t *testing.T, n int) monitor.PoolEvent {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if evs := p.all(); len(evs) >= n {
			return evs[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no PoolCancel event #%d within 2s", n)
		}
		time.Sleep(5 * time.Millisecond) // a poll: the cancel runs on a goroutine of its own
	}
}

// TestNoKillOfAnotherServersConnection: two real servers behind one
// address (a TCP proxy that the test turns from the first to the second,
// as a load balancer, a failover or a cluster address would), each a
// private mariadbd started for the test. The statement runs on the first
// server as connection X; on the second, X is another client's
// connection, running a statement of its own. When the statement's ctx
// ends, the cancel's connection reaches the second server: no KILL is
// sent, and the other client's statement runs on (a KILL QUERY X there
// would have stopped it). Skipped where mariadbd is not installed.
func TestNoKillOfAnotherServersConnection(t *testing.T) {
	first, second := privateMariaDB(t), privateMariaDB(t)
	firstAdmin, secondAdmin := adminDB(t, first.dsn("")), adminDB(t, second.dsn(""))
	p := testdb.NewProxy(t, first.addr)
	// Connection ids count from 1 on each server: some throwaway
	// connections put the first server's ahead, so that the second can
	// reach the statement's id.
	for range 10 {
		c, err := firstAdmin.Conn(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		c.Raw(func(any) error { return driver.ErrBadConn }) // closed, not kept
		c.Close()
	}
	cfg := dbfx.Config{Driver: "mysql", DSN: "root@tcp(" + p.Addr() + ")/test", MaxOpenConns: 1, MaxIdleConns: 1}
	mon := &poolEvents{}
	e := open(t, cfg, mon, mysql.Driver())
	m := e.Sessions()
	var x int64
	if err := m.Q(testContext(t)).GetContext(testContext(t), &x, "SELECT CONNECTION_ID()"); err != nil {
		t.Fatal(err)
	}
	// The other client, on the second server, as connection X.
	victim := connectionWithID(t, secondAdmin, x)
	victimDone := make(chan error, 1)
	go func() {
		_, err := victim.ExecContext(context.Background(), sleepSQL)
		victimDone <- err
	}()
	pollRunning(t, secondAdmin, x)
	p.Retarget(second.addr)

	ctx, cancel := context.WithTimeout(testContext(t), 500*time.Millisecond)
	defer cancel()
	var n int
	if err := m.Q(ctx).GetContext(ctx, &n, sleepSQL); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the ctx's deadline error", err)
	}
	ev := mon.wait(t, 1)
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), "not attempted") {
		t.Errorf("monitor got %+v, want a PoolCancel whose Err says it was not attempted", ev)
	}
	t.Logf("PoolCancel: %v", ev.Err)
	select {
	case err := <-victimDone:
		t.Fatalf("the other server's connection %d was stopped: %v", x, err)
	default:
	}
	if !isRunning(t, secondAdmin, x) {
		t.Errorf("the other server's connection %d no longer runs its statement", x)
	}
	if !isRunning(t, firstAdmin, x) {
		t.Errorf("the statement's own server no longer runs it, though no KILL was sent")
	}
	for _, db := range []*sql.DB{firstAdmin, secondAdmin} {
		if _, err := db.ExecContext(testContext(t), "KILL QUERY "+strconv.FormatInt(x, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-victimDone; err == nil {
		t.Error("the other client's statement ended without error after KILL QUERY")
	}
}

// server is a private mariadbd.
type server struct{ addr string }

// dsn is a DSN for database db on s.
func (s server) dsn(db string) string { return "root@tcp(" + s.addr + ")/" + db }

// privateMariaDB starts a mariadbd of the test's own on a fresh data
// directory (no grant tables: root without password), with a database
// test, stopped at cleanup; it skips the test where mariadbd is not
// installed.
func privateMariaDB(t *testing.T) server {
	t.Helper()
	install, err1 := exec.LookPath("mariadb-install-db")
	daemon, err2 := lookPathSbin("mariadbd")
	if err1 != nil || err2 != nil {
		t.Skip("mariadbd and mariadb-install-db are not installed")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	var user []string
	if os.Geteuid() == 0 {
		user = []string{"--user=root"} // mariadbd refuses to run as root without it
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--skip-test-db", "--auth-root-authentication-method=normal"}, user...)
	if out, err := exec.Command(install, args...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args = append([]string{"--no-defaults", "--datadir=" + data, "--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(port), "--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--log-error=" + filepath.Join(dir, "log"), "--skip-name-resolve", "--skip-grant-tables",
		"--innodb-buffer-pool-size=16M"}, user...)
	cmd := exec.Command(daemon, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s := server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	db, err := sql.Open("mysql", s.dsn(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := db.ExecContext(testContext(t), "CREATE DATABASE test")
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("private mariadbd did not answer within 30s: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond) // a poll: the server says nothing when it is up
	}
}

// lookPathSbin is exec.LookPath that also looks in the sbin directories,
// where Debian puts mariadbd.
func lookPathSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// connectionWithID opens connections on db until one has id x, and
// returns it; the others are closed. The server's ids count up, so x
// must be ahead of them.
func connectionWithID(t *testing.T, db *sql.DB, x int64) *sql.Conn {
	t.Helper()
	for {
		c, err := db.Conn(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := c.QueryRowContext(testContext(t), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if id == x {
			t.Cleanup(func() { c.Close() })
			return c
		}
		c.Raw(func(any) error { return driver.ErrBadConn }) // closed, not kept
		c.Close()
		if id > x {
			t.Fatalf("the second server's ids passed %d (at %d)", x, id)
		}
	}
}

// isRunning reports whether connection id runs sleepSQL on db's server.
func isRunning(t *testing.T, db *sql.DB, id int64) bool {
	t.Helper()
	var n int
	if err := db.QueryRowContext(testContext(t), "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO = ?",
		id, sleepSQL).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// pollRunning waits until connection id runs sleepSQL on db's server.
func pollRunning(t *testing.T, db *sql.DB, id int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !isRunning(t, db, id) {
		if time.Now().After(deadline) {
			t.Fatalf("connection %d does not run %s", id, sleepSQL)
		}
		time.Sleep(5 * time.Millisecond) // a poll: the statement starts on a goroutine
	}
}
