// Package dbfx gives an application one engine per database: its pools, a
// session.Manager, health checks, migrations and a graceful close, started
// and stopped by Fx lifecycle hooks (or by Open and Close without Fx).
//
//	app := fx.New(
//		fx.Supply(dbfx.Config{DSN: os.Getenv("DATABASE_URL")}),
//		dbfx.Module,                                    // *dbfx.Engine and *session.Manager
//		dbfx.Options(dbfx.WithMigrations(migrations)),  // optional: goose migrations at start
//		dbfx.ProvideRepository[User, int64](),          // *repo.Repository[User, int64]
//		fx.Provide(NewUserHandler),                     // takes them by constructor injection
//	)
//
// The engine connects in OnStart, retrying until Config.ConnectTimeout,
// then applies migrations; fx.Invoke functions run before that, so they
// must not query the database (register an OnStart hook instead). OnStop
// closes the engine: new scopes fail with session.ErrClosed, scopes in
// flight are awaited until the stop context ends, and the pools close.
// Named provides a further database under an Fx name tag.
//
// Configuration errors name every bad field (ErrConfig), connection
// failures name the engine, driver and host (ErrConnect), and no error,
// log line or health report ever carries a DSN password.
package dbfx
