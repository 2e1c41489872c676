package prommon_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/monitor/prommon"
	"github.com/enginekit/enginekit/session"
)

// createCount is the number of connects of engine with outcome.
func createCount(tb testing.TB, reg prometheus.Gatherer, engine, outcome string) uint64 {
	tb.Helper()
	m := sample(tb, reg, "db_client_connection_create_time_seconds",
		map[string]string{"engine": engine, "outcome": outcome})
	return m.GetHistogram().GetSampleCount()
}

// TestPoolEventsCounted hands the monitor one event of each kind: each
// lands in its metric, and an acquire timeout in none (the engine's
// figures count it). An engine's series exist at zero once it adds its
// figures.
func TestPoolEventsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	prom, err := prommon.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	remove := prom.AddStatsSource("orders", func() monitor.PoolStats { return monitor.PoolStats{} })
	defer remove()
	for _, name := range []string{"db_client_connection_dead_total", "db_client_operation_cancels_total"} {
		if sample(t, reg, name, map[string]string{"engine": "orders"}) == nil {
			t.Errorf("no %s series for an engine that just opened", name)
		}
	}
	if m := sample(t, reg, "db_client_connection_create_time_seconds",
		map[string]string{"engine": "orders", "outcome": "error"}); m == nil {
		t.Error("no connect series for an engine that just opened")
	}

	ctx := context.Background()
	for _, e := range []monitor.PoolEvent{
		{Kind: monitor.PoolConnected, Duration: 2 * time.Millisecond},
		{Kind: monitor.PoolConnected, Duration: 3 * time.Millisecond},
		{Kind: monitor.PoolConnectFailed, Duration: 20 * time.Millisecond, Err: errors.New("refused")},
		{Kind: monitor.PoolAcquireTimeout, Duration: time.Second},
		{Kind: monitor.PoolDeadConn, Err: errors.New("connection reset by peer")},
		{Kind: monitor.PoolCancel, Duration: time.Millisecond},
		{Kind: monitor.PoolCancel, Duration: time.Millisecond},
		{Kind: monitor.PoolCancel, Err: errors.New("KILL QUERY: access denied")},
		{Kind: "later"},
	} {
		e.DB = "orders"
		prom.Pool(ctx, e)
	}
	orders := func(kv ...string) map[string]string {
		l := map[string]string{"engine": "orders"}
		for i := 0; i < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	if got := createCount(t, reg, "orders", "ok"); got != 2 {
		t.Errorf("connects ok = %d, want 2", got)
	}
	if got := createCount(t, reg, "orders", "error"); got != 1 {
		t.Errorf("connects failed = %d, want 1", got)
	}
	m := sample(t, reg, "db_client_connection_create_time_seconds", orders("outcome", "error"))
	if got := m.GetHistogram().GetSampleSum(); got != 0.02 {
		t.Errorf("failed connects took %gs in all, want 0.02", got)
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"db_client_connection_dead_total", orders(), 1},
		{"db_client_operation_cancels_total", orders("outcome", "ok"), 2},
		{"db_client_operation_cancels_total", orders("outcome", "error"), 1},
		{"db_client_connection_timeouts_total", orders(), 0}, // the figures' AcquireTimeouts: 0
	} {
		if got := counter(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %g, want %g", tt.name, tt.labels, got, tt.want)
		}
	}
}

// TestConnectFailedCounted opens engines whose connects fail, for real
// (a closed port, a directory that does not exist): each attempt is a
// connect with outcome error, and none succeeded.
func TestConnectFailedCounted(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		reg := prometheus.NewRegistry()
		prom, err := prommon.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Name = "refused"
		cfg.ConnectTimeout = 300 * time.Millisecond
		switch cfg.Driver {
		case "sqlite3":
			cfg.DSN = filepath.Join(t.TempDir(), "missing", "x.db")
		case "postgres":
			u, err := url.Parse(cfg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			u.Host = "127.0.0.1:1"
			cfg.DSN = u.String()
		case "mysql":
			mc, err := mysql.ParseDSN(cfg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			mc.Addr = "127.0.0.1:1"
			cfg.DSN = mc.FormatDSN()
		}
		_, err = dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithMonitor(prom))
		if !errors.Is(err, dbfx.ErrConnect) {
			t.Fatalf("Open: %v, want ErrConnect", err)
		}
		if got := createCount(t, reg, "refused", "error"); got < 1 {
			t.Errorf("failed connects counted: %d, want at least 1", got)
		}
		if got := createCount(t, reg, "refused", "ok"); got != 0 {
			t.Errorf("connects ok counted: %d, want 0", got)
		}
	})
}

// TestAcquireTimeoutCounted holds the one connection of a pool in a
// scope: a second scope times out, counted once, in
// db_client_connection_timeouts_total and in no other metric. The
// connect at start is counted too.
func TestAcquireTimeoutCounted(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		reg := prometheus.NewRegistry()
		prom, err := prommon.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Name = "held"
		cfg.MaxOpenConns, cfg.MaxIdleConns = 1, 1
		cfg.AcquireTimeout = 50 * time.Millisecond
		e := openEngine(t, cfg, dbfx.WithMonitor(prom))
		if got := createCount(t, reg, "held", "ok"); got < 1 {
			t.Errorf("connects ok counted: %d, want at least 1", got)
		}
		m := e.Sessions()
		ctx := testContext(t)
		entered, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			held <- m.Tx(ctx, func(context.Context) error {
				close(entered)
				<-release
				return nil
			})
		}()
		select {
		case <-entered:
		case err := <-held:
			t.Fatalf("the holding Tx: %v", err)
		}
		err = m.Tx(ctx, func(context.Context) error { return nil })
		close(release)
		if herr := <-held; herr != nil {
			t.Errorf("the holding Tx: %v", herr)
		}
		if !errors.Is(err, session.ErrAcquireTimeout) {
			t.Fatalf("second Tx: %v, want ErrAcquireTimeout", err)
		}
		if got := counter(t, reg, "db_client_connection_timeouts_total", map[string]string{"engine": "held"}); got != 1 {
			t.Errorf("db_client_connection_timeouts_total = %g, want 1", got)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if name := mf.GetName(); strings.Contains(name, "timeout") && name != "db_client_connection_timeouts_total" {
				t.Errorf("acquire timeouts also under %s", name)
			}
		}
	})
}
