package monitor_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/enginekit/enginekit/monitor"
	"github.com/enginekit/enginekit/session"
)

// A slog monitor that logs duplicate keys at info (the default is debug:
// the application answers them). An engine takes it with
// dbfx.WithMonitor; here two events are handed to it directly.
func ExampleNewSlog() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // no time: the output is compared
			}
			return a
		},
	})
	m := monitor.NewSlog(slog.New(h), monitor.FailureLevel(session.ErrDuplicate, slog.LevelInfo))
	ctx := context.Background()
	m.Query(ctx, monitor.QueryEvent{DB: "main", Op: monitor.OpExec, Duration: 1500 * time.Millisecond, Rows: 1, Slow: true,
		SQL: "UPDATE accounts SET password = 'hunter2' WHERE id = ?"})
	m.Query(ctx, monitor.QueryEvent{DB: "main", Op: monitor.OpExec, Rows: -1,
		SQL: "INSERT INTO users (email) VALUES (?)", Err: fmt.Errorf("insert into users: %w", session.ErrDuplicate)})
	// Output:
	// level=WARN msg="slow statement" engine=main operation=exec duration=1.5s sql="UPDATE accounts SET password = ? WHERE id = ?" rows=1
	// level=INFO msg="statement failed" engine=main operation=exec duration=0s sql="INSERT INTO users (email) VALUES (?)" error="insert into users: session: duplicate key"
}
