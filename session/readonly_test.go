package session_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

func TestReadOnlyRefusesWrites(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		mustExec(t, e, "INSERT INTO items (id) VALUES (1)")

		var stmtErr error
		err := m.ReadOnly(ctx, func(ctx context.Context) error {
			if !m.InTx(ctx) {
				t.Error("InTx is false in a ReadOnly scope")
			}
			n, err := count(ctx, m)
			if err != nil || n != 1 {
				t.Errorf("count in ReadOnly = %d, %v; want 1", n, err)
			}
			stmtErr = insert(ctx, m, 2)
			return stmtErr
		})
		wantErrIs(t, "the write", stmtErr, session.ErrReadOnly)
		wantErrIs(t, "ReadOnly", err, session.ErrReadOnly)

		// Swallowed, the refused write still leaves nothing behind.
		err = m.ReadOnly(ctx, func(ctx context.Context) error {
			_ = insert(ctx, m, 3)
			return nil
		})
		if err != nil {
			t.Logf("ReadOnly with a swallowed write error: %v", err)
		}
		wantIDs(t, e, 1)

		// The connection is writable again afterwards (on SQLite in memory
		// query_only was reset).
		wantErrIs(t, "Tx after ReadOnly", m.Tx(ctx, func(ctx context.Context) error { return insert(ctx, m, 4) }), nil)
		wantErrIs(t, "write outside any scope", insert(ctx, m, 5), nil)
		wantIDs(t, e, 1, 4, 5)
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestReadOnlyJoinsAnOuterWriteTransaction(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		err := m.Tx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, m, 1); err != nil {
				return err
			}
			return m.ReadOnly(ctx, func(ctx context.Context) error {
				n, err := count(ctx, m)
				if err != nil {
					return err
				}
				if n != 1 {
					t.Errorf("ReadOnly inside Tx sees %d rows, want the outer's uncommitted 1", n)
				}
				return nil
			})
		})
		wantErrIs(t, "Tx", err, nil)
		wantIDs(t, e, 1)
		fxtest.RequireNoLeaks(t, e)
	})
}

func TestReadWriteScopeInsideReadOnlyIsRefused(t *testing.T) {
	eachWithMemory(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		tests := []struct {
			name string
			give session.Mode
		}{
			{"Required", session.Required},
			{"Nested", session.Nested},
			{"Mandatory", session.Mandatory},
			{"Supports", session.Supports},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ran := false
				var innerErr error
				err := m.ReadOnly(ctx, func(ctx context.Context) error {
					innerErr = m.Tx(ctx, func(ctx context.Context) error {
						ran = true
						return insert(ctx, m, 1)
					}, session.Propagation(tt.give))
					return innerErr
				})
				wantErrIs(t, "Tx inside ReadOnly", innerErr, session.ErrReadOnly)
				wantErrIs(t, "ReadOnly", err, session.ErrReadOnly)
				if ran {
					t.Error("fn of the read-write scope ran")
				}
				wantIDs(t, e)
			})
		}
		// A read-only scope nests in a read-only transaction.
		err := m.ReadOnly(ctx, func(ctx context.Context) error {
			return m.ReadOnly(ctx, func(ctx context.Context) error {
				_, err := count(ctx, m)
				return err
			}, session.Propagation(session.Nested))
		})
		wantErrIs(t, "Nested ReadOnly in ReadOnly", err, nil)
		fxtest.RequireNoLeaks(t, e)
	})
}

