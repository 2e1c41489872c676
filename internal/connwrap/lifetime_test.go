package connwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/internal/connwrap"
)

// TestLifetimeExpires discards connections past their age when they go
// back to the pool, and counts them.
func TestLifetimeExpires(t *testing.T) {
	log := &fakeLog{}
	w := connwrap.Wrap(&fakeConnector{log: log, full: true}, connwrap.Options{MaxLifetime: time.Nanosecond})
	db := sql.OpenDB(w)
	defer db.Close()
	for range 3 {
		if _, err := db.ExecContext(context.Background(), "exec"); err != nil {
			t.Fatal(err)
		}
	}
	log.mu.Lock()
	calls := strings.Join(log.calls, ",")
	log.mu.Unlock()
	if got := strings.Count(calls, "connect"); got != 3 {
		t.Errorf("%d connections opened, want 3 (each expired after its statement): %s", got, calls)
	}
	if got := w.Stats().Expired; got != 3 {
		t.Errorf("Expired = %d, want 3", got)
	}
}

// TestWrapperClaimsWhatTheDriverHas: the optional interfaces whose mere
// presence changes database/sql's course are claimed only when the
// driver's connection has them (TestWrapperForwardsLikeTheDriver checks
// that the others answer as database/sql does without them); Unwrap gives
// the driver's own.
func TestWrapperClaimsWhatTheDriverHas(t *testing.T) {
	// The legacy Execer and Queryer count as their ctx forms: the
	// wrapper claims the ctx forms for them, which database/sql uses as
	// it would the legacy ones.
	claims := func(c any) string {
		_, r := c.(driver.SessionResetter)
		_, e := c.(driver.ExecerContext)
		_, q := c.(driver.QueryerContext)
		_, le := c.(driver.Execer)  //nolint:staticcheck // the legacy form
		_, lq := c.(driver.Queryer) //nolint:staticcheck // the legacy form
		return fmt.Sprintf("resetter=%v execer=%v queryer=%v", r, e || le, q || lq)
	}
	for _, c := range []*fakeConnector{{log: &fakeLog{}}, {log: &fakeLog{}, legacy: true}, {log: &fakeLog{}, full: true}} {
		bare, err := c.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		w := connwrap.Wrap(c, connwrap.Options{MaxLifetime: time.Hour})
		wrapped, err := w.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := claims(wrapped), claims(bare); got != want {
			t.Errorf("%T: wrapped claims %s, the driver has %s", bare, got, want)
		}
		if got := connwrap.Unwrap(wrapped); fmt.Sprintf("%T", got) != fmt.Sprintf("%T", bare) {
			t.Errorf("Unwrap gave %T, want %T", got, bare)
		}
	}
}
