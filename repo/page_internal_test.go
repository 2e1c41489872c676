package repo

import (
	"bytes"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// TestAppendArg: a value has the same form however it is typed or
// pointed to, as database/sql would pass it to the driver, and values the
// driver would receive differently have different forms.
func TestAppendArg(t *testing.T) {
	type point struct{ X, Y int }
	five, fiveAgain, a := 5, 5, "a"
	big1, big2 := uint64(1<<63), uint64(1<<63)
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	same := [][2]any{
		{5, int64(5)},
		{&five, &fiveAgain},
		{&five, int8(5)},
		{"a", &a},
		{&big1, &big2},
		{sql.NullString{String: "a", Valid: true}, "a"},
		{sql.NullInt64{}, nil},
		{(*int)(nil), nil},
		{at, at.Add(0)},
		{point{1, 2}, &point{1, 2}},
		{[]byte("a"), []byte("a")},
	}
	for _, p := range same {
		if x, y := appendArg(nil, p[0]), appendArg(nil, p[1]); !bytes.Equal(x, y) {
			t.Errorf("%#v and %#v: %q and %q", p[0], p[1], x, y)
		}
	}
	diff := [][2]any{
		{"5", 5},
		{[]byte("a"), "a"},
		{nil, ""},
		{true, 1},
		{1.0, 1},
		{1.5, 1.25},
		{uint64(1 << 63), uint64(1<<63 + 1)},
		{point{1, 2}, point{2, 1}},
		{at, at.Add(time.Nanosecond)},
		{at, at.In(time.FixedZone("", 3600))}, // the same instant in another zone counts as another value
		{"a\x00s\x01b", "a"},
	}
	for _, p := range diff {
		if x, y := appendArg(nil, p[0]), appendArg(nil, p[1]); bytes.Equal(x, y) {
			t.Errorf("%#v and %#v: both %q", p[0], p[1], x)
		}
	}
	// A list of values is read unambiguously.
	join := func(vs ...any) string {
		var b []byte
		for _, v := range vs {
			b = appendArg(b, v)
		}
		return fmt.Sprintf("%q", b)
	}
	if join("ab", "c") == join("a", "bc") {
		t.Error(`("ab", "c") and ("a", "bc") have one form`)
	}
}
