package drv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	for _, tt := range []struct{ give, want string }{
		{"postgres://app:pw@db/app", "postgres://xxxxx@db/app"},
		{"postgresql+psycopg2://app:p@ss@db/app", "postgresql+psycopg2://xxxxx@db/app"},
		{"app:pw@tcp(db:3306)/app", "xxxxx@tcp(db:3306)/app"},
		{"app:pw@dbhost", "xxxxx@dbhost"},
		{"host=db password='a b' dbname=app", "host=db password=xxxxx dbname=app"},
		{"host=db password='a b", "host=db password=xxxxx"},
		{`host=db password=a\ b dbname=app`, "host=db password=xxxxx dbname=app"},
		{"postgres://db/app?sslmode=disable&password=pw&x=1", "postgres://db/app?sslmode=disable&password=xxxxx&x=1"},
		{"app.db?_auth_user=u&_auth_pass=pw", "app.db?_auth_user=u&_auth_pass=xxxxx"},
		{"host=db sslpassword=pw", "host=db sslpassword=xxxxx"},
		{"/data/app.db", "/data/app.db"},
		{"postgres://@db/app", "postgres://@db/app"},
	} {
		if got := Mask(tt.give); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestSecretsAndRedact(t *testing.T) {
	for _, tt := range []struct{ dsn, text, want string }{
		{"host=db password='a b'", `auth failed for "a b"`, `auth failed for "xxxxx"`},
		{`host=db password='it\'s'`, "it's wrong", "xxxxx wrong"},
		{"postgres://app:p%40ss@db/app", "password p@ss refused", "password xxxxx refused"},
		{"postgres://app:p%40ss@db/app", "refused p@ss", "refused xxxxx"},
		{"u:pa/ss@tcp(h)", "default addr for network 'u:pa' unknown", "default addr for network 'u:pa' unknown"}, // a piece: MayQuote's
		// The patterns and the secrets are found in the text as it is.
		{":a@password=Zq9", ":a@password=Zq9?", ":xxxxx@pxxxxxssword=xxxxx"},
		{"postgresql://:0@:Zq9@0", "cannot open postgresql://:0@:Zq9@0", "cannot open postgresql://xxxxx@xxxxx"},
	} {
		if got := Redact(tt.text, Secrets(tt.dsn)...); got != tt.want {
			t.Errorf("Redact(%q) with the secrets of %q = %q, want %q", tt.text, tt.dsn, got, tt.want)
		}
	}
}

func TestMayQuote(t *testing.T) {
	if !MayQuote("default addr for network 'u:pa' unknown", Secrets("u:pa/ss@tcp(h)")...) {
		t.Error("a piece of pa/ss not seen")
	}
	if MayQuote("unterminated quoted string literal in connection string", Secrets("password='S3cretPw x")...) {
		t.Error("a message with no piece of the password seen as quoting one")
	}
	if !MayQuote("bad value: ab", "ab") || MayQuote("bad value", "") {
		t.Error("short secrets")
	}
}

// RedactErr hides a secret in an error's text and keeps what the error
// matches; an error without one is returned as it is.
func TestRedactErr(t *testing.T) {
	base := errors.New(`password authentication failed for "s3cr3t-pw"`)
	err := fmt.Errorf("connect: %w", base)
	red := RedactErr(err, "s3cr3t-pw")
	if strings.Contains(red.Error(), "s3cr3t-pw") || !errors.Is(red, base) {
		t.Fatalf("RedactErr = %q (Is base: %v), want the secret gone and base still matched", red, errors.Is(red, base))
	}
	if got := RedactErr(err, "other"); got != err {
		t.Fatalf("RedactErr without the secret in the text = %v, want err itself", got)
	}
	if RedactErr(nil, "x") != nil {
		t.Fatal("RedactErr(nil) is not nil")
	}
}
