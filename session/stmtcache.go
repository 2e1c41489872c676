package session

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jmoiron/sqlx"
)

// DefaultStatementCache is how many prepared statements a Manager keeps
// unless WithStatementCache says otherwise.
const DefaultStatementCache = 256

// maxMissed bounds the statements a transaction leaves to be prepared
// after it (see txStmts).
const maxMissed = 16

// stmtCache keeps prepared statements, keyed by pool and SQL text, and
// closes the least recently used one beyond its size.
//
// A statement is a *sql.Stmt prepared on a pool: database/sql prepares it
// again, lazily, on each connection that runs it, and Tx.StmtContext binds
// it to a transaction's connection, reusing what is prepared there. So one
// entry serves every connection of its pool.
//
// The first caller of a text prepares it; those that come meanwhile wait
// for that one preparation instead of making their own. An entry is
// counted: the cache holds one reference while it keeps the entry, and
// each caller one while it runs the statement. database/sql's Stmt.Close
// waits for calls in flight and keeps the statement alive for the rows
// and transactions that use it, but a call that begins after Close fails
// ("sql: statement is closed"), so an entry evicted (or invalidated, or
// dropped at Close) is closed by whoever lets go of it last.
type stmtCache struct {
	size int

	mu     sync.Mutex
	items  map[stmtKey]*stmtEntry
	lru    stmtEntry // sentinel of the recency list: lru.next is the most recent
	closed bool

	prepared atomic.Int64 // statements prepared on a pool (not per connection)
	dropped  atomic.Int64 // statements closed
}

type stmtKey struct {
	db    *sqlx.DB
	query string
}

// stmtEntry is one statement of the cache. stmt and err are set once,
// before ready is closed.
type stmtEntry struct {
	key   stmtKey
	c     *stmtCache
	stmt  *sqlx.Stmt
	err   error
	ready chan struct{}
	refs  atomic.Int32

	prev, next *stmtEntry // in the recency list while cached (under c.mu)
	cached     bool
}

func newStmtCache(size int) *stmtCache {
	c := &stmtCache{size: size, items: make(map[stmtKey]*stmtEntry)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

// get returns the entry of query on db, prepared, with a reference the
// caller must release. It prepares it, or waits for the caller already
// preparing it. It returns nil and no error once the cache is closed, and
// the preparation's error when it fails.
func (c *stmtCache) get(ctx context.Context, db *sqlx.DB, query string) (*stmtEntry, error) {
	k := stmtKey{db, query}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, nil
		}
		if e := c.items[k]; e != nil {
			e.refs.Add(1)
			c.touch(e)
			c.mu.Unlock()
			if err := e.wait(ctx); err != nil {
				e.release()
				if ctx.Err() == nil && isCtxErr(err) {
					continue // the preparer gave up, not this caller: prepare it here
				}
				return nil, err
			}
			return e, nil
		}
		e := &stmtEntry{key: k, c: c, ready: make(chan struct{})}
		e.refs.Store(2) // the cache's and the caller's
		c.items[k] = e
		c.pushFront(e)
		var victim *stmtEntry
		if len(c.items) > c.size {
			victim = c.lru.prev
			c.unlink(victim)
		}
		c.mu.Unlock()
		if victim != nil {
			victim.release()
		}
		if err := e.prepare(ctx); err != nil {
			return nil, err
		}
		return e, nil
	}
}

// peek returns the entry of query on db when it is prepared, with a
// reference, without waiting; present says whether it is there at all
// (being prepared when e is nil).
func (c *stmtCache) peek(db *sqlx.DB, query string) (e *stmtEntry, present bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, true
	}
	e = c.items[stmtKey{db, query}]
	if e == nil {
		return nil, false
	}
	select {
	case <-e.ready: // a failed preparation leaves the cache before ready closes
		e.refs.Add(1)
		c.touch(e)
		return e, true
	default:
		return nil, true
	}
}

// invalidate drops e from the cache, if it is still there: the database
// said its statement is gone or stale. The next get prepares it anew.
func (c *stmtCache) invalidate(e *stmtEntry) {
	c.mu.Lock()
	cached := e.cached
	if cached {
		c.unlink(e)
	}
	c.mu.Unlock()
	if cached {
		e.release()
	}
}

// close drops every entry; each statement is closed once no caller uses
// it. Later gets return nil: statements then run as they are.
func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	var all []*stmtEntry
	for e := c.lru.next; e != &c.lru; e = e.next {
		all = append(all, e)
	}
	for _, e := range all {
		c.unlink(e)
	}
	c.mu.Unlock()
	for _, e := range all {
		e.release()
	}
}

// len is the number of entries cached.
func (c *stmtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// The recency list, under c.mu.

func (c *stmtCache) pushFront(e *stmtEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	e.next.prev, c.lru.next = e, e
	e.cached = true
}

func (c *stmtCache) touch(e *stmtEntry) {
	if c.lru.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &c.lru, c.lru.next
	e.next.prev, c.lru.next = e, e
}

func (c *stmtCache) unlink(e *stmtEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	e.cached = false
	delete(c.items, e.key)
}

// prepare prepares e's statement on its pool and makes it ready. A failed
// preparation leaves the cache, so that the next caller tries again.
func (e *stmtEntry) prepare(ctx context.Context) error {
	st, err := e.key.db.PreparexContext(ctx, e.key.query)
	if err != nil {
		e.err = err
		e.c.invalidate(e)
		close(e.ready)
		e.release()
		return err
	}
	e.c.prepared.Add(1)
	e.stmt = st
	close(e.ready)
	return nil
}

// wait waits until e is prepared, or ctx ends.
func (e *stmtEntry) wait(ctx context.Context) error {
	select {
	case <-e.ready:
		return e.err
	default:
	}
	select {
	case <-e.ready:
		return e.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release lets go of a reference; the last one closes the statement.
func (e *stmtEntry) release() {
	if e.refs.Add(-1) == 0 && e.stmt != nil {
		_ = e.stmt.Close()
		e.c.dropped.Add(1)
	}
}

// txStmts are the cached statements bound to one transaction
// (Tx.StmtContext), by text, and the texts it ran unprepared because no
// connection of its pool was free to prepare them on: it prepares those
// once it has given its own connection back (SQLite's writer has one).
type txStmts struct {
	mu     sync.Mutex
	byText map[string]txStmt
	missed []string
}

type txStmt struct {
	st *sqlx.Stmt
	e  *stmtEntry // the cached statement it was bound from; nil: prepared on the transaction
}

func (t *txStmts) lookup(query string) (txStmt, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.byText[query]
	return ts, ok
}

func (t *txStmts) store(query string, ts txStmt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byText == nil {
		t.byText = make(map[string]txStmt)
	}
	t.byText[query] = ts
}

// forget drops the statement of query, which failed: the next use binds
// it again. (Its Stmt is closed with the transaction.)
func (t *txStmts) forget(query string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byText, query)
}

// miss notes that query ran as it is, for want of a free connection to
// prepare it on, and reports whether it had already in this transaction.
func (t *txStmts) miss(query string) (again bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Contains(t.missed, query) {
		return true
	}
	if len(t.missed) < maxMissed {
		t.missed = append(t.missed, query)
	}
	return false
}

func (t *txStmts) takeMissed() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.missed
	t.missed = nil
	return m
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
