package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// KillConnections ends, from the server's side, every connection to the
// database admin is connected to but admin's own (what a restart, a
// failover or pg_terminate_backend does to a pool), and waits until the
// server reports none left. driverName is postgres or mysql.
func KillConnections(tb testing.TB, driverName string, admin *sql.DB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var list, kill, count string
	switch driverName {
	case "postgres":
		list = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`
		kill = `SELECT pg_terminate_backend(%d)`
		count = `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`
	case "mysql":
		list = `SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()`
		kill = `KILL CONNECTION %d`
		count = `SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()`
	default:
		tb.Fatalf("KillConnections: no way to kill %s connections", driverName)
	}
	conn, err := admin.Conn(ctx) // one session: its own id is the one spared
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, list)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(ids) == 0 {
		tb.Fatal("KillConnections: no connection to kill")
	}
	for _, id := range ids {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(kill, id)); err != nil {
			tb.Fatal(err)
		}
	}
	// The server ends them on its own schedule: ask it until it has.
	for {
		var n int
		if err := conn.QueryRowContext(ctx, count).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			return
		}
		if ctx.Err() != nil {
			tb.Fatalf("KillConnections: %d connections still there", n)
		}
	}
}
