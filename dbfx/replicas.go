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
	err     atomic.Pointer[error] // why the last check failed
}

// replicaSet routes read-only scopes to healthy replicas, round robin, and
// checks them every HealthInterval in the background.
type replicaSet struct {
	log      *zap.Logger
	driver   string
	interval time.Duration
	rs       []*replica
	next     atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup
	closing  sync.Once
}

// pick returns the pool of the next healthy replica, or nil when none is:
// then the primary serves reads.
func (s *replicaSet) pick() *sqlx.DB {
	n := uint64(len(s.rs))
	if n == 0 {
		return nil
	}
	start := s.next.Add(1)
	for i := uint64(0); i < n; i++ {
		if r := s.rs[(start+i)%n]; r.healthy.Load() {
			return r.db
		}
	}
	return nil
}

// checkAll checks every replica at once, each within timeout.
func (s *replicaSet) checkAll(ctx context.Context, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, r := range s.rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			was := r.healthy.Load()
			err := r.check(cctx, s.driver)
			if err != nil {
				r.err.Store(&err)
			}
			r.healthy.Store(err == nil)
			switch {
			case was && err != nil:
				s.log.Warn("replica down: reads go elsewhere", zap.String("replica", r.r.Host),
					zap.String("error", r.r.redact(err.Error())))
			case !was && err == nil:
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
		if !r.healthy.Load() {
			h.Status = StatusDown
			if p := r.err.Load(); p != nil {
				h.Error = r.r.redact((*p).Error())
			}
		}
		out = append(out, h)
	}
	return out
}

// check pings the replica and measures how far it lags behind.
func (r *replica) check(ctx context.Context, driver string) error {
	if err := r.health.PingContext(ctx); err != nil {
		return err
	}
	lag, err := replicationLag(ctx, r.health, driver)
	if err != nil {
		return err
	}
	r.lag.Store(int64(lag))
	return nil
}

// replicationLag is how far behind its primary the server is; zero on a
// server that is not replicating.
func replicationLag(ctx context.Context, db *sql.DB, driver string) (time.Duration, error) {
	if driver != "mysql" {
		// Caught up when everything received is replayed; otherwise the
		// age of the last transaction replayed.
		var secs sql.NullFloat64
		err := db.QueryRowContext(ctx, `SELECT CASE
			WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
			ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END`).Scan(&secs)
		return time.Duration(secs.Float64 * float64(time.Second)), err
	}
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
