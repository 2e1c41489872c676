package dbfx_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/monitor"
)

// preparesOf counts the statements prepared on connections, by text.
type preparesOf struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *preparesOf) Query(_ context.Context, e monitor.QueryEvent) {
	if e.Op == monitor.OpPrepare {
		p.mu.Lock()
		p.n[e.SQL]++
		p.mu.Unlock()
	}
}

func (p *preparesOf) Tx(context.Context, monitor.TxEvent) {}

// upper is a driver.Valuer of its own.
type upper string

func (u upper) Value() (driver.Value, error) { return strings.ToUpper(string(u)), nil }

// Values the driver writes into the SQL text (interpolateParams, which
// Open sets) are stored exactly as those a prepared statement sends in
// MySQL's binary protocol, for every parameter type database/sql and the
// driver accept, and compare equal to them in a WHERE.
func TestMySQLInterpolatedValues(t *testing.T) {
	cfg := fxtest.MySQL(t)
	ctx := testContext(t)
	p := &preparesOf{n: map[string]int{}}
	e, err := dbfx.Open(ctx, cfg, fxtest.WithDrivers(), dbfx.WithMonitor(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	m := e.Sessions()
	if _, err := e.DB().ExecContext(ctx, `CREATE TABLE vals (id INT PRIMARY KEY, i BIGINT NULL, u BIGINT UNSIGNED NULL,
		f DOUBLE NULL, b TINYINT(1) NULL, s VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
		bin VARBINARY(255) NULL, t DATETIME(6) NULL, d DECIMAL(30,10) NULL, j TEXT NULL)`); err != nil {
		t.Fatal(err)
	}
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	tests := []struct {
		col  string
		give any
	}{
		{"i", int64(math.MinInt64)}, {"i", int64(math.MaxInt64)}, {"i", 0}, {"i", int32(-7)}, {"i", uint8(200)},
		{"u", uint64(math.MaxUint64)}, {"u", uint32(math.MaxUint32)},
		{"f", 0.1}, {"f", -1e300}, {"f", 2.2250738585072014e-308}, {"f", 1e20}, {"f", 123456789.123456789},
		{"f", float32(0.1)}, {"f", math.Pi},
		{"b", true}, {"b", false},
		{"s", "it's"}, {"s", `back\slash\`}, {"s", "NUL\x00byte"}, {"s", "emoji 🎉 ü"}, {"s", "ctrl-z \x1a"},
		{"s", "%_ like"}, {"s", "line\nbreak\r\ttab"}, {"s", `"double" 'single'`}, {"s", "trailing space "},
		{"s", "a ? mark"}, {"s", "-- not a comment"}, {"s", "/* nor this */ #"}, {"s", ""}, {"s", nil},
		{"s", sql.NullString{}}, {"s", sql.NullString{String: "set", Valid: true}}, {"s", upper("valuer")},
		{"s", []byte("bytes into text")},
		{"bin", []byte{0, 0x27, 0x5c, 0xff, 0x22, 0x0a}}, {"bin", []byte{}},
		{"t", time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC)}, {"t", time.Date(2024, 2, 29, 23, 59, 59, 0, zone)},
		{"t", time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{"d", "12345678901234567890.0123456789"}, {"d", "-0.0000000001"},
		{"j", json.RawMessage(`{"a":"b\"c","n":[1,2.5,null]}`)},
		{"i", sql.NullInt64{Int64: 7, Valid: true}},
	}
	for i, tt := range tests {
		idA, idB := 2*i+1, 2*i+2
		plain := "INSERT INTO vals (id, " + tt.col + ") VALUES (?, ?)"
		prepared := "INSERT INTO vals (id, " + tt.col + ") VALUES (?,?)"
		if _, err := m.Q(ctx).ExecContext(ctx, plain, idA, tt.give); err != nil {
			t.Fatalf("%s = %#v, interpolated: %v", tt.col, tt.give, err)
		}
		if _, err := m.Prepared(ctx).ExecContext(ctx, prepared, idB, tt.give); err != nil {
			t.Fatalf("%s = %#v, prepared: %v", tt.col, tt.give, err)
		}
		var same, found int
		if err := m.Prepared(ctx).GetContext(ctx, &same, "SELECT a."+tt.col+" <=> b."+tt.col+
			" AND CAST(a."+tt.col+" AS BINARY) <=> CAST(b."+tt.col+" AS BINARY) FROM vals a, vals b WHERE a.id = ? AND b.id = ?",
			idA, idB); err != nil {
			t.Fatal(err)
		}
		if same != 1 {
			var a, b sql.NullString
			_ = e.DB().QueryRowContext(ctx, "SELECT CAST("+tt.col+" AS CHAR) FROM vals WHERE id = ?", idA).Scan(&a)
			_ = e.DB().QueryRowContext(ctx, "SELECT CAST("+tt.col+" AS CHAR) FROM vals WHERE id = ?", idB).Scan(&b)
			t.Errorf("%s = %#v: interpolated stored %v, prepared %v", tt.col, tt.give, a, b)
		}
		if err := m.Q(ctx).GetContext(ctx, &found, "SELECT COUNT(*) FROM vals WHERE "+tt.col+" <=> ? AND id IN (?, ?)",
			tt.give, idA, idB); err != nil {
			t.Fatal(err)
		}
		if found != 2 {
			t.Errorf("%s = %#v: an interpolated WHERE finds %d of the 2 rows", tt.col, tt.give, found)
		}
		// Read back: the result of an interpolated query comes in the text
		// protocol, that of a prepared one in the binary protocol; the
		// driver gives the same Go values for these column types, but for
		// an unsigned BIGINT read into an any (uint64 from text; int64, or
		// the digits above MaxInt64, from binary): read it into a uint64.
		var text, binary any
		if tt.col == "u" {
			var a, b uint64
			text, binary = &a, &b
		}
		if err := m.Q(ctx).QueryRowxContext(ctx, "SELECT "+tt.col+" FROM vals WHERE id = ?", idA).Scan(dest(&text)); err != nil {
			t.Fatal(err)
		}
		if err := m.Prepared(ctx).QueryRowxContext(ctx, "SELECT "+tt.col+" FROM vals WHERE id=?", idA).Scan(dest(&binary)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(text, binary) {
			t.Errorf("%s = %#v: read as %#v by an interpolated query, %#v by a prepared one", tt.col, tt.give, text, binary)
		}
	}
	// The statements sent as they are were never prepared on the server.
	p.mu.Lock()
	defer p.mu.Unlock()
	for text, n := range p.n {
		if strings.Contains(text, "VALUES (?, ?)") || strings.Contains(text, "<=> ? AND") {
			t.Errorf("%q was prepared %d times, want interpolated", text, n)
		}
	}
}

// dest is the Scan destination held in *v: the pointer it holds, else v.
func dest(v *any) any {
	if p, ok := (*v).(*uint64); ok {
		return p
	}
	return v
}
