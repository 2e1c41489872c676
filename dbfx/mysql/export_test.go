package mysql

import "github.com/enginekit/enginekit/dbfx"

// DriverAskingFor is Driver whose cancels ask the server they reach about
// the lock name askFor returns instead of the statement's: a name no
// connection holds is what another server answers (behind a proxy or a
// cluster address that sent the cancel's connection elsewhere).
func DriverAskingFor(askFor func(lock string) string) dbfx.Driver { return newDriver(askFor) }
