package session

import (
	"context"
	"math"

	"github.com/jmoiron/sqlx"
)

// WithReplicaPositions lets ReadYourWrites send a ctx's read-only scopes
// to a replica that has replayed the caller's writes, rather than to the
// primary: position returns the primary's write position now (PostgreSQL:
// its WAL insert location), a number that only grows, and pickAt(pos)
// returns a replica that has replayed at least pos, or nil when none has
// (the primary then serves the scope). Without it, a ctx marked by
// ReadYourWrites reads from the primary. It needs WithReplicas.
func WithReplicaPositions(position func(ctx context.Context) (uint64, error), pickAt func(pos uint64) *sqlx.DB) Option {
	return func(c *config) { c.position, c.pickAt = position, pickAt }
}

// rywKey is the ctx key of ReadYourWrites' mark, private to one Manager.
type rywKey struct{ m *Manager }

// ReadYourWrites returns a ctx whose read-only scopes of this Manager see
// every write committed before the call: call it after a write (after Tx
// returned, or after a statement outside any scope committed), and use the
// ctx it returns for the reads that must see that write, such as the rest
// of the request.
//
// Read-only scopes go to replicas (WithReplicas), which replay the
// primary's writes some time after they commit. Under the returned ctx a
// read-only scope goes to a replica only once that replica has replayed
// the primary's position as ReadYourWrites read it (WithReplicaPositions,
// as dbfx's engines on PostgreSQL give: the replica's replayed position
// is known from its last health check, so a replica serves the ctx again
// at most one HealthInterval after it caught up); until then, and on a
// database without positions (MySQL), the primary serves them. It costs
// one statement on the primary per call, and nothing without replicas:
// ctx is returned as it is.
//
// Called inside a transaction of this Manager, whose writes are not
// committed yet, the ctx reads from the primary for good: call it after
// the commit. A position that cannot be read (the primary does not
// answer) has the same effect: the primary is never wrong, only busier.
// Calling it again under the returned ctx moves the mark to the newer
// position.
func (m *Manager) ReadYourWrites(ctx context.Context) context.Context {
	if m.cfg.replicas == nil {
		return ctx
	}
	pos := uint64(math.MaxUint64) // the primary for good
	if m.cfg.position != nil && !m.InTx(ctx) {
		if p, err := m.cfg.position(ctx); err == nil {
			pos = p
		}
	}
	if prev, ok := ctx.Value(rywKey{m}).(uint64); ok && prev >= pos {
		return ctx
	}
	return context.WithValue(ctx, rywKey{m}, pos)
}

// pickReplica is the replica of a read-only scope run under ctx: one that
// has replayed the position of ctx's ReadYourWrites mark, if any, else any
// that serves reads; nil for the primary.
func (m *Manager) pickReplica(ctx context.Context) *sqlx.DB {
	pos, ok := ctx.Value(rywKey{m}).(uint64)
	switch {
	case !ok:
		return m.cfg.replicas()
	case m.cfg.pickAt == nil || pos == math.MaxUint64:
		return nil
	}
	return m.cfg.pickAt(pos)
}
