package session_test

import (
	"context"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// benchEach runs fn in a sub-benchmark per engine, named db=<driver> so
// that benchstat can line them up (benchstat -col .name -row /db).
func benchEach(b *testing.B, fn func(b *testing.B, e *dbfx.Engine)) {
	for _, db := range []struct {
		name string
		cfg  func(testing.TB) dbfx.Config
	}{
		{"sqlite3", fxtest.SQLite}, {"postgres", fxtest.Postgres}, {"mysql", fxtest.MySQL},
		// No I/O to wait for: what is left is the client's own cost.
		{"sqlite3-memory", func(testing.TB) dbfx.Config { return dbfx.Config{DSN: ":memory:"} }},
	} {
		b.Run("db="+db.name, func(b *testing.B) {
			e := openEngine(b, db.cfg(b))
			b.ReportAllocs()
			b.ResetTimer()
			fn(b, e)
			b.StopTimer()
			fxtest.RequireNoLeaks(b, e)
		})
	}
}

const benchInsert = "INSERT INTO items (id) VALUES (?)"

// BenchmarkTx is a transaction with one INSERT through Manager.Tx.
func BenchmarkTx(b *testing.B) {
	benchEach(b, func(b *testing.B, e *dbfx.Engine) {
		m := e.Sessions()
		ctx := context.Background()
		query := e.DB().Rebind(benchInsert)
		for i := range b.N {
			err := m.Tx(ctx, func(ctx context.Context) error {
				_, err := m.Q(ctx).ExecContext(ctx, query, i)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRawTx is the same transaction on the raw pool, with
// context.Background().
func BenchmarkRawTx(b *testing.B) {
	benchRawTx(b, false)
}

// BenchmarkRawTxCancelable is BenchmarkRawTx with a ctx that can be
// canceled, as a request's is. Manager.Tx gives its fn such a ctx whatever
// its caller's (Close and Timeout end it), and go-sqlite3 runs each
// statement with arguments under a cancelable ctx on a goroutine of its
// own, which it can interrupt; under context.Background() it runs it on
// the caller's. On SQLite this is what a hand-written transaction costs in
// a service.
func BenchmarkRawTxCancelable(b *testing.B) {
	benchRawTx(b, true)
}

func benchRawTx(b *testing.B, cancelable bool) {
	benchEach(b, func(b *testing.B, e *dbfx.Engine) {
		db := e.DB()
		ctx := context.Background()
		if cancelable {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
		}
		query := db.Rebind(benchInsert)
		for i := range b.N {
			tx, err := db.BeginTxx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, query, i); err != nil {
				_ = tx.Rollback()
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
