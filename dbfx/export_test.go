package dbfx

import "github.com/enginekit/enginekit/internal/drv"

// FamilyOf exposes the DSN sniffing to the tests.
var FamilyOf = familyOf

// DSNProblem exposes why a DSN is refused for a driver name.
var DSNProblem = dsnProblem

// Pick is the driver that the engine would open dsn with among ds, or
// why none.
func Pick(name, dsn string, ds ...Driver) (driver, field, why string, notGiven bool) {
	var given drivers
	for _, d := range ds {
		given = given.add(d)
	}
	d, field, why, notGiven := given.pick(name, dsn)
	if d != nil {
		driver = d.Name
	}
	return driver, field, why, notGiven
}

// ResolveDSN is what the engine makes of dsn with d: where it connects
// and the password it redacts, or why not. Nothing is opened.
func ResolveDSN(d Driver, dsn string) (host, password string, tlsOff bool, err error) {
	t, err := resolveDSN(d.Spec(), dsn, drv.Options{})
	if err != nil {
		return "", "", false, err
	}
	return t.Host, t.Password, t.TLSOff, nil
}

// Redactor is what an engine of c removes from its messages.
func Redactor(c Config, ds ...Driver) (func(string) string, error) {
	var given drivers
	for _, d := range ds {
		given = given.add(d)
	}
	r, err := c.resolve(given, drv.Options{}, refuseMissing)
	if err != nil {
		return nil, err
	}
	return r.redact, nil
}
