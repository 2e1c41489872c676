package dbfx

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"go.uber.org/zap"
)

// replica is one read-only database that read-only scopes may use.
type replica struct {
	r       *resolved
	db      *sqlx.DB // the pool scopes use
	health  *sql.DB  // one connection for checks, kept apart from the pool
	healthy atomic.Bool
	lag     atomic.Int64          // replication delay in ns, as last measured
	lagging atomic.Bool           // lag exceeds Config.MaxReplicaLag: it serves no reads
	err     atomic.Pointer[error] // why the last check failed
	// replayed is the primary's WAL position (PostgreSQL) that the replica
	// had replayed at its last check; 0 when unknown (MySQL).
	replayed atomic.Uint64
}

// replicaSet routes read-only scopes to healthy replicas, round robin, and
// checks them every HealthInterval in the background.
type replicaSet struct {
	log      *zap.Logger
	driver   string
	interval time.Duration
	maxLag   time.Duration // Config.MaxReplicaLag; 0: any
	// primaryPos reads the primary's WAL insert position (PostgreSQL);
	// nil for MySQL.
	primaryPos func(ctx context.Context) (uint64, error)
	samples    posSamples // the primary's positions at past checks
	rs         []*replica
	next       atomic.Uint64
	stop       chan struct{}
	wg         sync.WaitGroup
	closing    sync.Once
}

// pick returns the pool of the next replica that serves reads (healthy,
// not lagging past MaxReplicaLag), or nil when none does: then the
// primary serves reads.
func (s *replicaSet) pick() *sqlx.DB { return s.pickAt(0) }

// pickAt is pick among the replicas that had replayed the primary's
// position pos at their last check (session.ReadYourWrites).
func (s *replicaSet) pickAt(pos uint64) *sqlx.DB {
	n := uint64(len(s.rs))
	if n == 0 {
		return nil
	}
	start := s.next.Add(1)
	for i := uint64(0); i < n; i++ {
		if r := s.rs[(start+i)%n]; r.healthy.Load() && !r.lagging.Load() && (pos == 0 || r.replayed.Load() >= pos) {
			return r.db
		}
	}
	return nil
}

// checkAll checks every replica at once, each within timeout: first the
// primary's position (PostgreSQL), then each replica against it.
func (s *replicaSet) checkAll(ctx context.Context, timeout time.Duration) {
	at := time.Now()
	primary, known := uint64(0), false
	if s.primaryPos != nil {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		p, err := s.primaryPos(cctx)
		cancel()
		if err == nil {
			primary, known = p, true
			s.samples.add(at, p)
		}
	}
	var wg sync.WaitGroup
	for _, r := range s.rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			was, wasLagging := r.healthy.Load(), r.lagging.Load()
			err := r.check(cctx, s, at, primary, known)
			if err != nil {
				r.err.Store(&err)
			}
			r.healthy.Store(err == nil)
			lagging := err == nil && s.maxLag > 0 && time.Duration(r.lag.Load()) > s.maxLag
			r.lagging.Store(lagging)
			switch {
			case was && err != nil:
				s.log.Warn("replica down: reads go elsewhere", zap.String("replica", r.r.Host),
					zap.String("error", r.r.redact(err.Error())))
			case lagging && (!wasLagging || !was):
				s.log.Warn("replica lags behind its primary past MaxReplicaLag: reads go elsewhere", zap.String("replica", r.r.Host),
					zap.Duration("lag", time.Duration(r.lag.Load())), zap.Duration("max_replica_lag", s.maxLag))
			case err == nil && !lagging && (!was || wasLagging):
				s.log.Info("replica up: serving reads", zap.String("replica", r.r.Host))
			}
		}()
	}
	wg.Wait()
}

// run checks the replicas every interval until stop is closed.
func (s *replicaSet) run() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.checkAll(context.Background(), s.interval)
		}
	}
}

func (s *replicaSet) start() {
	s.stop = make(chan struct{})
	s.wg.Add(1)
	go s.run()
}

// close stops the checks and closes the replicas' pools.
func (s *replicaSet) close() []error {
	var errs []error
	s.closing.Do(func() {
		if s.stop != nil {
			close(s.stop)
			s.wg.Wait()
		}
		for _, r := range s.rs {
			errs = append(errs, r.db.Close(), r.health.Close())
		}
	})
	return errs
}

// health reports each replica as last checked, in the order of
// Config.Replicas.
func (s *replicaSet) health() []ReplicaHealth {
	out := make([]ReplicaHealth, 0, len(s.rs))
	for _, r := range s.rs {
		h := ReplicaHealth{Host: r.r.Host, Status: StatusOK, Lag: time.Duration(r.lag.Load())}
		switch {
		case !r.healthy.Load():
			h.Status = StatusDown
			if p := r.err.Load(); p != nil {
				h.Error = r.r.redact((*p).Error())
			}
		case r.lagging.Load():
			h.Status, h.Lagging = StatusDegraded, true
			h.Error = "lags " + h.Lag.Round(time.Millisecond).String() + " behind its primary, past MaxReplicaLag " + s.maxLag.String()
		}
		out = append(out, h)
	}
	return out
}

// check pings the replica and measures how far it lags behind; at is
// when the check began, primary the primary's position then (known
// false: it could not be read).
func (r *replica) check(ctx context.Context, s *replicaSet, at time.Time, primary uint64, known bool) error {
	if err := r.health.PingContext(ctx); err != nil {
		return err
	}
	var lag time.Duration
	var err error
	if s.driver == "mysql" {
		lag, err = mysqlLag(ctx, r.health)
	} else {
		var replayed uint64
		lag, replayed, err = pgLag(ctx, r.health, &s.samples, at, primary, known)
		r.replayed.Store(replayed)
	}
	if err != nil {
		return err
	}
	r.lag.Store(int64(lag))
	return nil
}

