package dbfx

import (
	"context"
	"database/sql"
	"fmt"

	"go.uber.org/zap"

	"github.com/enginekit/enginekit/internal/connwrap"
)

// Startup is what a step given with WithStartup gets of the engine it
// runs on. It holds nothing of the driver's own: a step that needs SQL
// of one database chooses it by Family.
type Startup struct {
	// Engine is the engine starting: its pools answer. Its statements are
	// observed by its monitor.
	Engine *Engine
	// Log is the engine's logger; its lines carry the engine's name.
	Log *zap.Logger
	// Driver is the name of the engine's driver, as Engine.Driver.
	Driver string
	// Family is the database the driver speaks to, whatever the driver:
	// postgres, mysql or sqlite3.
	Family string
	// OpenDB opens a pool of the step's own on the primary, unobserved by
	// the engine's monitor and outside its statistics; the step closes it.
	// It is nil for a SQLite database in memory, whose one connection is
	// the whole database: a step uses Engine.DB() there.
	OpenDB func() (*sql.DB, error)
	// File is the SQLite database file, for a lock beside it; "" for a
	// server or a database in memory.
	File string
	// Redact removes the DSN's password from a message: the text of a
	// step's error and of its log lines goes through it.
	Redact func(string) string
}

// startupStep is a step given with WithStartup.
type startupStep = func(ctx context.Context, s Startup) error

// WithStartup adds a step to the engine's start: it runs after the
// database answers and before the start completes (Open returns, or the
// engine's OnStart hook), with the start's context. Steps run in the order
// given. A step's error fails the start, and the pools are closed; it is
// returned as the step made it, so it should name the engine and carry no
// password (see Startup.Redact). The migrations of
// github.com/enginekit/enginekit/dbfx/migrate are such a step.
func WithStartup(step func(ctx context.Context, s Startup) error) Option {
	return func(o *options) {
		if step != nil {
			o.startSteps = append(o.startSteps, step)
		}
	}
}

// runStartup runs the steps given with WithStartup.
func (e *Engine) runStartup(ctx context.Context) error {
	if len(e.startSteps) == 0 {
		return nil
	}
	s := Startup{
		Engine: e,
		Log:    e.log,
		Driver: e.Driver(),
		Family: e.r.drv.SQL.Family().String(),
		File:   e.r.File,
		Redact: e.r.redact,
	}
	if !e.r.Memory {
		s.OpenDB = func() (*sql.DB, error) {
			conn, err := e.r.Writer()
			if err != nil {
				return nil, fmt.Errorf("dbfx: engine %q: %s", e.Name(), e.r.redact(err.Error()))
			}
			// On the connection wrapper, as every pool of the engine's, but
			// with no monitor: the step's statements are its own. Behind
			// the engine's gate too: open during the start, shut if it
			// fails.
			return sql.OpenDB(connwrap.Wrap(conn, connwrap.Options{DB: e.Name(), Dialect: e.r.drv.SQL, Gate: e.gate})), nil
		}
	}
	for _, step := range e.startSteps {
		if err := step(ctx, s); err != nil {
			return err
		}
	}
	return nil
}
