package session_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"

	mysqldrv "github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/session"
)

// handPools are pools opened by hand, outside dbfx, on every database.
var handPools = []struct {
	name   string
	dsn    func(testing.TB) string
	driver session.Driver
}{
	{"sqlite3", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "hand.db") }, sqlite3.Driver()},
	{"postgres", func(tb testing.TB) string { return fxtest.Postgres(tb).DSN }, postgres.Driver()},
	{"mysql", func(tb testing.TB) string { return fxtest.MySQL(tb).DSN }, mysqldrv.Driver()},
}

// gatedCalls are the ways a Manager reaches its pool: scopes, and
// statements outside any scope through Q and Prepared. fnRan counts the
// scopes' functions that ran.
func gatedCalls(m *session.Manager, fnRan *atomic.Int32) map[string]func(context.Context) error {
	insert := m.Rebind("INSERT INTO hand (id) VALUES (?)")
	var next atomic.Int64
	inScope := func(ctx context.Context) error {
		fnRan.Add(1)
		var n int
		return m.Q(ctx).GetContext(ctx, &n, "SELECT COUNT(*) FROM hand")
	}
	return map[string]func(context.Context) error{
		"Tx":       func(ctx context.Context) error { return m.Tx(ctx, inScope) },
		"ReadOnly": func(ctx context.Context) error { return m.ReadOnly(ctx, inScope) },
		"Conn":     func(ctx context.Context) error { return m.Conn(ctx, inScope) },
		"Supports": func(ctx context.Context) error { return m.Tx(ctx, inScope, session.Propagation(session.Supports)) },
		"Q.ExecContext": func(ctx context.Context) error {
			_, err := m.Q(ctx).ExecContext(ctx, insert, next.Add(1))
			return err
		},
		"Q.QueryRowxContext": func(ctx context.Context) error {
			var n int
			return m.Q(ctx).QueryRowxContext(ctx, "SELECT COUNT(*) FROM hand").Scan(&n)
		},
		"Q.QueryContext": func(ctx context.Context) error {
			rows, err := m.Q(ctx).QueryContext(ctx, "SELECT id FROM hand")
			if err != nil {
				return err
			}
			return rows.Close()
		},
		"Prepared.ExecContext": func(ctx context.Context) error {
			_, err := m.Prepared(ctx).ExecContext(ctx, insert, next.Add(1)+100)
			return err
		},
		"Prepared.SelectContext": func(ctx context.Context) error {
			var ids []int64
			return m.Prepared(ctx).SelectContext(ctx, &ids, m.Rebind("SELECT id FROM hand WHERE id > ?"), 0)
		},
	}
}

