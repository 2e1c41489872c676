package dbfx

import (
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
)

// Driver is a database driver an engine can run on. The driver packages
// make them: postgres.Driver() (github.com/enginekit/enginekit/dbfx/postgres),
// mysql.Driver() and sqlite3.Driver(). The core links none of them: a
// program links the drivers it imports. The set is closed for now (the
// methods' types are internal to enginekit).
//
// A Driver is also a session.Driver: session.New(db,
// session.WithDriver(postgres.Driver())) gives a pool opened by hand the
// driver's error classification and retries.
type Driver interface {
	// Spec is what the core knows of the driver: DSN handling, error
	// classification, connect policy.
	Spec() *drv.Driver
	// Dialect is the driver's SQL family and error classification.
	Dialect() *dialect.Dialect
}

// DriversGroup is the Fx value group in which driver packages' Modules put
// their Driver, and from which Module and Named take them.
const DriversGroup = "enginekit.drivers"

// WithDriver gives Open a driver; give several to choose among by
// Config.Driver or the form of the DSN. A driver given twice counts once.
func WithDriver(d Driver) Option {
	return func(o *options) { o.drivers = o.drivers.add(d) }
}

// WithDrivers is WithDriver for each of ds.
func WithDrivers(ds ...Driver) Option {
	return func(o *options) {
		for _, d := range ds {
			o.drivers = o.drivers.add(d)
		}
	}
}

// DriverModule is the Module of a driver package: it puts a driver that
// newDriver makes, one per app, in the DriversGroup. Given twice (by a
// test helper and by the application, say), the driver counts once.
func DriverModule(newDriver func() Driver) fx.Option {
	return fx.Module("enginekit.driver."+newDriver().Spec().Name,
		fx.Provide(fx.Annotate(newDriver, fx.ResultTags(`group:"`+DriversGroup+`"`))),
	)
}

// DriverConn returns the driver's own connection inside one of an
// engine's connections, as sql.Conn.Raw hands it: the engine's pools run
// on a wrapper of each driver connection.
//
//	err := conn.Raw(func(c any) error {
//		pc := dbfx.DriverConn(c).(driver.Conn) // the driver's own type
//		...
//	})
func DriverConn(c any) any { return connwrap.Unwrap(c) }
