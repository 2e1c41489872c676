package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// binary is the program, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ek-migrate")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "migrate")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("go build: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the program did.
type result struct {
	code           int
	stdout, stderr string
}

// runJob runs the program with args and the database of cfg in
// ENGINEKIT_DSN and ENGINEKIT_DRIVER.
func runJob(t *testing.T, cfg dbfx.Config, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "ENGINEKIT_DSN="+cfg.DSN, "ENGINEKIT_DRIVER="+cfg.Driver, "ENGINEKIT_CONNECT_TIMEOUT=2s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// TestMigrateJob: on each database, a fresh database is at version 0 with
// two migrations pending (status -check exits 3); up applies them and
// exits 0 (the table and its new column are there); a second up applies
// nothing; version then prints 2.
func TestMigrateJob(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		const dir = "-dir=testdata/migrations"
		if r := runJob(t, cfg, dir, "version"); r.code != 0 || r.stdout != "0\n" {
			t.Fatalf("version on a fresh database: %+v", r)
		}
		r := runJob(t, cfg, dir, "-check", "status")
		if r.code != exitPending || strings.Join(pendingFiles(r.stdout), " ") != "00001_create_items.sql 00002_add_note.sql" ||
			!strings.HasSuffix(r.stdout, "version 0, 2 pending\n") {
			t.Fatalf("status -check before up: %+v", r)
		}
		if r := runJob(t, cfg, dir, "up"); r.code != 0 || r.stdout != "version 2, 0 pending\n" {
			t.Fatalf("up: %+v", r)
		}
		e, err := dbfx.Open(t.Context(), cfg, fxtest.WithDrivers())
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
		if _, err := e.DB().ExecContext(t.Context(), e.DB().Rebind("INSERT INTO items (id, name, note) VALUES (?, ?, ?)"), 1, "a", "b"); err != nil {
			t.Fatalf("the migrated table: %v", err)
		}
		if r := runJob(t, cfg, dir, "up"); r.code != 0 || r.stdout != "version 2, 0 pending\n" {
			t.Fatalf("up again: %+v", r)
		}
		r = runJob(t, cfg, dir, "-check", "status")
		if r.code != 0 || len(pendingFiles(r.stdout)) != 0 || !strings.Contains(r.stdout, "00002_add_note.sql") ||
			!strings.HasSuffix(r.stdout, "version 2, 0 pending\n") {
			t.Fatalf("status -check after up: %+v", r)
		}
		if r := runJob(t, cfg, dir, "version"); r.code != 0 || r.stdout != "2\n" {
			t.Fatalf("version after up: %+v", r)
		}
	})
}

// pendingFiles are the files that status's table says are pending.
func pendingFiles(stdout string) []string {
	var files []string
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == "pending" {
			files = append(files, f[2])
		}
	}
	return files
}

// TestMigrateJobFails: a failed migration exits 1 naming its file, and
// leaves the version at the last one applied.
func TestMigrateJobFails(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		r := runJob(t, cfg, "-dir=testdata/broken", "up")
		if r.code != exitFailed || !strings.Contains(r.stderr, "00002_broken.sql") || r.stdout != "" {
			t.Fatalf("up of a broken migration: %+v", r)
		}
		if r := runJob(t, cfg, "-dir=testdata/broken", "version"); r.code != 0 || r.stdout != "1\n" {
			t.Fatalf("version after the failure: %+v", r)
		}
	})
}

// TestMigrateJobUsage: bad usage exits 2; a database that does not answer
// exits 1 within the connect timeout, and no output holds the password.
func TestMigrateJobUsage(t *testing.T) {
	sqlite := fxtest.SQLite(t)
	tests := []struct {
		name string
		cfg  dbfx.Config
		args []string
		code int
		want string
	}{
		{"no command", sqlite, []string{"-dir=testdata/migrations"}, exitUsage, "usage: migrate"},
		{"unknown command", sqlite, []string{"-dir=testdata/migrations", "down"}, exitUsage, `unknown command "down"`},
		{"no directory", sqlite, []string{"-dir=testdata/none", "up"}, exitUsage, "is not a directory"},
		{"no DSN", dbfx.Config{}, []string{"-dir=testdata/migrations", "up"}, exitUsage, "ENGINEKIT_DSN is unset"},
		{"bad DSN", dbfx.Config{DSN: "mongodb://u:Secret-Pw@h/db"}, []string{"-dir=testdata/migrations", "up"}, exitUsage, "invalid config"},
		{"unreachable", dbfx.Config{DSN: "postgres://u:Secret-Pw@" + closedPort(t) + "/db?sslmode=disable"},
			[]string{"-dir=testdata/migrations", "status"}, exitFailed, "cannot connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runJob(t, tt.cfg, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("%+v, want exit %d and %q", r, tt.code, tt.want)
			}
			if strings.Contains(r.stdout+r.stderr, "Secret-Pw") {
				t.Fatalf("the output shows the password: %+v", r)
			}
		})
	}
}

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
