//go:build cgo

package sqlite3

import (
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"

	"github.com/enginekit/enginekit/internal/drv"
)

// The writer and reader connections of a file database keep go-sqlite3's
// statement cache unless the DSN sizes it itself.
func TestResolveSetsTheStatementCache(t *testing.T) {
	for _, tt := range []struct{ dsn, want string }{
		{"/tmp/app.db", "_stmt_cache_size=" + stmtCacheSize},
		{"/tmp/app.db?_stmt_cache_size=0", "_stmt_cache_size=0"},
		{"file:/tmp/app.db?_stmt_cache_size=8&_busy_timeout=100", "_stmt_cache_size=8"},
	} {
		target, err := resolve(tt.dsn, drv.Options{})
		if err != nil {
			t.Fatalf("resolve(%q): %v", tt.dsn, err)
		}
		for side, open := range map[string]func() (driver.Connector, error){"writer": target.Writer, "reader": target.Reader} {
			c, err := open()
			if err != nil {
				t.Fatal(err)
			}
			// The connector's fields, its DSN among them.
			if got := fmt.Sprintf("%+v", c); !strings.Contains(got, tt.want) || strings.Count(got, "_stmt_cache_size") != 1 {
				t.Errorf("resolve(%q): the %s's connector (%s) does not carry %s once", tt.dsn, side, got, tt.want)
			}
		}
	}
}
