package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/session"
)

// killRounds is how many times each kind of kill is done.
const killRounds = 10

// killLimit bounds a transaction whose connection was killed: it must end
// with an error well before opTimeout would end it.
const killLimit = 5 * time.Second

func TestPostgresKill(t *testing.T) { killConnections(t, "pg", "postgres") }

func TestMariaDBKill(t *testing.T) { killConnections(t, "mariadb", "mysql") }

// killer kills connections from the server side, from a connection of
// its own.
type killer struct {
	db         *sql.DB
	driverName string
}

// backend is the server's id of the scope's connection.
func (k killer) backend(ctx context.Context, m *session.Manager) (int64, error) {
	q := "SELECT pg_backend_pid()"
	if k.driverName == "mysql" {
		q = "SELECT CONNECTION_ID()"
	}
	var id int64
	err := m.Q(ctx).GetContext(ctx, &id, q)
	return id, err
}

// kill ends connection id from the server side and returns once it is gone.
func (k killer) kill(ctx context.Context, id int64) error {
	if k.driverName != "mysql" {
		// With a timeout, pg_terminate_backend waits until the backend
		// has exited.
		var ok bool
		if err := k.db.QueryRowContext(ctx, "SELECT pg_terminate_backend($1, 5000)", id).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("backend %d is still there", id)
		}
		return nil
	}
	if _, err := k.db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
		return err
	}
	// KILL returns before the connection's thread has gone: there is no
	// event to wait for, so poll the process list, bounded.
	return k.poll(ctx, "gone", "SELECT COUNT(*) = 0 FROM information_schema.PROCESSLIST WHERE ID = ?", id)
}

// killWhenRunning kills connection id once it runs the sleep statement.
func (k killer) killWhenRunning(ctx context.Context, id int64) error {
	q := "SELECT COUNT(*) > 0 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'"
	if k.driverName == "mysql" {
		q = "SELECT COUNT(*) > 0 FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'DO SLEEP%'"
	}
	if err := k.poll(ctx, "running the sleep", q, id); err != nil {
		return err
	}
	return k.kill(ctx, id)
}

// poll runs q (a boolean) every 10ms until it is true, at most 5s.
func (k killer) poll(ctx context.Context, what, q string, id int64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		var ok bool
		if err := k.db.QueryRowContext(ctx, q, id).Scan(&ok); err != nil {
			return fmt.Errorf("connection %d %s: %w", id, what, err)
		}
		if ok {
			return nil
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("connection %d not %s within 5s", id, what)
		}
	}
}

