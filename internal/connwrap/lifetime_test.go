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

// TestLifetimeExpires discards a connection past its age: at its next
// checkout when the driver's connection resets sessions (database/sql then
// takes another), else when it goes back to the pool; and counts it.
func TestLifetimeExpires(t *testing.T) {
	for _, tt := range []struct {
		name string
		full bool // the driver's connection is a SessionResetter
		// connections opened and expired after each round of a statement
		// and the end of every lifetime so far
		wantConnects, wantExpired []int
	}{
		{"checked at checkout", true, []int{1, 2, 3}, []int{0, 1, 2}},
		{"checked at checkin", false, []int{1, 1, 2}, []int{0, 1, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := &fakeLog{}
			o := connwrap.Options{MaxLifetime: time.Hour}
			ageAll := connwrap.ManualAging(&o)
			w := connwrap.Wrap(&fakeConnector{log: log, full: tt.full}, o)
			db := sql.OpenDB(w)
			defer db.Close()
			for i := range tt.wantConnects {
				if _, err := db.ExecContext(context.Background(), "exec"); err != nil {
					t.Fatal(err)
				}
				ageAll()
				log.mu.Lock()
				calls := strings.Join(log.calls, ",")
				log.mu.Unlock()
				if got := strings.Count(calls, "connect"); got != tt.wantConnects[i] {
					t.Errorf("round %d: %d connections opened, want %d: %s", i+1, got, tt.wantConnects[i], calls)
				}
				if got := w.Stats().Expired; got != int64(tt.wantExpired[i]) {
					t.Errorf("round %d: Expired = %d, want %d", i+1, got, tt.wantExpired[i])
				}
			}
		})
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
