package connwrap

import (
	"context"
	"database/sql/driver"
	"testing"
	"time"
)

type nullConn struct{}

func (nullConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (nullConn) Close() error                        { return nil }
func (nullConn) Begin() (driver.Tx, error)           { return nil, driver.ErrSkip }

type nullConnector struct{}

func (nullConnector) Connect(context.Context) (driver.Conn, error) { return nullConn{}, nil }
func (nullConnector) Driver() driver.Driver                        { return nil }

// TestLifetimeJitter gives connections ages spread over the last tenth of
// MaxLifetime, never beyond it.
func TestLifetimeJitter(t *testing.T) {
	const life = time.Hour
	w := Wrap(nullConnector{}, Options{MaxLifetime: life})
	lo, hi := life, time.Duration(0)
	for range 200 {
		begun := time.Now()
		c, err := w.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		age := c.(*conn).deadline.Sub(begun)
		lo, hi = min(lo, age), max(hi, age)
	}
	if lo < life-life/10-time.Second || hi > life+time.Second {
		t.Errorf("ages in [%s, %s], want within [%s, %s]", lo, hi, life-life/10, life)
	}
	if hi-lo < life/20 {
		t.Errorf("ages in [%s, %s]: not spread", lo, hi)
	}
}