// killConnections kills the connection of scopes in flight, from the
// server side: between two statements of a write transaction, after its
// last statement (so on COMMIT), during a statement, and in a read-only
// transaction, which is retried.
func killConnections(t *testing.T, prefix, driverName string) {
	s := begin(t)
	dsn := s.database(t, driverName)
	db := direct(t, driverName, dsn)
	createTables(t, db)
	e := openEngine(t, dbfx.Config{Driver: driverName, DSN: dsn, MaxOpenConns: 4,
		AcquireTimeout: 5 * time.Second, ConnectTimeout: 10 * time.Second})
	m := e.Sessions()
	k := killer{db: direct(t, driverName, dsn), driverName: driverName}
	sleep := sleepSQL(driverName, 30*time.Second)

	writes := []struct {
		name string
		fn   func(ctx context.Context, id int64) error
	}{
		{"between statements", func(ctx context.Context, id int64) error {
			q := m.Q(ctx)
			if _, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fa (id) VALUES (?)"), id); err != nil {
				return err
			}
			pid, err := k.backend(ctx, m)
			if err != nil {
				return err
			}
			if err := k.kill(ctx, pid); err != nil {
				t.Errorf("kill: %v", err)
			}
			_, err = q.ExecContext(ctx, m.Rebind("INSERT INTO fb (id) VALUES (?)"), id)
			return err
		}},
		{"before commit", func(ctx context.Context, id int64) error {
			q := m.Q(ctx)
			if _, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fa (id) VALUES (?)"), id); err != nil {
				return err
			}
			if _, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fb (id) VALUES (?)"), id); err != nil {
				return err
			}
			pid, err := k.backend(ctx, m)
			if err != nil {
				return err
			}
			if err := k.kill(ctx, pid); err != nil {
				t.Errorf("kill: %v", err)
			}
			return nil // COMMIT goes to a connection that is gone
		}},
		{"during a statement", func(ctx context.Context, id int64) error {
			q := m.Q(ctx)
			if _, err := q.ExecContext(ctx, m.Rebind("INSERT INTO fa (id) VALUES (?)"), id); err != nil {
				return err
			}
			pid, err := k.backend(ctx, m)
			if err != nil {
				return err
			}
			killed := make(chan error, 1)
			go func() { killed <- k.killWhenRunning(context.WithoutCancel(ctx), pid) }()
			_, err = q.ExecContext(ctx, sleep)
			if kerr := <-killed; kerr != nil {
				t.Errorf("kill: %v", kerr)
			}
			if err != nil {
				return err
			}
			_, err = q.ExecContext(ctx, m.Rebind("INSERT INTO fb (id) VALUES (?)"), id)
			return err
		}},
	}
	for v, w := range writes {
		tb := newTable(prefix + " kill " + w.name)
		var attempts []attempt
		for round := range killRounds {
			id := int64((v+1)*1000 + round)
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			begun := time.Now()
			err := m.Tx(ctx, func(ctx context.Context) error { return w.fn(ctx, id) })
			took := time.Since(begun)
			cancel()
			if err == nil {
				t.Errorf("%s: the transaction whose connection was killed returned nil", w.name)
			}
			attempts = append(attempts, attempt{id: id, err: err, took: took})
		}
		longest := checkTimes(t, attempts, killLimit)
		reconcile(t, db, tb, attempts)
		tb.note("longest transaction %s", longest.Round(time.Millisecond))
		tb.log(t)
		if tb.failed["other"] > 0 {
			t.Errorf("%s: %d transactions failed with errors of no known class", w.name, tb.failed["other"])
		}
	}

	// A read-only transaction whose connection is lost wrote nothing: it
	// is retried on another connection, and succeeds, whether the
	// connection was lost on a statement or on COMMIT.
	for _, beforeCommit := range []bool{false, true} {
		name := prefix + " kill read-only between statements (retried)"
		if beforeCommit {
			name = prefix + " kill read-only before commit (retried)"
		}
		tb := newTable(name)
		var longest time.Duration
		for range killRounds {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			calls := 0
			begun := time.Now()
			err := m.ReadOnly(ctx, func(ctx context.Context) error {
				calls++
				var n int
				if err := m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM fa"); err != nil {
					return err
				}
				if calls == 1 {
					pid, err := k.backend(ctx, m)
					if err != nil {
						return err
					}
					if err := k.kill(ctx, pid); err != nil {
						t.Errorf("kill: %v", err)
					}
				}
				if beforeCommit {
					return nil
				}
				return m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM fb")
			})
			took := time.Since(begun)
			cancel()
			longest = max(longest, took)
			tb.add(err)
			switch {
			case err != nil:
				t.Errorf("%s: %v, want a successful retry", name, err)
			case calls != 2:
				t.Errorf("%s: fn ran %d times, want 2 (killed, then retried)", name, calls)
			}
			if took > killLimit {
				t.Errorf("%s: took %s", name, took)
			}
		}
		tb.note("longest transaction %s", longest.Round(time.Millisecond))
		tb.log(t)
	}

	// The engine goes on: the connections killed were dropped from the pool.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for i := range 8 {
		if err := insert(ctx, m, int64(900_000+i), ""); err != nil {
			t.Errorf("a transaction after the kills: %v", err)
		}
	}
}
