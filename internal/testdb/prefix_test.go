package testdb

import (
	"strings"
	"testing"
)

func TestPrefix(t *testing.T) {
	tests := []struct {
		give    string
		unset   bool
		want    string
		wantErr bool
	}{
		{unset: true, want: DefaultPrefix},
		{give: "ci_", want: "ci_"},
		{give: "team7_ek_", want: "team7_ek_"},
		{give: "", wantErr: true},
		{give: "CI_", wantErr: true},
		{give: "_ci", wantErr: true},
		{give: "7ci", wantErr: true},
		{give: "ci-", wantErr: true},
		{give: `ci";`, wantErr: true},
		{give: strings.Repeat("a", 25), wantErr: true},
		{give: strings.Repeat("a", 24), want: strings.Repeat("a", 24)},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if !tt.unset {
				t.Setenv(EnvPrefix, tt.give)
			}
			got, err := Prefix()
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Prefix() = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), EnvPrefix) {
				t.Errorf("the error does not name %s: %v", EnvPrefix, err)
			}
		})
	}
}

// TestNameStartsWithThePrefix: names start with the prefix and stay
// within both servers' limits at the longest prefix and test name.
func TestNameStartsWithThePrefix(t *testing.T) {
	long := strings.Repeat("p", maxPrefix)
	t.Setenv(EnvPrefix, long)
	name := Name(t)
	if !strings.HasPrefix(name, long) || len(name) > 63 {
		t.Fatalf("Name = %q (%d bytes)", name, len(name))
	}
}