// TestWithGate: a Manager over a pool opened by hand is started from New
// on; with WithGate it refuses scopes and statements outside scopes with
// the gate's error while the gate is shut, before taking or opening any
// connection and leaving the statement cache as it was, and works once
// the gate opens. Close wins over a shut gate.
func TestWithGate(t *testing.T) {
	for _, tt := range handPools {
		t.Run(tt.name, func(t *testing.T) {
			dsn := tt.dsn(t)
			raw, err := sql.Open(tt.name, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			db := sqlx.NewDb(raw, tt.name)
			ctx := testContext(t)

			refused := fmt.Errorf("the app's own start: %w", session.ErrNotStarted)
			var open atomic.Bool
			gated, err := session.New(db, session.WithDriver(tt.driver),
				session.WithGate(func() error {
					if open.Load() {
						return nil
					}
					return refused
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer gated.Close(ctx)
			var fnRan atomic.Int32
			for name, call := range gatedCalls(gated, &fnRan) {
				if err := call(ctx); !errors.Is(err, refused) {
					t.Errorf("%s with the gate shut = %v, want the gate's error", name, err)
				}
			}
			if n := fnRan.Load(); n != 0 {
				t.Errorf("%d scope functions ran with the gate shut", n)
			}
			if st := raw.Stats(); st.OpenConnections != 0 || st.WaitCount != 0 {
				t.Errorf("with the gate shut the pool opened %d connections, waited %d times", st.OpenConnections, st.WaitCount)
			}
			if st := gated.Stats(); st.Statements != 0 || st.Active != 0 {
				t.Errorf("with the gate shut: %+v", st)
			}
			if tt.name == "sqlite3" {
				if _, err := os.Stat(dsn); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("with the gate shut the SQLite file exists (%v)", err)
				}
			}

			// A Manager from New without a gate is started at once.
			plain, err := session.New(db, session.WithDriver(tt.driver))
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close(ctx)
			if _, err := plain.Q(ctx).ExecContext(ctx, "CREATE TABLE hand (id BIGINT PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			for name, call := range gatedCalls(plain, &fnRan) {
				if err := call(ctx); err != nil {
					t.Errorf("%s without a gate: %v", name, err)
				}
			}

			open.Store(true)
			fnRan.Store(0)
			if _, err := raw.ExecContext(ctx, "DELETE FROM hand"); err != nil {
				t.Fatal(err)
			}
			for name, call := range gatedCalls(gated, &fnRan) {
				if err := call(ctx); err != nil {
					t.Errorf("%s with the gate open: %v", name, err)
				}
			}
			if n := fnRan.Load(); n != 4 {
				t.Errorf("%d scope functions ran with the gate open, want 4", n)
			}
			if n := gated.Stats().Statements; n != 2 {
				t.Errorf("%d statements cached with the gate open, want 2", n)
			}

			open.Store(false)
			if err := gated.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := gated.Tx(ctx, func(context.Context) error { return nil }); !errors.Is(err, session.ErrClosed) {
				t.Errorf("Tx after Close with the gate shut = %v, want ErrClosed", err)
			}
		})
	}
}

// TestGateInsideScopes: scopes opened inside a scope are not asked again:
// a gate that shuts while a Conn scope runs lets it finish, the
// transaction it begins inside included, and refuses the next outermost
// scope.
func TestGateInsideScopes(t *testing.T) {
	e := openEngine(t, fxtest.SQLite(t))
	var open atomic.Bool
	open.Store(true)
	m, err := session.New(e.DB(), session.WithDriver(sqlite3.Driver()),
		session.WithGate(func() error {
			if open.Load() {
				return nil
			}
			return session.ErrNotStarted
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	defer m.Close(ctx)
	err = m.Conn(ctx, func(ctx context.Context) error {
		open.Store(false)
		return m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 1) })
	})
	wantErrIs(t, "Conn whose gate shut inside", err, nil)
	wantIDs(t, e, 1)
	wantErrIs(t, "the next Conn", m.Conn(ctx, func(context.Context) error { return nil }), session.ErrNotStarted)
}

// dsnConnector opens connections of a driver by DSN.
type dsnConnector struct {
	dsn string
	d   driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.d }

// TestConnectorGateLeavesTheCacheClean: a preparation that fails because
// the pool's connector refuses to connect (an engine's pools before its
// start) leaves nothing in the statement cache: once the connector lets
// connections through, the same statement is prepared and runs.
func TestConnectorGateLeavesTheCacheClean(t *testing.T) {
	for _, tt := range handPools {
		t.Run(tt.name, func(t *testing.T) {
			dsn := tt.dsn(t)
			byName, err := sql.Open(tt.name, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer byName.Close()
			refused := fmt.Errorf("connector: %w", session.ErrNotStarted)
			var open atomic.Bool
			raw := sql.OpenDB(connwrap.Wrap(dsnConnector{dsn, byName.Driver()}, connwrap.Options{
				Dialect: tt.driver.Dialect(),
				Gate: func() error {
					if open.Load() {
						return nil
					}
					return refused
				},
			}))
			defer raw.Close()
			m, err := session.New(sqlx.NewDb(raw, tt.name), session.WithDriver(tt.driver))
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t)
			defer m.Close(ctx)
			get := m.Rebind("SELECT COUNT(*) FROM hand WHERE id > ?")
			var n int
			for i := range 2 {
				if err := m.Prepared(ctx).GetContext(ctx, &n, get, 0); !errors.Is(err, refused) {
					t.Fatalf("Prepared #%d, connector shut = %v, want its error", i+1, err)
				}
			}
			if n := m.Stats().Statements; n != 0 {
				t.Fatalf("%d statements cached after failed preparations", n)
			}
			open.Store(true)
			if _, err := m.Q(ctx).ExecContext(ctx, "CREATE TABLE hand (id BIGINT PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if err := m.Prepared(ctx).GetContext(ctx, &n, get, 0); err != nil {
					t.Fatalf("Prepared #%d, connector open: %v", i+1, err)
				}
			}
			if n := m.Stats().Statements; n != 1 {
				t.Fatalf("%d statements cached, want 1", n)
			}
		})
	}
}