// pgLagSQL reads what a PostgreSQL standby has replayed: whether it is a
// standby, the position replayed (bytes of WAL), whether it has replayed
// all it received, and the age of the last transaction replayed (its
// commit time on the primary, against the standby's clock).
const pgLagSQL = `SELECT pg_is_in_recovery(),
	COALESCE(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint,
	COALESCE(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), false),
	EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())`

// pgLag is how far behind its primary a PostgreSQL standby is, and the
// primary's position it has replayed.
//
// Replay lag is measured in time, as MaxReplicaLag is, and the server has
// no such figure: now() - pg_last_xact_replay_timestamp() is the age of
// the last transaction replayed, which is the lag only while the primary
// commits all the time. When the primary is idle, that age grows though
// the standby has replayed everything: a standby would be dropped for
// being up to date. And "everything received is replayed" says nothing of
// what the standby has not received yet. So the primary's WAL position is
// read at each check (before the standby's), and:
//
//   - a standby that has replayed the primary's position of this check is
//     0 behind;
//   - otherwise it holds everything the primary had written by the last
//     check whose position it has replayed (posSamples): it is at most
//     the time since that check behind; and it holds every transaction up
//     to the last it replayed: at most that transaction's age behind. The
//     lag is the smaller bound: accurate to the commit under a steady
//     stream of writes, to one HealthInterval when the primary wrote once
//     after a long pause;
//   - without the primary's position (it does not answer) it falls back
//     to the server's view: 0 when everything received is replayed, else
//     the age of the last transaction replayed.
//
// A server that is not in recovery is not replicating: 0, and nothing
// replayed (read-your-writes reads do not go there).
func pgLag(ctx context.Context, db *sql.DB, samples *posSamples, at time.Time, primary uint64, known bool) (time.Duration, uint64, error) {
	var inRecovery, allReplayed bool
	var replayed int64
	var age sql.NullFloat64
	if err := db.QueryRowContext(ctx, pgLagSQL).Scan(&inRecovery, &replayed, &allReplayed, &age); err != nil {
		return 0, 0, err
	}
	if !inRecovery {
		return 0, 0, nil
	}
	pos := uint64(max(replayed, 0))
	ageBound := time.Duration(-1)
	if age.Valid {
		ageBound = max(time.Duration(age.Float64*float64(time.Second)), 0)
	}
	switch {
	case known && pos >= primary:
		return 0, pos, nil
	case !known:
		if allReplayed {
			return 0, pos, nil
		}
		return max(ageBound, 0), pos, nil
	}
	since, ok := samples.heldSince(pos)
	switch {
	case ok && ageBound >= 0:
		return min(at.Sub(since), ageBound), pos, nil
	case ok:
		return at.Sub(since), pos, nil
	case ageBound >= 0:
		return ageBound, pos, nil
	}
	// Behind the oldest position kept, with no transaction replayed yet:
	// at least that far behind.
	return at.Sub(samples.oldest()), pos, nil
}

// posSamples are the primary's WAL positions at past checks, oldest
// first, the last maxPosSamples of them.
type posSamples struct {
	mu sync.Mutex
	s  []posSample
}

type posSample struct {
	at  time.Time
	pos uint64
}

// maxPosSamples bounds the samples kept: at the default HealthInterval,
// almost three hours of them.
const maxPosSamples = 1024

func (p *posSamples) add(at time.Time, pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.s) == maxPosSamples {
		p.s = append(p.s[:0], p.s[1:]...)
	}
	p.s = append(p.s, posSample{at, pos})
}

// heldSince is the time of the last sample whose position is at most pos:
// a server that replayed pos holds everything written by then.
func (p *posSamples) heldSince(pos uint64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.s) - 1; i >= 0; i-- {
		if p.s[i].pos <= pos {
			return p.s[i].at, true
		}
	}
	return time.Time{}, false
}

func (p *posSamples) oldest() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.s) == 0 {
		return time.Now()
	}
	return p.s[0].at
}

// pgPositionSQL reads a PostgreSQL primary's WAL insert position: past
// every transaction committed (also with synchronous_commit off, whose
// commits may not be written yet).
const pgPositionSQL = `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`

// pgPosition reads the WAL insert position of the primary db.
func pgPosition(ctx context.Context, db interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (uint64, error) {
	var pos int64
	if err := db.QueryRowContext(ctx, pgPositionSQL).Scan(&pos); err != nil {
		return 0, err
	}
	return uint64(max(pos, 0)), nil
}

// mysqlLag is how far behind its primary a MySQL or MariaDB replica is,
// as SHOW REPLICA STATUS says (Seconds_Behind_Master, or _Source); zero
// on a server that is not replicating.
func mysqlLag(ctx context.Context, db *sql.DB) (time.Duration, error) {
	rows, err := db.QueryContext(ctx, "SHOW REPLICA STATUS")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || !rows.Next() {
		return 0, err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return 0, err
	}
	for i, c := range cols {
		if strings.HasPrefix(c, "Seconds_Behind_") {
			if !vals[i].Valid {
				return 0, errors.New("replication is stopped")
			}
			secs, err := strconv.Atoi(vals[i].String)
			return time.Duration(secs) * time.Second, err
		}
	}
	return 0, rows.Err()
}
