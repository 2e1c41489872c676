// Migrate applies an application's goose migrations and exits, or reports
// the database's migration state: the whole of a Kubernetes Job, an init
// container or a deploy step, on dbfx/migrate's Up and Status.
//
//	ENGINEKIT_DSN='postgres://app:pw@db:5432/app' migrate -dir ./migrations up
//	ENGINEKIT_DSN=... migrate -dir ./migrations status
//	ENGINEKIT_DSN=... migrate -dir ./migrations -check status   # exit 3 while migrations are pending
//	ENGINEKIT_DSN=... migrate -dir ./migrations version
//
// The database's Config is read from the environment by
// dbfx.ConfigFromEnv under the prefix -env (default ENGINEKIT):
// ENGINEKIT_DSN, and ENGINEKIT_DRIVER, ENGINEKIT_CONNECT_TIMEOUT... when
// set. The migrations are the files of -dir, laid out as dbfx/migrate
// reads them (a directory per database, or one set for all). An
// application would rather build this into its own binary, with its
// migrations embedded (//go:embed), and call migrate.Up and migrate.Status
// as this program does.
//
// Commands:
//
//	up       apply the pending migrations (under dbfx/migrate's lock: two
//	         jobs at once migrate once), then print the version
//	status   print each migration, applied (when) or pending, and the version
//	version  print the database's version: the highest migration applied, 0 for none
//
// Exit status: 0 done; 1 failed (the database did not answer, a
// migration failed: the error on stderr, which never holds the DSN's
// password); 2 bad usage or an invalid Config; 3 with -check, migrations
// pending.
// SIGINT and SIGTERM cancel the run; -timeout bounds it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/migrate"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitPending = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the program: args without the program's name; it returns the
// exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("migrate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("dir", "migrations", "the migrations' directory")
	prefix := flags.String("env", "ENGINEKIT", "the prefix of the environment variables of the database's Config (PREFIX_DSN...)")
	timeout := flags.Duration("timeout", 10*time.Minute, "the longest the whole run may take")
	check := flags.Bool("check", false, "status: exit 3 when migrations are pending")
	verbose := flags.Bool("v", false, "log the engine's lines (connects, each migration applied) to stderr")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: migrate [flags] up|status|version\n\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return exitUsage
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return exitUsage
	}
	command := flags.Arg(0)
	if command != "up" && command != "status" && command != "version" {
		fmt.Fprintf(stderr, "migrate: unknown command %q: want up, status or version\n", command)
		return exitUsage
	}
	cfg, err := dbfx.ConfigFromEnv(*prefix)
	if err == nil && cfg.DSN == "" {
		err = fmt.Errorf("%s_DSN is unset", *prefix)
	}
	if err != nil {
		fmt.Fprintf(stderr, "migrate: %v\n", err)
		return exitUsage
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "migrate: -dir %s is not a directory\n", *dir)
		return exitUsage
	}
	fsys := os.DirFS(*dir)

	log := zap.NewNop()
	if *verbose {
		zc := zap.NewProductionConfig()
		zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
		if log, err = zc.Build(); err != nil {
			fmt.Fprintf(stderr, "migrate: %v\n", err)
			return exitFailed
		}
		defer log.Sync() //nolint:errcheck // stderr
	}
	opts := []dbfx.Option{dbfx.WithDrivers(postgres.Driver(), mysql.Driver(), sqlite3.Driver()), dbfx.WithLogger(log)}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	code, err := do(ctx, command, *check, cfg, fsys, opts, stdout)
	if err != nil {
		// enginekit's errors name the engine and never hold the password.
		fmt.Fprintf(stderr, "migrate %s: %v\n", command, err)
		if errors.Is(err, dbfx.ErrConfig) {
			return exitUsage
		}
		return exitFailed
	}
	return code
}

// do runs command on the database of cfg.
func do(ctx context.Context, command string, check bool, cfg dbfx.Config, fsys fs.FS, opts []dbfx.Option, out io.Writer) (int, error) {
	if command == "up" {
		if err := migrate.Up(ctx, cfg, fsys, opts...); err != nil {
			return exitFailed, err
		}
	}
	report, err := migrate.Status(ctx, cfg, fsys, opts...)
	if err != nil {
		return exitFailed, err
	}
	switch command {
	case "version":
		fmt.Fprintln(out, report.Version)
	case "up":
		fmt.Fprintf(out, "version %d, %d pending\n", report.Version, len(report.Pending()))
	case "status":
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tAPPLIED AT\tFILE")
		for _, m := range report.Migrations {
			at := "pending"
			if m.Applied {
				at = m.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\n", m.Version, at, m.File)
		}
		_ = w.Flush()
		pending := len(report.Pending())
		fmt.Fprintf(out, "version %d, %d pending\n", report.Version, pending)
		if check && pending > 0 {
			return exitPending, nil
		}
	}
	return exitOK, nil
}
