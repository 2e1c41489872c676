package mysql

import (
	"testing"

	"github.com/enginekit/enginekit/internal/drv"
)

func TestMySQLInterpolateParams(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"u:pw@tcp(db:3306)/app", true},
		{"mysql://u:pw@db:3306/app", true},
		{"u:pw@tcp(db:3306)/app?charset=utf8mb4", true},
		{"u:pw@tcp(db:3306)/app?interpolateParams=true", true},
		{"u:pw@tcp(db:3306)/app?interpolateParams=false", false},
		{"u:pw@tcp(db:3306)/app?charset=gbk", false},
		{"u:pw@tcp(db:3306)/app?collation=sjis_japanese_ci", false},
		{"u:pw@tcp(db:3306)/app?character_set_client=big5", false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			mc, err := parse(tt.give, drv.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if mc.InterpolateParams != tt.want {
				t.Errorf("interpolateParams of %q is %v, want %v", tt.give, mc.InterpolateParams, tt.want)
			}
		})
	}
}
