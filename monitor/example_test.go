package monitor_test

import (
	"context"
	"fmt"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// printer is a monitor of one's own: any type with Query and Tx.
type printer struct{}

func (printer) Query(_ context.Context, e monitor.QueryEvent) {
	fmt.Printf("%s %s %q err=%v\n", e.DB, e.Op, e.SQL, e.Err != nil)
}

func (printer) Tx(_ context.Context, e monitor.TxEvent) {
	fmt.Printf("%s tx %s label=%s attempt=%d\n", e.DB, e.Kind, e.Label, e.Attempt)
}

func Example() {
	ctx := context.Background()
	e, err := dbfx.Open(ctx, dbfx.Config{Name: "app", DSN: ":memory:"}, dbfx.WithDriver(sqlite3.Driver()), dbfx.WithMonitor(printer{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close(ctx)
	_, _ = e.DB().ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	_ = e.Sessions().Tx(ctx, func(ctx context.Context) error {
		_, err := e.Sessions().Q(ctx).ExecContext(ctx, "INSERT INTO t (id) VALUES (1)")
		return err
	}, session.Label("signup"))
	// Output:
	// app exec "CREATE TABLE t (id INTEGER PRIMARY KEY)" err=false
	// app begin "" err=false
	// app tx begin label=signup attempt=1
	// app exec "INSERT INTO t (id) VALUES (1)" err=false
	// app commit "" err=false
	// app tx commit label=signup attempt=1
}
