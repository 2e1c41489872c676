package dbfx_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// openWith opens an engine on cfg with opts and closes it at cleanup.
func openWith(t *testing.T, cfg dbfx.Config, opts ...dbfx.Option) *dbfx.Engine {
	t.Helper()
	e, err := dbfx.Open(testContext(t), cfg, append(opts, fxtest.WithDrivers())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// freshConnections makes every statement through e.DB() open a
// connection of its own.
func freshConnections(e *dbfx.Engine) { e.DB().SetMaxIdleConns(0) }

func randomHex(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// TestPasswordHookCalledPerConnection: on PostgreSQL (trust
// authentication here, so the server accepts any password) the hook is
// asked at each new connection, and the DSN's own password is not used.
func TestPasswordHookCalledPerConnection(t *testing.T) {
	cfg := fxtest.Postgres(t)
	var calls atomic.Int64
	e := openWith(t, cfg, dbfx.WithPassword(func(ctx context.Context) (string, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the hook's ctx has no deadline")
		}
		return fmt.Sprintf("token-%d", calls.Add(1)), nil
	}))
	started := calls.Load()
	if started == 0 {
		t.Fatal("the hook was not called by the start")
	}
	freshConnections(e)
	for range 3 {
		if _, err := e.DB().ExecContext(testContext(t), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load() - started; got != 3 {
		t.Fatalf("3 new connections called the hook %d times", got)
	}
}

// TestPasswordHookError: a hook that fails makes the connect fail with an
// error matching ErrCredentials, ErrConnect and the hook's error, naming
// the engine and no password; the start retries it within ConnectTimeout.
func TestPasswordHookError(t *testing.T) {
	const dsnSecret = "dsn-Secret-Pw"
	cfg := fxtest.Postgres(t)
	u, err := url.Parse(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), dsnSecret)
	cfg.DSN = u.String()
	cfg.ConnectTimeout = time.Second
	sealed := errors.New("vault is sealed")

	t.Run("always", func(t *testing.T) {
		var calls atomic.Int64
		_, err := dbfx.Open(testContext(t), cfg, fxtest.WithDrivers(), dbfx.WithPassword(func(context.Context) (string, error) {
			calls.Add(1)
			return "", sealed
		}))
		if !errors.Is(err, dbfx.ErrCredentials) || !errors.Is(err, dbfx.ErrConnect) || !errors.Is(err, sealed) {
			t.Fatalf("err = %v, want ErrCredentials, ErrConnect and the hook's error", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, `password hook failed for engine "primary"`) || !strings.Contains(msg, "vault is sealed") ||
			strings.Contains(msg, dsnSecret) {
			t.Fatalf("error %q: want the engine and the hook's error, no password", msg)
		}
		if calls.Load() < 2 {
			t.Fatalf("the start asked the hook %d times: want retries", calls.Load())
		}
	})
	t.Run("then answers", func(t *testing.T) {
		var calls atomic.Int64
		e := openWith(t, cfg, dbfx.WithPassword(func(context.Context) (string, error) {
			if calls.Add(1) <= 2 {
				return "", sealed
			}
			return "token", nil
		}))
		if err := e.Check(testContext(t)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPasswordHookRotation: on MariaDB, a user with a password; the hook's
// wrong password fails the start (access denied, no password in the
// error), the right one opens; after the password changes on the server,
// a new connection with the old one is refused, and with the new one
// (the hook rotated) succeeds, on the same engine.
func TestPasswordHookRotation(t *testing.T) {
	cfg := fxtest.MySQL(t)
	admin := openWith(t, cfg)
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	user := "ek_pw_" + randomHex(t)
	first, second, wrong := "First-"+randomHex(t), "Second-"+randomHex(t), "Wrong-"+randomHex(t)
	ctx := testContext(t)
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, first),
		fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", mc.DBName, user),
	} {
		if _, err := admin.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = admin.DB().ExecContext(context.Background(), fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
	mc.User, mc.Passwd = user, ""
	userCfg := dbfx.Config{DSN: mc.FormatDSN(), ConnectTimeout: 2 * time.Second}

	var mu sync.Mutex
	current := wrong
	hook := dbfx.WithPassword(func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return current, nil
	})
	set := func(pw string) {
		mu.Lock()
		current = pw
		mu.Unlock()
	}

	_, err = dbfx.Open(ctx, userCfg, fxtest.WithDrivers(), hook)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("wrong password: err = %v, want access denied (1045)", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("the error shows the password: %v", err)
	}

	set(first)
	e := openWith(t, userCfg, hook)
	freshConnections(e)
	var who string
	if err := e.DB().GetContext(ctx, &who, "SELECT CURRENT_USER()"); err != nil || !strings.HasPrefix(who, user+"@") {
		t.Fatalf("connected as %q: %v", who, err)
	}
	if _, err := admin.DB().ExecContext(ctx, fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s'", user, second)); err != nil {
		t.Fatal(err)
	}
	_, err = e.DB().ExecContext(ctx, "SELECT 1")
	if !errors.As(err, &me) || me.Number != 1045 || strings.Contains(err.Error(), first) {
		t.Fatalf("old password after the rotation: err = %v, want access denied without the password", err)
	}
	set(second)
	if _, err := e.DB().ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatalf("new password after the rotation: %v", err)
	}
}

// TestWithTLSPostgres: WithTLS takes the place of the DSN's sslmode (here
// disable). The local server has TLS on with a certificate for localhost:
// with that certificate as the root and ServerName localhost the
// connection is encrypted (pg_stat_ssl says so, and a control without
// WithTLS is not); with the system's roots the handshake fails on the
// certificate, so the config is the one used. A server without TLS fails
// the connect instead.
func TestWithTLSPostgres(t *testing.T) {
	cfg := fxtest.Postgres(t)
	cfg.ConnectTimeout = 5 * time.Second
	ctx := testContext(t)
	plain := openWith(t, cfg)
	encrypted := func(e *dbfx.Engine) bool {
		t.Helper()
		var ssl bool
		if err := e.DB().GetContext(ctx, &ssl, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); err != nil {
			t.Fatal(err)
		}
		return ssl
	}
	if encrypted(plain) {
		t.Fatal("control: sslmode=disable is encrypted")
	}
	var on, certFile string
	if err := plain.DB().GetContext(ctx, &on, "SHOW ssl"); err != nil {
		t.Fatal(err)
	}
	if on != "on" {
		t.Log("the server has TLS off: checking that WithTLS refuses it")
		_, err := dbfx.Open(ctx, cfg, fxtest.WithDrivers(), dbfx.WithTLS(&tls.Config{InsecureSkipVerify: true}))
		if err == nil || !strings.Contains(err.Error(), "does not support TLS") {
			t.Fatalf("err = %v, want the server does not support TLS", err)
		}
		return
	}
	if err := plain.DB().GetContext(ctx, &certFile, "SHOW ssl_cert_file"); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Skipf("the server's certificate is not readable here: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", certFile)
	}
	var verified atomic.Int64
	e := openWith(t, cfg, dbfx.WithTLS(&tls.Config{RootCAs: roots, ServerName: "localhost",
		VerifyConnection: func(tls.ConnectionState) error { verified.Add(1); return nil }}))
	if !encrypted(e) || verified.Load() == 0 {
		t.Fatalf("WithTLS: encrypted %v, handshakes verified %d", encrypted(e), verified.Load())
	}
	// A statement cancelled by its ctx: lib/pq's cancel request dials
	// through the TLS dialer too.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := e.DB().ExecContext(short, "SELECT pg_sleep(5)"); !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "canceling statement")) {
		t.Fatalf("cancelled statement: %v", err)
	}
	if err := e.Check(ctx); err != nil {
		t.Fatal(err)
	}

	_, err = dbfx.Open(ctx, cfg, fxtest.WithDrivers(), dbfx.WithTLS(&tls.Config{}))
	var unknown x509.UnknownAuthorityError
	var invalid x509.HostnameError
	if err == nil || !(errors.As(err, &unknown) || errors.As(err, &invalid) || strings.Contains(err.Error(), "certificate")) {
		t.Fatalf("system roots: err = %v, want the certificate refused", err)
	}
}

// TestWithTLSMySQL: the local MariaDB has TLS off (have_ssl DISABLED):
// WithTLS makes the driver ask for it, and the connect fails saying the
// server does not support it, where the same Config without WithTLS
// connects. On a server with TLS on, the connection is encrypted.
func TestWithTLSMySQL(t *testing.T) {
	cfg := fxtest.MySQL(t)
	ctx := testContext(t)
	plain := openWith(t, cfg)
	var name, haveSSL string
	if err := plain.DB().QueryRowxContext(ctx, "SHOW VARIABLES LIKE 'have_ssl'").Scan(&name, &haveSSL); err != nil {
		t.Fatal(err)
	}
	var verified atomic.Int64
	withTLS := dbfx.WithTLS(&tls.Config{InsecureSkipVerify: true,
		VerifyConnection: func(tls.ConnectionState) error { verified.Add(1); return nil }})
	if haveSSL != "YES" {
		t.Logf("the server has TLS off (have_ssl %s): checking that WithTLS asks for it", haveSSL)
		_, err := dbfx.Open(ctx, cfg, fxtest.WithDrivers(), withTLS)
		if !errors.Is(err, mysql.ErrNoTLS) || !errors.Is(err, dbfx.ErrConnect) {
			t.Fatalf("err = %v, want mysql.ErrNoTLS", err)
		}
		return
	}
	e := openWith(t, cfg, withTLS)
	var cipher string
	if err := e.DB().QueryRowxContext(ctx, "SHOW STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" || verified.Load() == 0 {
		t.Fatalf("WithTLS: cipher %q, handshakes %d", cipher, verified.Load())
	}
}

// TestHooksRefusedOnSQLite: SQLite has no password and no network.
func TestHooksRefusedOnSQLite(t *testing.T) {
	_, err := dbfx.Open(testContext(t), fxtest.SQLite(t), fxtest.WithDrivers(),
		dbfx.WithPassword(func(context.Context) (string, error) { return "x", nil }), dbfx.WithTLS(&tls.Config{}))
	if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "WithPassword: SQLite has no password") ||
		!strings.Contains(err.Error(), "WithTLS: SQLite has no network connection") {
		t.Fatalf("err = %v", err)
	}
}
