package boundary_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// What no program of one driver may link, beside the other drivers.
var heavy = []string{
	"github.com/mattn/go-sqlite3",
	"github.com/pressly/goose",
	"github.com/prometheus/",
	"go.opentelemetry.io/",
}

func goTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the boundary checks need the go command: %v", err)
	}
	return path
}

// deps lists the packages pkgs link, as built with CGO_ENABLED=0.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command(goTool(t), append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", strings.Join(pkgs, " "), err, exitStderr(err))
	}
	return strings.Fields(string(out))
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestCoreLinksNoBackend: the core packages import no driver, no
// Prometheus, no OpenTelemetry and no goose.
func TestCoreLinksNoBackend(t *testing.T) {
	mod := "github.com/enginekit/enginekit/"
	core := []string{mod + "dbfx", mod + "session", mod + "repo", mod + "monitor", mod + "internal/dialect"}
	forbidden := append([]string{"github.com/lib/pq", "github.com/jackc/pgx", "github.com/go-sql-driver/mysql"}, heavy...)
	checkNone(t, deps(t, core...), forbidden)
}

// TestOneDriverProgram: a program of dbfx, one driver package, session
// and repo links that driver alone, and builds with CGO_ENABLED=0.
func TestOneDriverProgram(t *testing.T) {
	for _, tt := range []struct {
		program string
		others  []string
	}{
		{"./postgres", []string{"github.com/go-sql-driver/mysql", "github.com/jackc/pgx"}},
		{"./pgx", []string{"github.com/go-sql-driver/mysql", "github.com/lib/pq"}},
		{"./mysql", []string{"github.com/lib/pq", "github.com/jackc/pgx"}},
	} {
		t.Run(tt.program, func(t *testing.T) {
			checkNone(t, deps(t, tt.program), append(tt.others, heavy...))
			cmd := exec.Command(goTool(t), "build", "-o", filepath.Join(t.TempDir(), "program"), tt.program)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("CGO_ENABLED=0 go build %s: %v\n%s", tt.program, err, out)
			}
		})
	}
}

func checkNone(t *testing.T, linked, forbidden []string) {
	t.Helper()
	for _, p := range linked {
		for _, f := range forbidden {
			if strings.HasPrefix(p, f) {
				t.Errorf("links %s", p)
			}
		}
	}
}
