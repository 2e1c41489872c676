package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A group is a set of private servers that only some tests need (faultdb
// up DIR GROUP): the test that needs it starts it and takes it down at
// its cleanup, so that the suite pays for it only there and every such
// test starts from fresh servers.
const (
	// groupPGHA: pg-ha1, a PostgreSQL primary, and pg-ha2, its synchronous
	// standby, each with a database test.
	groupPGHA = "pg-ha"
	pgHA1     = "pg-ha1"
	pgHA2     = "pg-ha2"
)

// up starts group and returns what faultdb says to reach it (KEY=VALUE
// lines: ENGINEKIT_FAULT_PG_HA1_DSN...). The group is taken down at
// cleanup, before begin's cleanups run.
func (s servers) up(t *testing.T, group string) map[string]string {
	t.Helper()
	t.Cleanup(func() {
		if out, err := s.faultdb(context.Background(), "down", s.dir, group); err != nil {
			t.Errorf("faultdb down %s: %v\n%s", group, err, out)
		}
	})
	begun := time.Now()
	out, err := s.faultdb(context.Background(), "up", s.dir, group)
	if err != nil {
		t.Fatalf("faultdb up %s: %v\n%s", group, err, out)
	}
	t.Logf("faultdb up %s took %s", group, time.Since(begun).Round(time.Millisecond))
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "ENGINEKIT_FAULT_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		t.Fatalf("faultdb up %s said nothing of its servers:\n%s", group, out)
	}
	return env
}

// faultdb runs faultdb with args, bounded (faultdb bounds each of its
// waits by 60s); it returns the standard output, or with an error both
// outputs.
func (s servers) faultdb(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.ctlPath, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), fmt.Errorf("faultdb %s: %w", strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}
