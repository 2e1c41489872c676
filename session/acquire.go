package session

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// poolSide is the side a connection comes from: the writer pool, or a pool
// of read-only scopes (the reader pool or a replica). A pool's connections
// held by enclosing scopes are those of its side.
type poolSide uint8

const (
	onWriter poolSide = iota
	onReader
)

// readPool is the pool of a read-only scope that begins a transaction
// under ctx: SQLite's reader pool, a replica (see ReadYourWrites), or nil
// for the writer.
func (m *Manager) readPool(ctx context.Context, level sql.IsolationLevel) *sqlx.DB {
	if m.r != nil {
		return m.r
	}
	if m.cfg.replicas != nil && level != sql.LevelSerializable {
		return m.pickReplica(ctx)
	}
	return nil
}

// acquireFor takes a connection from pool for a scope, or a statement,
// inside the scope parent (nil: none), failing fast when the enclosing
// scopes already hold every connection of pool.
func (m *Manager) acquireFor(ctx context.Context, parent *scope, pool *sqlx.DB, side poolSide) (*sqlx.Conn, error) {
	if err := m.checkSpare(ctx, parent, pool, side); err != nil {
		return nil, err
	}
	return m.acquire(ctx, pool)
}

// checkSpare fails fast when the enclosing scopes (parent and its
// ancestors) already hold every connection pool may open, so that waiting
// for another could only time out: a RequiresNew scope, or a NotSupported
// one that needs the pool, inside a transaction on SQLite's single writer.
func (m *Manager) checkSpare(ctx context.Context, parent *scope, pool *sqlx.DB, side poolSide) error {
	if parent == nil {
		return nil
	}
	max := pool.Stats().MaxOpenConnections
	if max <= 0 {
		return nil
	}
	held := 0
	for p := parent; p != nil; p = p.parent {
		if p.ownsConn && p.side == side {
			held++
		}
	}
	if held < max {
		return nil
	}
	m.acquireTimedOut(ctx, 0)
	return fmt.Errorf("%w: another connection is needed, but the enclosing scopes hold all %d the pool may open",
		ErrAcquireTimeout, max)
}

// acquire takes a connection from pool, waiting at most the acquire
// timeout.
func (m *Manager) acquire(ctx context.Context, pool *sqlx.DB) (*sqlx.Conn, error) {
	m.waiting.Add(1)
	defer m.waiting.Add(-1)
	if m.cfg.acquireTimeout <= 0 || hasIdle(pool) {
		// With a connection idle in the pool the wait is none, and no
		// timer is set for it. One that another caller takes in between
		// is waited for within ctx alone, as for Prepared's statements.
		c, err := pool.Connx(ctx)
		return m.cutShort(c, err)
	}
	actx, cancel := context.WithTimeout(ctx, m.cfg.acquireTimeout)
	c, err := pool.Connx(actx)
	cancel()
	if c, err = m.cutShort(c, err); errors.Is(err, errClosing) {
		return nil, err
	}
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		m.acquireTimedOut(ctx, m.cfg.acquireTimeout)
		st := pool.Stats()
		return nil, fmt.Errorf("%w: no connection free within %s (%d of %d in use)",
			ErrAcquireTimeout, m.cfg.acquireTimeout, st.InUse, st.MaxOpenConnections)
	}
	return c, err
}

// cutShort ends the wait of a scope for a connection once Close has given
// up waiting, for the scope must not run: a connection that arrived is
// closed (Close cancels the scope's ctx, but the cancellation may arrive
// after the connection), and a failure, such as the "sql: database is
// closed" of a pool its owner closed meanwhile, becomes errClosing.
// Otherwise it returns c and err as they are.
func (m *Manager) cutShort(c *sqlx.Conn, err error) (*sqlx.Conn, error) {
	if m.kill.Err() == nil {
		return c, err
	}
	if c != nil {
		_ = c.Close()
	}
	return nil, errClosing
}
