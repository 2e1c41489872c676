//go:build !cgo

package sqlite3_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
)

// TestNoCgoRefusesSQLite: built without cgo, a SQLite DSN is a config
// error that says why (.ci/run runs it with CGO_ENABLED=0).
func TestNoCgoRefusesSQLite(t *testing.T) {
	for _, dsn := range []string{"app.db", ":memory:", "file:app.db?mode=ro"} {
		err := dbfx.Config{DSN: dsn}.Validate(sqlite3.Driver())
		if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "cgo") {
			t.Errorf("Validate(%q) = %v, want ErrConfig saying sqlite3 needs cgo", dsn, err)
		}
	}
}
