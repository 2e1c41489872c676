package faults_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/testdb"
	"github.com/enginekit/enginekit/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The variables scripts/faultdb sets for the command it runs.
const (
	envDir       = "ENGINEKIT_FAULT_DIR"
	envCtl       = "ENGINEKIT_FAULT_CTL"
	envPGPrimary = "ENGINEKIT_FAULT_PG_PRIMARY_DSN"
	envPGReplica = "ENGINEKIT_FAULT_PG_REPLICA_DSN"
	envMySQL     = "ENGINEKIT_FAULT_MYSQL_DSN"
)

// The servers faultdb controls.
const (
	pgPrimary = "pg-primary"
	pgReplica = "pg-replica"
	mariaDB   = "mariadb"
)

// opTimeout bounds one transaction of a test: one that takes longer hangs.
const opTimeout = 10 * time.Second

// servers are the private servers of scripts/faultdb.
type servers struct {
	dir, ctlPath              string
	primary, replica, mysqlDB string // DSNs of their database test
}

// faultServers returns the private servers, or skips the test without
// them (fails it when ENGINEKIT_TEST_REQUIRE names faults).
func faultServers(t *testing.T) servers {
	t.Helper()
	s := servers{dir: os.Getenv(envDir), ctlPath: os.Getenv(envCtl), primary: os.Getenv(envPGPrimary),
		replica: os.Getenv(envPGReplica), mysqlDB: os.Getenv(envMySQL)}
	if s.dir == "" {
		if testdb.Required("faults") {
			t.Fatalf("%s is unset but %s=%s requires the fault suite: run it under scripts/faultdb run",
				envDir, testdb.EnvRequire, os.Getenv(testdb.EnvRequire))
		}
		t.Skipf("%s is unset: run the fault suite under scripts/faultdb run", envDir)
	}
	for name, v := range map[string]string{envCtl: s.ctlPath, envPGPrimary: s.primary, envPGReplica: s.replica, envMySQL: s.mysqlDB} {
		if v == "" {
			t.Fatalf("%s is set but %s is not", envDir, name)
		}
	}
	return s
}

// begin starts a fault test. Its cleanups run last: every server is
// started again (continued if paused; a no-op for one that is up), then
// no goroutine may be left.
func begin(t *testing.T) servers {
	t.Helper()
	s := faultServers(t)
	t.Cleanup(func() { goleak.VerifyNone(t) })
	t.Cleanup(func() {
		for _, name := range []string{pgPrimary, pgReplica, mariaDB} {
			if err := s.ctl(context.Background(), "start-one", name); err != nil {
				t.Errorf("restoring %s: %v", name, err)
			}
		}
	})
	return s
}

// ctl runs faultdb OP on one server: restart, stop-one, start-one,
// kill-one, pause-one, resume-one.
func (s servers) ctl(ctx context.Context, op, server string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute) // faultdb bounds each wait by 60s
	defer cancel()
	out, err := exec.CommandContext(ctx, s.ctlPath, op, s.dir, server).CombinedOutput()
	if err != nil {
		return fmt.Errorf("faultdb %s %s: %v\n%s", op, server, err, out)
	}
	return nil
}

// mustCtl is ctl that fails the test.
func (s servers) mustCtl(t *testing.T, op, server string) time.Duration {
	t.Helper()
	begun := time.Now()
	if err := s.ctl(context.Background(), op, server); err != nil {
		t.Fatal(err)
	}
	return time.Since(begun)
}

