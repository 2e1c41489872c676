package dbfx_test

import (
	"strings"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/internal/drv"
)

// fuzzMarker is the password the fuzz target puts in its DSNs.
const fuzzMarker = "Zq9Secret"

// fuzzDSN puts fuzzMarker where a DSN of the form form holds a password,
// between a, b and c.
func fuzzDSN(form uint8, a, b, c string) string {
	switch form % 10 {
	case 0:
		return a + "://" + b + ":" + fuzzMarker + "@" + c // a URL of any scheme
	case 1:
		return "postgres://" + b + ":" + fuzzMarker + "@" + c
	case 2:
		return "postgresql://" + b + ":" + fuzzMarker + "@" + c
	case 3:
		return "mysql://" + b + ":" + fuzzMarker + "@" + c
	case 4:
		return a + "password=" + fuzzMarker + c // libpq key=value
	case 5:
		return a + "password='" + fuzzMarker + c // quoted, perhaps never closed
	case 6:
		return b + ":" + fuzzMarker + "@" + c // the mysql driver's form, or a bare user:pw@host
	case 7:
		return a + "?_auth_pass=" + fuzzMarker + c // go-sqlite3
	case 8:
		return a + "sslpassword=" + fuzzMarker + c
	}
	return a + b + c // no password: only no panic
}

// FuzzDSN sends DSNs through everything that classifies, parses and
// redacts them without opening anything (familyOf, pick, each driver's
// Resolve, Validate, the redaction): nothing panics, and the password
// put in the DSN is in no error, no host and no redacted form.
func FuzzDSN(f *testing.F) {
	for _, s := range []struct {
		form    uint8
		a, b, c string
	}{
		{0, "postgresql+psycopg2", "app", "host/db"},
		{0, "mongodb", "app", "host:27017/db"},
		{0, "postgress", "app", "host/db"},
		{0, " postgres", "app", "host/db"},
		{1, "", "app", "db.example:5432/app?sslmode=disable"},
		{1, "", "a/b", "h:notaport/db"},
		{1, "", "app", "h1,h2/db?port=5432,5433"},
		{2, "", "app", "/db?host=/run/postgresql"},
		{3, "", "root", "127.0.0.1:3306/test?parseTime=true"},
		{4, "host=db user=app ", "", " dbname=app sslmode=bogus"},
		{4, "host=db ", "", " b dbname=app"},
		{5, "host=db ", "", " b' dbname=app"},
		{5, "host=db ", "", ""},
		{5, "host='x ", "", "'"},
		{6, "", "app", "dbhost"},
		{6, "", "app", "tcp(db:3306)/app?charset=gbk"},
		{6, "", "app", "unix(/run/mysqld.sock)/app"},
		{6, "", "app", "dbhost/db"},
		{7, "app.db", "", "&_auth_user=u"},
		{8, "host=db ", "", " sslmode=verify-full"},
		{9, ":memory:", "", ""},
		{9, "file:app.db?mode=ro", "", ""},
		{9, "/data/app.db", "", ""},
	} {
		f.Add(s.form, s.a, s.b, s.c)
	}
	drivers := []dbfx.Driver{postgres.Driver(), mysql.Driver(), sqlite3.Driver()}
	f.Fuzz(func(t *testing.T, form uint8, a, b, c string) {
		if strings.Contains(a+"\x00"+b+"\x00"+c, fuzzMarker) {
			t.Skip("the marker stands for the password only")
		}
		dsn := fuzzDSN(form, a, b, c)
		marked := strings.Contains(dsn, fuzzMarker)
		check := func(what, s string) {
			t.Helper()
			if marked && strings.Contains(s, fuzzMarker) {
				t.Fatalf("%s of %q shows the password: %s", what, dsn, s)
			}
		}
		_ = dbfx.FamilyOf(dsn)
		check("Mask", drv.Mask(dsn))
		check("Redact", drv.Redact("cannot open "+dsn+": failed", drv.Secrets(dsn)...))
		for _, name := range []string{"", "postgres", "mysql", "sqlite3"} {
			check("DSNProblem("+name+")", dbfx.DSNProblem(name, dsn))
			_, _, why, _ := dbfx.Pick(name, dsn, drivers...)
			check("pick("+name+")", why)
			for _, ds := range [][]dbfx.Driver{drivers, nil} {
				if err := (dbfx.Config{Driver: name, DSN: dsn}).Validate(ds...); err != nil {
					check("Validate("+name+")", err.Error())
				}
			}
			if err := (dbfx.Config{Driver: name, DSN: "postgres://u@h/db", Replicas: []string{dsn}}).Validate(drivers...); err != nil {
				check("Validate(replica)", err.Error())
			}
			if redact, err := dbfx.Redactor(dbfx.Config{Driver: name, DSN: dsn}, drivers...); err == nil {
				check("the engine's redaction", redact("failed: "+dsn))
			}
		}
		for _, d := range drivers {
			host, _, _, err := dbfx.ResolveDSN(d, dsn)
			check(d.Spec().Name+" host", host)
			if err != nil {
				check(d.Spec().Name+" error", err.Error())
			}
		}
		// The drivers' own Resolve, before the engine redacts what they
		// say (the mysql driver's is checked through the engine's only).
		for _, d := range []dbfx.Driver{postgres.Driver(), sqlite3.Driver()} {
			tg, err := d.Spec().Resolve(dsn, drv.Options{})
			if err != nil {
				check(d.Spec().Name+" Resolve error", err.Error())
			} else {
				check(d.Spec().Name+" Resolve host", tg.Host)
			}
		}
	})
}
