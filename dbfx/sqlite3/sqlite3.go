// Package sqlite3 is enginekit's SQLite driver, on mattn/go-sqlite3 (cgo).
// Put Module in the Fx graph beside dbfx.Module, or give Driver() to
// dbfx.Open:
//
//	fx.New(fx.Supply(cfg), dbfx.Module, sqlite3.Module, ...)
//	engine, err := dbfx.Open(ctx, cfg, dbfx.WithDriver(sqlite3.Driver()))
//
// A pool opened by hand takes its error classification and retries with
// session.New(db, session.WithDriver(sqlite3.Driver())).
//
// DSNs: a file path, a file: URI or :memory:. A file database runs in WAL
// mode with a one-connection writer pool (_txlock=immediate, so writers
// queue instead of failing busy) and a reader pool opened with
// _query_only; foreign keys are enforced and a busy timeout set, unless
// the DSN says otherwise; each connection keeps go-sqlite3's cache of 64
// prepared statements (_stmt_cache_size=0 turns it off). A DSN value that
// would break those guarantees (a deferred _txlock, _query_only, a
// journal mode other than WAL) is a config error. :memory: gets a private shared-cache name and one
// connection that serves every scope.
//
// Errors: SQLITE_BUSY and SQLITE_LOCKED (with their extended codes) are
// retried and abort the transaction, a UNIQUE or PRIMARY KEY constraint is
// a unique violation, FOREIGNKEY, NOTNULL and CHECK the violations of
// theirs, SQLITE_INTERRUPT a canceled statement, SQLITE_READONLY a refused
// write. Package session's doc has the table of the error classes matched
// with errors.Is.
//
// go-sqlite3 is C: built with CGO_ENABLED=0 the package still compiles,
// so that a program that imports it can be built and vetted, but every
// SQLite DSN is a config error saying so.
package sqlite3

import (
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	gosqlite3 "github.com/mattn/go-sqlite3"
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
)

// Module puts the driver in the Fx graph, where dbfx.Module and dbfx.Named
// find it.
var Module fx.Option = dbfx.DriverModule(Driver)

// Driver returns the SQLite driver.
func Driver() dbfx.Driver {
	return &drv.Driver{
		Name:    "sqlite3",
		Package: "github.com/enginekit/enginekit/dbfx/sqlite3",
		SQL:     dialect.New(dialect.SQLite, classify),
		Resolve: resolve,
	}
}

// busyTimeout is the busy timeout enginekit sets unless the DSN does.
const busyTimeout = "5000"

// stmtCacheSize is how many prepared statements go-sqlite3 keeps on each
// connection for the texts run on it (_stmt_cache_size), unless the DSN
// says otherwise. enginekit's own statement cache serves a statement
// while its pool has a connection to spare; past that (callers queueing
// on the one writer) a statement is sent as it is, and this cache spares
// SQLite its parse: 13% off Mixed64 in bench/.
const stmtCacheSize = "64"

func resolve(dsn string, _ drv.Options) (*drv.Target, error) {
	if errNoCgo != nil {
		return nil, errNoCgo
	}
	path, query, _ := strings.Cut(dsn, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("not a valid sqlite3 DSN: bad query string")
	}
	memory := path == ":memory:" || path == "file::memory:" || params.Get("mode") == "memory"
	// A path is no secret, but a DSN that Driver made a path may hold one.
	t := &drv.Target{Memory: memory, Host: drv.Redact(path, drv.Secrets(dsn)...), Password: params.Get("_auth_pass")}
	if !memory {
		t.File = fileOf(path)
	}
	t.Database = t.Host
	if v := firstOf(params, "_txlock"); v != "" && v != "immediate" && v != "exclusive" {
		return nil, fmt.Errorf("_txlock=%s would let writers fail with SQLITE_BUSY_SNAPSHOT: use immediate", v)
	}
	if v := firstOf(params, "_query_only"); v != "" && v != "0" && v != "false" {
		return nil, errors.New("_query_only is set by enginekit on its reader pool only: remove it")
	}
	if v := strings.ToLower(firstOf(params, "_journal_mode", "_journal")); !memory && v != "" && v != "wal" {
		return nil, fmt.Errorf("_journal_mode=%s would block readers behind the writer: use WAL", v)
	}
	if memory && path == ":memory:" {
		// A private name, so that two engines in one process never share it.
		var b [8]byte
		_, _ = rand.Read(b[:])
		path = "file:enginekit-" + hex.EncodeToString(b[:])
		params.Set("mode", "memory")
		t.Host, t.Database = ":memory:", ":memory:"
	}
	setDefault(params, "_txlock", "immediate")
	setDefault(params, "_stmt_cache_size", stmtCacheSize)
	// REFERENCES are enforced, as on the other databases.
	if firstOf(params, "_foreign_keys", "_fk") == "" {
		params.Set("_foreign_keys", "1")
	}
	if firstOf(params, "_busy_timeout", "_timeout") == "" {
		params.Set("_busy_timeout", busyTimeout)
	}
	if !memory {
		setDefault(params, "_journal_mode", "WAL")
	}
	t.Writer = connector(path + "?" + params.Encode())
	if !memory {
		params.Set("_txlock", "deferred")
		params.Set("_query_only", "1")
		params.Del("_journal_mode")
		params.Del("_journal")
		t.Reader = connector(path + "?" + params.Encode())
	}
	return t, nil
}

func connector(dsn string) func() (driver.Connector, error) {
	return func() (driver.Connector, error) { return drv.DSNConnector(&gosqlite3.SQLiteDriver{}, dsn) }
}

// fileOf is the file a DSN's path names: a file: URI's path,
// percent-decoded, as SQLite reads it ("" for a URI naming a host, which
// SQLite refuses), or the path itself.
func fileOf(path string) string {
	p, uri := strings.CutPrefix(path, "file:")
	if !uri {
		return path
	}
	if rest, ok := strings.CutPrefix(p, "//"); ok {
		authority, abs, _ := strings.Cut(rest, "/")
		if authority != "" && authority != "localhost" {
			return ""
		}
		p = "/" + abs
	}
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	return p
}

func firstOf(v url.Values, keys ...string) string {
	for _, k := range keys {
		if s := v.Get(k); s != "" {
			return s
		}
	}
	return ""
}

func setDefault(v url.Values, key, value string) {
	if v.Get(key) == "" {
		v.Set(key, value)
	}
}
