package session_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

// TestReadYourWritesRouting: a read-only scope goes to the replica pool,
// unless its ctx comes from ReadYourWrites: then to the writer when the
// Manager knows no positions (MySQL), or when no replica has replayed the
// position read (pickAt answers nil), and to the replica pickAt answers
// otherwise. Without replicas ReadYourWrites returns ctx as it is.
func TestReadYourWritesRouting(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		e := openEngine(t, cfg)
		if e.Driver() == "sqlite3" {
			t.Skip("replicas need PostgreSQL or MySQL")
		}
		// Another pool on the same database stands for the replica.
		re, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = re.Close(context.Background()) })
		replica := re.DB()
		ctx := testContext(t)
		if got := e.Sessions().ReadYourWrites(ctx); got != ctx {
			t.Error("ReadYourWrites without replicas marked the ctx")
		}
		// onReplica runs a read-only scope under ctx on m and says whether
		// the replica pool served it.
		onReplica := func(m *session.Manager, ctx context.Context) bool {
			t.Helper()
			var served bool
			if err := m.ReadOnly(ctx, func(ctx context.Context) error {
				served = replica.Stats().InUse == 1
				var one int
				return m.Q(ctx).GetContext(ctx, &one, "SELECT 1")
			}); err != nil {
				t.Fatal(err)
			}
			return served
		}
		pick := func() *sqlx.DB { return replica }
		var noPositions *session.Manager
		noPositions, err = session.New(e.DB(), session.WithDriver(e.Sessions()), session.WithReplicas(pick))
		if err != nil {
			t.Fatal(err)
		}
		if !onReplica(noPositions, ctx) {
			t.Error("a read-only scope did not go to the replica")
		}
		if onReplica(noPositions, noPositions.ReadYourWrites(ctx)) {
			t.Error("without positions, a ReadYourWrites ctx's scope went to the replica")
		}

		var at, replayed uint64 = 10, 5
		positions, err := session.New(e.DB(), session.WithDriver(e.Sessions()), session.WithReplicas(pick),
			session.WithReplicaPositions(func(context.Context) (uint64, error) { return at, nil },
				func(pos uint64) *sqlx.DB {
					if replayed >= pos {
						return replica
					}
					return nil
				}))
		if err != nil {
			t.Fatal(err)
		}
		mine := positions.ReadYourWrites(ctx)
		if onReplica(positions, mine) {
			t.Error("a ReadYourWrites ctx's scope went to a replica that had not replayed its position")
		}
		if !onReplica(positions, ctx) {
			t.Error("an unmarked scope did not go to the replica")
		}
		replayed = 10
		if !onReplica(positions, mine) {
			t.Error("a ReadYourWrites ctx's scope did not go to the replica once it replayed the position")
		}
		// Of this Manager only: another's ctx mark does not apply.
		if !onReplica(positions, noPositions.ReadYourWrites(ctx)) {
			t.Error("another Manager's mark sent the scope to the writer")
		}
	})
}
