package dbfx_test

import (
	"context"
	"fmt"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/session"
)

// An Fx app with the engine: work that needs the database runs in an
// OnStart hook appended after the engine's, so after it has connected.
func Example_module() {
	app := fx.New(
		fx.NopLogger,
		fx.Supply(dbfx.Config{DSN: ":memory:"}),
		dbfx.Module, sqlite3.Module,
		fx.Invoke(func(lc fx.Lifecycle, e *dbfx.Engine, m *session.Manager) {
			lc.Append(fx.Hook{OnStart: func(ctx context.Context) error {
				var answer int
				if err := m.Q(ctx).GetContext(ctx, &answer, `SELECT 6 * 7`); err != nil {
					return err
				}
				fmt.Printf("engine %q on %s answers %d\n", e.Name(), e.Driver(), answer)
				return nil
			}})
		}),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if err := app.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// engine "primary" on sqlite3 answers 42
}

// Health without Fx.
func ExampleEngine_Health() {
	ctx := context.Background()
	e, err := dbfx.Open(ctx, dbfx.Config{Name: "reports", DSN: ":memory:"}, dbfx.WithDriver(sqlite3.Driver()))
	if err != nil {
		fmt.Println(err)
		return
	}
	h := e.Health(ctx)
	fmt.Println(h.Status, h.Pool.MaxOpen)
	_ = e.Close(ctx)
	fmt.Println(e.Health(ctx).Status)
	// Output:
	// ok 1
	// down
}