// crash crashes server (faultdb kill-one) and returns once its process is
// gone. faultdb returns once the killed process is a zombie, but the leader
// of a multithreaded server (mariadbd) turns zombie before its other
// threads have exited: for a second or two the dying server still holds
// its files, and one started on them at once finds them locked (or both
// write them). So for MariaDB it also waits, bounded, until /proc has no
// trace of the process; pg_ctl's immediate shutdown waits for that itself.
func (s servers) crash(t *testing.T, server string) time.Duration {
	t.Helper()
	begun := time.Now()
	pid := ""
	if server == mariaDB {
		b, err := os.ReadFile(filepath.Join(s.dir, mariaDB, "mysqld.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid = strings.TrimSpace(string(b))
	}
	s.mustCtl(t, "kill-one", server)
	if pid != "" {
		pollUntil(t, 30*time.Second, "the killed mariadbd has exited", func() bool {
			_, err := os.Stat("/proc/" + pid)
			return errors.Is(err, fs.ErrNotExist)
		})
	}
	return time.Since(begun)
}

// serverOf is the faultdb server of a driver's primary.
func serverOf(driverName string) string {
	if driverName == "mysql" {
		return mariaDB
	}
	return pgPrimary
}

// database creates a database of the test's own on the private primary of
// driverName (on PostgreSQL the replica replays it) and returns its DSN. It
// is dropped at cleanup, after its server is started again if a test left
// it down.
func (s servers) database(t *testing.T, driverName string) string {
	t.Helper()
	name := testdb.Name(t)
	var admin, dsn, create, drop string
	switch driverName {
	case "postgres":
		admin = s.primary
		dsn = withPGDatabase(t, s.primary, name)
		create, drop = `CREATE DATABASE "`+name+`"`, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`
	case "mysql":
		admin = s.mysqlDB
		cfg, err := mysql.ParseDSN(s.mysqlDB)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DBName = name
		dsn = cfg.FormatDSN()
		create, drop = "CREATE DATABASE `"+name+"`", "DROP DATABASE IF EXISTS `"+name+"`"
	default:
		t.Fatalf("no fault server for %s", driverName)
	}
	run := func(q string) error {
		db, err := sql.Open(driverName, admin)
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = db.ExecContext(ctx, q)
		return err
	}
	if err := run(create); err != nil {
		t.Fatalf("create the test's database: %v", err)
	}
	t.Cleanup(func() {
		if err := s.ctl(context.Background(), "start-one", serverOf(driverName)); err != nil {
			t.Errorf("restoring %s: %v", serverOf(driverName), err)
		}
		if err := run(drop); err != nil {
			t.Errorf("drop the test's database: %v", err)
		}
	})
	return dsn
}

// withPGDatabase returns the postgres:// DSN with another database.
func withPGDatabase(t *testing.T, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// pgDatabaseName is the database of a postgres:// DSN.
func pgDatabaseName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// direct opens a plain database/sql pool on dsn, apart from any engine:
// for setup, for killing connections, and to read what was committed.
func direct(t *testing.T, driverName, dsn string) *sql.DB {
	t.Helper()
	var db *sql.DB
	if driverName == "mysql" {
		// The driver logs the idle connections a restart broke to stderr by
		// default: they are expected here.
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Logger = log.New(io.Discard, "", 0)
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db = sql.OpenDB(conn)
	} else {
		var err error
		if db, err = sql.Open(driverName, dsn); err != nil {
			t.Fatal(err)
		}
	}
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}

// createTables makes fa and fb: each write transaction of the suite
// inserts its id into both, so a partial commit shows as an id in one only.
func createTables(t *testing.T, db *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{"CREATE TABLE fa (id BIGINT PRIMARY KEY)", "CREATE TABLE fb (id BIGINT PRIMARY KEY)"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// openEngine opens an engine without Fx, with every driver and opts. At
// cleanup it checks that no connection is in use nor scope open, then
// closes it.
func openEngine(t *testing.T, cfg dbfx.Config, opts ...dbfx.Option) *dbfx.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout+30*time.Second)
	defer cancel()
	e, err := dbfx.Open(ctx, cfg, append([]dbfx.Option{fxtest.WithDrivers()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer func() { // also when the check below fails the test
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := e.Close(ctx); err != nil {
				t.Errorf("close: %v", err)
			}
		}()
		fxtest.RequireNoLeaks(t, e)
	})
	return e
}

// insert runs the write transaction of the suite: id into fa, then
// (after pause, a statement that makes the transaction last, if any) into fb.
func insert(ctx context.Context, m *session.Manager, id int64, pause string) error {
	return m.Tx(ctx, func(ctx context.Context) error {
		q := m.Q(ctx)
		if _, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fa (id) VALUES (?)"), id); err != nil {
			return err
		}
		if pause != "" {
			if _, err := q.ExecContext(ctx, pause); err != nil {
				return err
			}
		}
		_, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fb (id) VALUES (?)"), id)
		return err
	}, session.Label("fault"))
}

// sleepSQL is a statement that takes d on the server.
func sleepSQL(driverName string, d time.Duration) string {
	if driverName == "mysql" {
		return fmt.Sprintf("DO SLEEP(%g)", d.Seconds())
	}
	return fmt.Sprintf("SELECT pg_sleep(%g)", d.Seconds())
}

// attempt is one write transaction and what its caller was told.
type attempt struct {
	id    int64
	err   error
	took  time.Duration
	ended time.Time // when it returned (the writers' attempts)
}

// table is one line of the fault table: what was attempted and how it
// ended, checked against the database.
type table struct {
	fault      string
	attempted  int
	committed  int
	failed     map[string]int // by class
	ambiguous  int            // ErrAmbiguousCommit: may be present or absent
	ambPresent int            // of those, present
	lost       int            // reported committed, absent
	phantom    int            // reported failed (not ambiguous), present
	partial    int            // in one table of two
	notes      []string
	examples   map[string]string // the first error of each class
}

func newTable(fault string) *table {
	return &table{fault: fault, failed: map[string]int{}, examples: map[string]string{}}
}

// add counts an outcome that needs no reconciling (a read, say).
func (tb *table) add(err error) {
	tb.attempted++
	switch {
	case err == nil:
		tb.committed++
	case errors.Is(err, session.ErrAmbiguousCommit):
		tb.ambiguous++
		tb.example("ErrAmbiguousCommit", err)
	default:
		c := class(err)
		tb.failed[c]++
		tb.example(c, err)
	}
}

func (tb *table) example(c string, err error) {
	if _, ok := tb.examples[c]; !ok {
		tb.examples[c] = err.Error()
	}
}

func (tb *table) note(format string, args ...any) {
	tb.notes = append(tb.notes, fmt.Sprintf(format, args...))
}

func (tb *table) failures() int {
	n := 0
	for _, v := range tb.failed {
		n += v
	}
	return n
}

// String is the FAULT-TABLE line.
func (tb *table) String() string {
	var classes []string
	for _, c := range slices.Sorted(maps.Keys(tb.failed)) {
		classes = append(classes, fmt.Sprintf("%s:%d", c, tb.failed[c]))
	}
	s := fmt.Sprintf("FAULT-TABLE | %s | attempted=%d | committed=%d | failed=%d(%s) | ambiguous=%d",
		tb.fault, tb.attempted, tb.committed, tb.failures(), strings.Join(classes, ", "), tb.ambiguous)
	if tb.ambiguous > 0 {
		s += fmt.Sprintf("(present=%d, absent=%d)", tb.ambPresent, tb.ambiguous-tb.ambPresent)
	}
	s += fmt.Sprintf(" | lost=%d", tb.lost)
	if len(tb.notes) > 0 {
		s += " | " + strings.Join(tb.notes, "; ")
	}
	return s
}

// log logs the line and an example error of each class.
func (tb *table) log(t *testing.T) {
	t.Helper()
	t.Log(tb.String())
	for _, c := range slices.Sorted(maps.Keys(tb.examples)) {
		t.Logf("  %s, e.g.: %s", c, tb.examples[c])
	}
}

// class names an error for the table: enginekit's sentinel errors by
// name, a ctx error, or a driver error of a lost connection (ConnLost) with
// its code or kind.
func class(err error) string {
	var re *session.RetryError
	switch {
	case errors.Is(err, session.ErrAmbiguousCommit):
		return "ErrAmbiguousCommit"
	case errors.Is(err, session.ErrClosed):
		return "ErrClosed"
	case errors.Is(err, session.ErrAcquireTimeout):
		return "ErrAcquireTimeout"
	case errors.Is(err, dbfx.ErrConnect):
		return "ErrConnect"
	case errors.As(err, &re):
		return "RetryError/" + class(re.Err)
	case errors.Is(err, context.DeadlineExceeded):
		return "ctx.DeadlineExceeded"
	case errors.Is(err, context.Canceled):
		return "ctx.Canceled"
	case errors.Is(err, session.ErrUnexpectedRollback):
		return "ErrUnexpectedRollback"
	case classifyAny(err).Has(dialect.ConnLost):
		return "ConnLost[" + lostKind(err) + "]"
	}
	return "other"
}

// classifyAny classifies err with every driver's dialect: their error
// types are distinct, so at most one knows it.
func classifyAny(err error) dialect.Class {
	var c dialect.Class
	for _, d := range fxtest.Drivers() {
		c |= d.Dialect().Classify(err)
	}
	return c
}

// lostKind says how a connection was lost: the server's code, or the
// transport's error.
func lostKind(err error) string {
	var pe *pq.Error
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &pe):
		return string(pe.Code)
	case errors.As(err, &me):
		return fmt.Sprint(me.Number)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, mysql.ErrInvalidConn):
		return "invalid conn"
	case errors.Is(err, driver.ErrBadConn):
		return "bad conn"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	return "net"
}

// ids reads the ids in table.
func ids(t *testing.T, db *sql.DB, table string) map[int64]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT id FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// reconcile checks every attempt against the database (read through db,
// apart from the engine) and counts it into tb: a transaction reported
// committed must be there, one that failed otherwise than with
// ErrAmbiguousCommit must not, and no transaction may be there in part.
func reconcile(t *testing.T, db *sql.DB, tb *table, attempts []attempt) {
	t.Helper()
	fa, fb := ids(t, db, "fa"), ids(t, db, "fb")
	known := make(map[int64]bool, len(attempts))
	for _, a := range attempts {
		known[a.id] = true
		inA, inB := fa[a.id], fb[a.id]
		if inA != inB {
			tb.partial++
			t.Errorf("transaction %d committed in part (fa: %v, fb: %v); it returned %v", a.id, inA, inB, a.err)
		}
		present := inA && inB
		tb.add(a.err)
		switch {
		case a.err == nil && !present:
			tb.lost++
			t.Errorf("transaction %d was reported committed but is not in the database", a.id)
		case errors.Is(a.err, session.ErrAmbiguousCommit):
			if present {
				tb.ambPresent++
			}
		case a.err != nil && present:
			tb.phantom++
			t.Errorf("transaction %d failed with %v, but it was committed", a.id, a.err)
		}
	}
	for _, m := range []map[int64]bool{fa, fb} {
		for id := range m {
			if !known[id] {
				t.Errorf("id %d is in the database, but no transaction of the test inserted it", id)
			}
		}
	}
}

// writers run write transactions from n goroutines until stopped: worker
// g's transactions insert g*1e6+1, g*1e6+2, ... (see insert).
type writers struct {
	m *session.Manager
	load

	stop     chan struct{}
	wg       sync.WaitGroup
	progress chan struct{} // signalled after every outcome

	mu       sync.Mutex
	attempts []attempt
	epoch    int   // advanced by newEpoch
	since    []int // per worker: commits of transactions begun in the current epoch
	ended    int   // workers that have returned
}

// load says how writers run.
type load struct {
	workers int
	timeout time.Duration // each transaction's ctx; 0: opTimeout
	// backoff is a worker's wait after an error; 0: 10ms (while the
	// server is down every attempt fails at once: it keeps a worker from
	// spinning).
	backoff time.Duration
	pause   string // see insert
	// stopOn, when set, ends a worker after an error it matches.
	stopOn func(error) bool
}

// startWriters starts n writers whose transactions each have opTimeout.
func startWriters(m *session.Manager, n int, pause string, stopOn func(error) bool) *writers {
	return startLoad(m, load{workers: n, pause: pause, stopOn: stopOn})
}

// startLoad starts writers as l says.
func startLoad(m *session.Manager, l load) *writers {
	if l.timeout == 0 {
		l.timeout = opTimeout
	}
	if l.backoff == 0 {
		l.backoff = 10 * time.Millisecond
	}
	w := &writers{m: m, load: l, stop: make(chan struct{}),
		progress: make(chan struct{}, 1), since: make([]int, l.workers)}
	w.wg.Add(l.workers)
	for g := range l.workers {
		go w.run(g)
	}
	return w
}

func (w *writers) run(g int) {
	defer w.wg.Done()
	defer func() {
		w.mu.Lock()
		w.ended++
		w.mu.Unlock()
		w.signal()
	}()
	for seq := int64(1); ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		w.mu.Lock()
		epoch := w.epoch
		w.mu.Unlock()
		id := int64(g+1)*1_000_000 + seq
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		begun := time.Now()
		err := insert(ctx, w.m, id, w.pause)
		ended := time.Now()
		cancel()
		w.mu.Lock()
		w.attempts = append(w.attempts, attempt{id: id, err: err, took: ended.Sub(begun), ended: ended})
		if err == nil && epoch == w.epoch {
			w.since[g]++
		}
		w.mu.Unlock()
		w.signal()
		if err != nil {
			if w.stopOn != nil && w.stopOn(err) {
				return
			}
			t := time.NewTimer(w.backoff)
			select {
			case <-t.C:
			case <-w.stop:
				t.Stop()
				return
			}
		}
	}
}

// signal wakes wait.
func (w *writers) signal() {
	select {
	case w.progress <- struct{}{}:
	default:
	}
}

// allStopped reports whether every worker has returned.
func (w *writers) allStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ended == len(w.since)
}

// newEpoch starts counting each worker's commits afresh.
func (w *writers) newEpoch() {
	w.mu.Lock()
	w.epoch++
	clear(w.since)
	w.mu.Unlock()
}

// committedEach reports whether every worker committed n transactions
// begun in the current epoch.
func (w *writers) committedEach(n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Min(w.since) >= n
}

// committed counts the transactions reported committed so far.
func (w *writers) committed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.attempts {
		if a.err == nil {
			n++
		}
	}
	return n
}

// wait waits until cond holds, checking it after every outcome, at most d.
func (w *writers) wait(d time.Duration, cond func() bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for !cond() {
		select {
		case <-w.progress:
		case <-t.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("not within %s", d)
		}
	}
	return nil
}

// finish stops the workers (each ends its transaction first) and returns
// every attempt. It may be called more than once.
func (w *writers) finish() []attempt {
	w.mu.Lock()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.mu.Unlock()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.attempts)
}

// failedAfter returns the attempts that returned an error after t.
func failedAfter(attempts []attempt, t time.Time) []attempt {
	var out []attempt
	for _, a := range attempts {
		if a.err != nil && a.ended.After(t) {
			out = append(out, a)
		}
	}
	return out
}

// outage is when writes stopped and started again around down (a kill):
// the last commit that returned before it and the first after it (zero
// when none did).
func outage(attempts []attempt, down time.Time) (lastOld, firstNew time.Time) {
	for _, a := range attempts {
		switch {
		case a.err != nil:
		case a.ended.Before(down) && a.ended.After(lastOld):
			lastOld = a.ended
		case a.ended.After(down) && (firstNew.IsZero() || a.ended.Before(firstNew)):
			firstNew = a.ended
		}
	}
	return lastOld, firstNew
}

// checkTimes fails the test for a transaction that took longer than
// limit: it hung instead of failing.
func checkTimes(t *testing.T, attempts []attempt, limit time.Duration) time.Duration {
	t.Helper()
	var longest time.Duration
	for _, a := range attempts {
		longest = max(longest, a.took)
		if a.took > limit {
			t.Errorf("transaction %d took %s (> %s): %v", a.id, a.took.Round(time.Millisecond), limit, a.err)
		}
	}
	return longest
}
