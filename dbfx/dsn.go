package dbfx

import (
	"fmt"
	"net"
	"strings"

	"github.com/enginekit/enginekit/internal/drv"
)

// resolved is a validated Config with what its driver makes of the DSN.
type resolved struct {
	cfg         Config
	drv         *drv.Driver
	*drv.Target             // the DSN's connectors and what may be said of it
	replicas    []*resolved // Config.Replicas, resolved
}

// packageOf is the driver package of a driver enginekit has.
func packageOf(name string) (string, bool) {
	switch name {
	case "postgres", "mysql", "sqlite3":
		return "github.com/enginekit/enginekit/dbfx/" + name, true
	}
	return "", false
}

// familyOf guesses the driver from the form of a DSN.
func familyOf(dsn string) string {
	switch {
	case dsn == "":
		return ""
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres"
	case strings.HasPrefix(dsn, "mysql://"),
		strings.Contains(dsn, "@tcp("), strings.Contains(dsn, "@unix("), strings.Contains(dsn, "@/"):
		return "mysql"
	case strings.HasPrefix(dsn, "file:"), dsn == ":memory:":
		return "sqlite3"
	case strings.Contains(dsn, "=") && (strings.Contains(dsn, "host=") || strings.Contains(dsn, "dbname=")):
		return "postgres" // key=value form
	}
	return "sqlite3" // a file path
}

// drivers are the drivers given to an engine, once each.
type drivers []*drv.Driver

// add adds d unless a driver of its name is there: a driver given twice
// counts once.
func (ds drivers) add(d Driver) drivers {
	if d == nil || d.Spec() == nil {
		return ds
	}
	for _, have := range ds {
		if have.Name == d.Spec().Name {
			return ds
		}
	}
	return append(ds, d.Spec())
}

// pick returns the driver named by Config.Driver, or by the family of
// the DSN when that is empty, among ds. When there is none, field and why
// say so; notGiven is true when the driver is one of enginekit's that was
// not given.
func (ds drivers) pick(name, dsn string) (d *drv.Driver, field, why string, notGiven bool) {
	field = "Driver"
	if name == "" {
		field, name = "DSN", familyOf(dsn)
	}
	for _, d := range ds {
		if d.Name == name {
			return d, "", "", false
		}
	}
	pkg, known := packageOf(name)
	give := "import " + pkg + " and put its Module in the Fx graph, or give its Driver() with dbfx.WithDriver"
	switch {
	case !known:
		return nil, field, fmt.Sprintf("%q is not a driver enginekit has (want postgres, mysql or sqlite3)", name), false
	case field == "Driver":
		return nil, field, fmt.Sprintf("%q was not given: %s", name, give), true
	}
	return nil, field, fmt.Sprintf("is a %s DSN, but no %s driver was given: %s", name, name, give), true
}

// redact removes the password from an error's text.
func (r *resolved) redact(msg string) string {
	if r.Password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, r.Password, "xxxxx")
}

// loopback reports whether host (host:port, host/db, or a socket) is on
// this machine.
func loopback(host string) bool {
	h := host
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	if h == "" || h == "localhost" || strings.HasPrefix(h, "/") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
