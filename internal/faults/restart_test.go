package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
)

// The workers of the restart tests, and how many transactions each must
// commit before the fault and after it.
const (
	restartWorkers = 32
	commitsEach    = 5
)

func TestPostgresRestart(t *testing.T) { restartUnderLoad(t, "pg restart", "postgres", "restart") }

func TestPostgresCrash(t *testing.T) {
	restartUnderLoad(t, "pg crash", "postgres", "kill-one", "start-one")
}

func TestMariaDBRestart(t *testing.T) { restartUnderLoad(t, "mariadb restart", "mysql", "restart") }

func TestMariaDBCrash(t *testing.T) {
	restartUnderLoad(t, "mariadb crash", "mysql", "kill-one", "start-one")
}

// restartUnderLoad runs faultdb ops on the primary of driverName while 32
// goroutines run write transactions, then checks that the same engine
// commits again and that every outcome its callers were told is true.
func restartUnderLoad(t *testing.T, fault, driverName string, ops ...string) {
	s := begin(t)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)
	e := openEngine(t, dbfx.Config{Driver: driverName, DSN: dsn, MaxOpenConns: 16,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second})

	w := startWriters(e.Sessions(), restartWorkers, "", nil)
	t.Cleanup(func() { w.finish() }) // a test that fails half-way leaves no worker running
	if err := w.wait(30*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Fatalf("before the fault, every worker should commit %d transactions: %v", commitsEach, err)
	}
	before := w.committed()

	begun := time.Now()
	for _, op := range ops {
		if op == "kill-one" {
			s.crash(t, serverOf(driverName))
		} else {
			s.mustCtl(t, op, serverOf(driverName))
		}
	}
	down := time.Since(begun)

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
		err := insert(ctx, e.Sessions(), id, "")
		cancel()
		if err != nil {
			t.Errorf("a new transaction after the fault: %v", err)
		}
		attempts = append(attempts, attempt{id: id, err: err})
	}

	longest := checkTimes(t, attempts, opTimeout)
	tb := newTable(fault)
	reconcile(t, db, tb, attempts)
	tb.note("%d committed before the fault", before)
	tb.note("faultdb %v took %s", ops, down.Round(time.Millisecond))
	tb.note("every worker committed %d again within %s", commitsEach, recovery.Round(time.Millisecond))
	tb.note("longest transaction %s", longest.Round(time.Millisecond))
	tb.log(t)
	if tb.failed["other"] > 0 {
		t.Errorf("%d transactions failed with errors of no known class", tb.failed["other"])
	}
}