// On a SQLite file, read-only scopes use the reader pool: one runs, and
// sees the committed data, while a transaction holds the only writer.
func TestSQLiteReadOnlyRunsWhileTheWriterIsHeld(t *testing.T) {
	e := openEngine(t, fxtest.SQLite(t))
	m := e.Sessions()
	ctx := testContext(t)
	mustExec(t, e, "INSERT INTO items (id) VALUES (1)")

	type result struct {
		n   int
		err error
	}
	readDone := make(chan result, 1)
	err := m.Tx(ctx, func(ctx context.Context) error {
		if err := insert(ctx, m, 2); err != nil {
			return err
		}
		// The reader runs on its own ctx: it is not part of this scope.
		go func() {
			var r result
			r.err = m.ReadOnly(testContext(t), func(ctx context.Context) error {
				var err error
				r.n, err = count(ctx, m)
				return err
			})
			readDone <- r
		}()
		select {
		case r := <-readDone:
			if r.err != nil || r.n != 1 {
				t.Errorf("ReadOnly while the writer is held = %d, %v; want the committed 1 row", r.n, r.err)
			}
		case <-ctx.Done():
			t.Error("ReadOnly waited for the writer's transaction")
			return ctx.Err()
		}
		return nil
	})
	wantErrIs(t, "Tx", err, nil)
	wantIDs(t, e, 1, 2)
	fxtest.RequireNoLeaks(t, e)
}

func TestIsolationLevels(t *testing.T) {
	tests := []struct {
		give sql.IsolationLevel
		// wantOK lists the drivers that accept the level.
		wantOK map[string]bool
		// wantSeesNewRows: a second read in the transaction sees a row
		// committed since the first (checked where the level is accepted
		// and a concurrent insert does not block).
		wantSeesNewRows *bool
	}{
		{give: sql.LevelDefault, wantOK: map[string]bool{"sqlite3": true, "postgres": true, "mysql": true}},
		{give: sql.LevelReadUncommitted, wantOK: map[string]bool{"postgres": true, "mysql": true}},
		{give: sql.LevelReadCommitted, wantOK: map[string]bool{"postgres": true, "mysql": true}, wantSeesNewRows: ptr(true)},
		{give: sql.LevelRepeatableRead, wantOK: map[string]bool{"postgres": true, "mysql": true}, wantSeesNewRows: ptr(false)},
		{give: sql.LevelSerializable, wantOK: map[string]bool{"sqlite3": true, "postgres": true, "mysql": true}},
		{give: sql.LevelSnapshot, wantOK: map[string]bool{}},
		{give: sql.LevelLinearizable, wantOK: map[string]bool{}},
		{give: sql.LevelWriteCommitted, wantOK: map[string]bool{}},
	}
	pgLevel := map[sql.IsolationLevel]string{
		sql.LevelReadUncommitted: "read uncommitted", sql.LevelReadCommitted: "read committed",
		sql.LevelRepeatableRead: "repeatable read", sql.LevelSerializable: "serializable",
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		m := e.Sessions()
		ctx := testContext(t)
		next := 0
		for _, tt := range tests {
			t.Run(tt.give.String(), func(t *testing.T) {
				for _, readOnly := range []bool{false, true} {
					scope := m.Tx
					if readOnly {
						scope = m.ReadOnly
					}
					ran := false
					err := scope(ctx, func(ctx context.Context) error {
						ran = true
						if e.Driver() == "postgres" && tt.give != sql.LevelDefault {
							var level string
							if err := m.Q(ctx).GetContext(ctx, &level, "SHOW transaction_isolation"); err != nil {
								return err
							}
							if level != pgLevel[tt.give] {
								t.Errorf("the transaction runs at %q, want %q", level, pgLevel[tt.give])
							}
						}
						if tt.wantSeesNewRows == nil {
							_, err := count(ctx, m)
							return err
						}
						before, err := count(ctx, m)
						if err != nil {
							return err
						}
						next++
						mustExec(t, e, "INSERT INTO items (id) VALUES (?)", next) // another connection, committed
						after, err := count(ctx, m)
						if err != nil {
							return err
						}
						if sees := after > before; sees != *tt.wantSeesNewRows {
							t.Errorf("the second read sees the new row: %v, want %v", sees, *tt.wantSeesNewRows)
						}
						return nil
					}, session.Isolation(tt.give))
					if !tt.wantOK[e.Driver()] {
						if err == nil || ran {
							t.Fatalf("readOnly=%v: Tx = %v (fn ran: %v), want an error before BEGIN", readOnly, err, ran)
						}
						continue
					}
					if err != nil {
						t.Fatalf("readOnly=%v: Tx = %v", readOnly, err)
					}
				}
			})
		}
		fxtest.RequireNoLeaks(t, e)
	})
}

func ptr[T any](v T) *T { return &v }
