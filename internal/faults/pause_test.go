package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
)

// A paused server: its processes stopped (SIGSTOP) for pauseLength while
// 32 writers run transactions, each with a ctx of callDeadline.
const (
	pauseLength  = 5 * time.Second
	callDeadline = 2 * time.Second
	// deadlineSlack is how long after its deadline a call may still
	// return: the connection wrapper cuts a connection whose server does
	// not answer half a second after the ctx ended.
	deadlineSlack = time.Second
	// recoveryLimit bounds the time from the resume until every worker
	// has committed commitsEach transactions begun after it.
	recoveryLimit = 10 * time.Second
)

func TestPostgresPause(t *testing.T) { pauseUnderLoad(t, "pg paused 5s", "postgres") }

func TestMariaDBPause(t *testing.T) { pauseUnderLoad(t, "mariadb paused 5s", "mysql") }

// pauseUnderLoad stops every process of the primary of driverName
// (faultdb pause-one) for pauseLength while 32 goroutines run write
// transactions with a ctx of callDeadline, then continues them
// (resume-one). The server keeps its connections and accepts new ones,
// and answers nothing: a hung server, as a network partition looks to
// its clients. Every call must return by its deadline (plus
// deadlineSlack), every outcome a caller was told must be true (none
// lost, none in part; ErrAmbiguousCommit counted apart, present or not),
// and once the server answers again the same engine must commit again
// within recoveryLimit, without a failure of a transaction begun then.
func pauseUnderLoad(t *testing.T, fault, driverName string) {
	s := begin(t)
	server := serverOf(driverName)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)
	e := openEngine(t, dbfx.Config{Driver: driverName, DSN: dsn, MaxOpenConns: 16,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second})

	w := startLoad(e.Sessions(), load{workers: restartWorkers, timeout: callDeadline})
	t.Cleanup(func() { w.finish() }) // a test that fails half-way leaves no worker running
	if err := w.wait(30*time.Second, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Fatalf("before the fault, every worker should commit %d transactions: %v", commitsEach, err)
	}
	before := w.committed()

	took := s.mustCtl(t, "pause-one", server)
	paused := time.Now()
	// Should the test stop half-way, the server is continued before the
	// workers are stopped (and begin's cleanup would continue it too).
	t.Cleanup(func() {
		if err := s.ctl(context.Background(), "resume-one", server); err != nil {
			t.Errorf("resuming %s: %v", server, err)
		}
	})
	// The fault lasts pauseLength: a timer is the fault itself, not a wait
	// for an outcome.
	length := time.NewTimer(pauseLength)
	<-length.C
	resumedIn := s.mustCtl(t, "resume-one", server)
	resumed := time.Now() // faultdb returns once the server answers again
	stood := resumed.Sub(paused)

	// The pool recovers on its own: every worker commits again.
	w.newEpoch()
	if err := w.wait(recoveryLimit, func() bool { return w.committedEach(commitsEach) }); err != nil {
		t.Errorf("after the resume, every worker should commit %d transactions again: %v", commitsEach, err)
	}
	recovery := time.Since(resumed)
	attempts := w.finish()

	// Every call returned by its deadline: the worst overshoot.
	var worst time.Duration
	returnedInPause := 0
	for _, a := range attempts {
		over := a.took - callDeadline
		worst = max(worst, over)
		if over > deadlineSlack {
			t.Errorf("transaction %d took %s: %s past its deadline of %s (> %s): %v", a.id,
				a.took.Round(time.Millisecond), over.Round(time.Millisecond), callDeadline, deadlineSlack, a.err)
		}
		if a.ended.After(paused) && !a.ended.After(resumed) {
			returnedInPause++
		}
	}
	if returnedInPause == 0 {
		t.Errorf("no call returned while the server was paused for %s", stood.Round(time.Millisecond))
	}

	// After the resume: failures of transactions begun once the server
	// answered again (none may fail), and all that returned failed then
	// (their deadline ended while it was paused).
	afterResume := failedAfter(attempts, resumed)
	begunAfter := 0
	for _, a := range afterResume {
		if a.ended.Add(-a.took).After(resumed) {
			begunAfter++
			t.Errorf("transaction %d, begun after the resume, failed: %v", a.id, a.err)
		}
	}

	tb := newTable(fault)
	reconcile(t, db, tb, attempts)
	tb.note("%d committed before the fault", before)
	tb.note("%d workers, deadline %s per transaction", restartWorkers, callDeadline)
	tb.note("pause-one took %s, resume-one %s; paused %s", took.Round(time.Millisecond),
		resumedIn.Round(time.Millisecond), stood.Round(time.Millisecond))
	tb.note("%d calls returned while paused", returnedInPause)
	tb.note("worst overshoot of a deadline %s (limit %s)", max(worst, 0).Round(time.Millisecond), deadlineSlack)
	tb.note("failed after the resume %d (begun after it %d)", len(afterResume), begunAfter)
	tb.note("every worker committed %d again within %s of the resume", commitsEach, recovery.Round(time.Millisecond))
	tb.log(t)
	if tb.failed["other"] > 0 {
		t.Errorf("%d transactions failed with errors of no known class", tb.failed["other"])
	}
}
