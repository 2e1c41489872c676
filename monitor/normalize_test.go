package monitor_test

import (
	"strings"
	"testing"

	"github.com/enginekit/enginekit/monitor"
)

func TestNormalizeSQL(t *testing.T) {
	const (
		pg     = monitor.PostgreSQL
		my     = monitor.MySQL
		lite   = monitor.SQLite
		anySys = monitor.System("")
	)
	tests := []struct {
		name string
		sys  monitor.System
		give string
		want string
	}{
		{"nothing to hide", pg, `SELECT id, "name" FROM users WHERE id = $1`, `SELECT id, "name" FROM users WHERE id = $1`},
		{"string", pg, `SELECT * FROM t WHERE a = 'x' AND b = 'y'`, `SELECT * FROM t WHERE a = ? AND b = ?`},
		{"doubled quote", pg, `SELECT 'it''s', 'b'`, `SELECT ?, ?`},
		{"password literal", pg, `CREATE ROLE app LOGIN PASSWORD 'pw'`, `CREATE ROLE app LOGIN PASSWORD ?`},
		{"password function", my, `SET PASSWORD FOR 'u'@'%' = PASSWORD('pw')`, `SET PASSWORD FOR ?@? = PASSWORD(?)`},
		{"identified by", my, `CREATE USER 'u'@'localhost' IDENTIFIED BY "pw"`, `CREATE USER ?@? IDENTIFIED BY ?`},
		{"password= in a literal", pg, `SELECT dblink_connect('host=db password=pw')`, `SELECT dblink_connect(?)`},
		{"escape string", pg, `SELECT E'a\'b', e'\\'`, `SELECT ?, ?`},
		{"escape string, prefix kept off a name", pg, `SELECT type'x'`, `SELECT type?`},
		{"prefixes", anySys, `SELECT X'1F', b'01', N'n', U&'d\0061t'`, `SELECT ?, ?, ?, U&?`},
		{"dollar quote", pg, `DO $$BEGIN PERFORM 'x'; END$$`, `DO ?`},
		{"tagged dollar quote", pg, `CREATE FUNCTION f() RETURNS text AS $fn$ SELECT $$pw$$ $fn$ LANGUAGE sql`,
			`CREATE FUNCTION f() RETURNS text AS ? LANGUAGE sql`},
		{"placeholders", pg, `SELECT $1, $12 FROM t WHERE a$b = 1`, `SELECT $1, $12 FROM t WHERE a$b = ?`},
		{"numbered placeholder", lite, `SELECT ?1, ?2, :name, @v`, `SELECT ?1, ?2, :name, @v`},
		{"numbers", anySys, `SELECT 1, -2, 3.5, .5, 1e10, 2.5E-3, 0x1F, t1.c2 FROM t2 LIMIT 10 OFFSET 20`,
			`SELECT ?, -?, ?, ?, ?, ?, ?, t1.c2 FROM t2 LIMIT ? OFFSET ?`},
		{"IN list", my, `SELECT * FROM t WHERE id IN (1, 2, 3)`, `SELECT * FROM t WHERE id IN (?, ?, ?)`},
		{"line comment", pg, "SELECT 1 -- 'pw'\nFROM t", "SELECT ? \nFROM t"},
		{"block comment", pg, `SELECT /* 'pw' */ 1`, `SELECT  ?`},
		{"nested comment", pg, `SELECT /* a /* 'pw' */ 'pw2' */ 1`, `SELECT  ?`},
		{"comment between tokens", pg, `SELECT a/*x*/FROM t`, `SELECT a FROM t`},
		// With NO_BACKSLASH_ESCAPES, 'a\' ends at the second quote: both
		// readings are taken, and what either reads as a literal is hidden.
		{"mysql backslash", my, `SELECT 'a\'b', 'c'`, `SELECT ?`},
		{"mysql escaped backslash", my, `SELECT 'a\\b', 'c'`, `SELECT ?, ?`},
		{"mysql double-quoted string", my, `SELECT "a""b" FROM t`, `SELECT ? FROM t`},
		{"mysql backtick name", my, "SELECT `my col` FROM `t`", "SELECT `my col` FROM `t`"},
		{"mysql hash comment", my, "SELECT 1 # 'pw'\nFROM t", "SELECT ? \nFROM t"},
		{"comment at the end", pg, "SELECT 1 -- 'pw'", "SELECT ?"},
		{"mysql -- needs a space", my, `SELECT 1--2`, `SELECT ?--?`},
		{"mysql -- comment", my, "SELECT 1 -- pw\n", "SELECT ? \n"},
		{"mysql executable comment", my, `SELECT /*!50110 'pw', */ 1`, `SELECT /*!50110 ?, */ ?`},
		{"mysql hint", my, `SELECT /*+ MAX_EXECUTION_TIME(1000) */ a FROM t`, `SELECT  a FROM t`},
		{"sqlite names", lite, "SELECT [a b], `c`, \"d\" FROM t", "SELECT [a b], `c`, \"d\" FROM t"},
		{"sqlite no backslash escape", lite, `SELECT 'a\', 'b'`, `SELECT ?, ?`},
		{"postgres name with quotes", pg, `SELECT "a""b" FROM t`, `SELECT "a""b" FROM t`},
		{"unknown: double quotes may be strings", anySys, `SELECT "pw" FROM t`, `SELECT ? FROM t`},
		{"a system it does not know", monitor.System("oracle"), `SELECT "pw" FROM t`, `SELECT ? FROM t`},
		{"unknown: backslash either way", anySys, `SELECT 'a\', 'pw'`, `SELECT ?`},
		{"unterminated string", pg, `SELECT 'pw`, `SELECT ?`},
		{"unterminated comment", pg, `SELECT 1 /* 'pw'`, `SELECT ?`},
		{"unterminated dollar quote", pg, `SELECT $$pw`, `SELECT ?`},
		{"unicode", pg, `SELECT 'ü' AS "ñ", ü1 FROM t`, `SELECT ? AS "ñ", ü1 FROM t`},
		{"empty", pg, ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := monitor.NormalizeSQL(tt.give, tt.sys); got != tt.want {
				t.Errorf("NormalizeSQL(%q, %q)\n got %q\nwant %q", tt.give, tt.sys, got, tt.want)
			}
		})
	}
}

// TestNormalizeSQLAllocations: a statement with nothing to hide is
// returned as it is; one with literals costs one allocation.
func TestNormalizeSQLAllocations(t *testing.T) {
	plain := `SELECT "id", "email" FROM "users" WHERE "id" = $1 AND "version" = $2`
	if n := testing.AllocsPerRun(100, func() { _ = monitor.NormalizeSQL(plain, monitor.PostgreSQL) }); n != 0 {
		t.Errorf("%v allocations for a statement with nothing to hide, want 0", n)
	}
	lits := `UPDATE users SET email = 'a@b.c', age = 42 WHERE id = 7 /* x */`
	if n := testing.AllocsPerRun(100, func() { _ = monitor.NormalizeSQL(lits, "") }); n != 1 {
		t.Errorf("%v allocations for a statement with literals, want 1", n)
	}
}

func BenchmarkNormalizeSQL(b *testing.B) {
	for _, bm := range []struct {
		name, query string
		sys         monitor.System
	}{
		{"plain/postgres", `SELECT "id", "email", "created_at" FROM "users" WHERE "id" = $1 AND "version" = $2`, monitor.PostgreSQL},
		{"literals/postgres", `SELECT * FROM users WHERE email = 'a@b.c' AND age > 42 AND name <> E'x\'y' LIMIT 10`, monitor.PostgreSQL},
		{"literals/mysql", "SELECT * FROM `users` WHERE email = 'a@b.c' AND age > 42 AND name <> 'x\\'y' LIMIT 10", monitor.MySQL},
		{"literals/unknown", `SELECT * FROM users WHERE email = 'a@b.c' AND age > 42 AND name <> 'x''y' LIMIT 10`, ""},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.query)))
			for b.Loop() {
				_ = monitor.NormalizeSQL(bm.query, bm.sys)
			}
		})
	}
}

// FuzzNormalizeSQL: any input, read as any system, never panics, and
// comes back no longer than it went in.
func FuzzNormalizeSQL(f *testing.F) {
	for _, s := range []string{"SELECT 'a''b', $$x$$, E'\\'' -- c\n", "/* /* */", "$a$ $a", "'\\", "--", "/*!", "/*M!1",
		"`", "[", "\"", "1e+", ".5", "$1$", "x'", "'", "#", "--\r'", "?1", "\xff'\x00"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, query string, sys uint8) {
		s := []monitor.System{"", monitor.PostgreSQL, monitor.MySQL, monitor.SQLite}[sys%4]
		got := monitor.NormalizeSQL(query, s)
		if len(got) > len(query) {
			t.Fatalf("NormalizeSQL(%q, %q) = %q: longer than its input", query, s, got)
		}
	})
}

// Markers placed inside literals by FuzzNormalizeSQLHidesLiterals.
const (
	marker    = "ZQXJMARK"
	numMarker = "7355608"
)

// dialect is how a generated statement writes its literals.
type dialect struct {
	sys        monitor.System
	backslash  bool // '...' escapes with a backslash (MySQL; PostgreSQL with standard_conforming_strings off)
	pg, mysql  bool
	sqliteName bool
}

var dialects = []dialect{
	{sys: monitor.PostgreSQL, pg: true},
	{sys: monitor.PostgreSQL, pg: true, backslash: true},
	{sys: monitor.MySQL, mysql: true, backslash: true},
	{sys: monitor.MySQL, mysql: true},
	{sys: monitor.SQLite, sqliteName: true},
}

// quote writes s as a string literal between q quotes of dialect d.
func (d dialect) quote(s string, q byte, backslash bool) string {
	b := make([]byte, 0, len(s)+8)
	b = append(b, q)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == q, c == '\\' && backslash:
			b = append(b, c, c)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, q))
}

// generate writes a statement for dialect d from data: words, operators,
// quoted names, comments and literals, the literals (and the comments)
// holding the markers, separated by spaces. It returns "" when data asks
// for what d cannot write.
func generate(d dialect, data []byte) string {
	var b strings.Builder
	take := func(n int) string { // up to n bytes of data
		n = min(n, len(data))
		s := string(data[:n])
		data = data[n:]
		return s
	}
	content := func() string { // a literal's text around the marker
		n := 0
		if l := take(1); l != "" {
			n = int(l[0]) % 12
		}
		s := take(n)
		return s[:len(s)/2] + marker + s[len(s)/2:]
	}
	for len(data) > 0 && b.Len() < 4096 {
		op := take(1)[0]
		b.WriteByte(' ')
		switch op % 14 {
		case 0: // a word
			for _, c := range []byte(take(int(op/14)%6 + 1)) {
				b.WriteByte("abcdefghijklmnopqrstuvwxyz_"[int(c)%27])
			}
			if op%3 == 0 {
				b.WriteByte('1')
			}
		case 1: // operators and placeholders
			ops := []string{",", "(", ")", "=", "<>", "+", "*", ".", ";", "\n", "-", "/", "||", "%", "?", ":x", "$1", "::", "@"}
			b.WriteString(ops[int(op/14)%len(ops)])
			if d.sqliteName && op%2 == 0 {
				b.WriteString("?1")
			}
		case 2, 3:
			b.WriteString(d.quote(content(), '\'', d.backslash))
		case 4:
			b.WriteString([]string{numMarker, numMarker + ".5", "0." + numMarker, numMarker + "e3", "1" + numMarker}[int(op/14)%5])
		case 5:
			if d.pg {
				b.WriteString("E" + d.quote(content(), '\'', true))
			}
		case 6:
			if d.pg {
				tag := "$" + strings.Repeat("t", int(op/14)%3) + "$"
				s := content()
				for strings.Contains(s, tag) {
					s = strings.ReplaceAll(s, tag, "")
				}
				if strings.HasSuffix(s, "$") && tag == "$$" {
					s += " "
				}
				b.WriteString(tag + s + tag)
			}
		case 7:
			if d.mysql {
				b.WriteString(d.quote(content(), '"', d.backslash))
			}
		case 8: // a quoted name (no marker in it: names are shown)
			name := strings.ReplaceAll(take(int(op/14)%8), marker[:4], "")
			switch {
			case d.mysql:
				b.WriteString(d.quote(name, '`', false))
			case d.sqliteName && op%2 == 0:
				b.WriteString("[" + strings.ReplaceAll(name, "]", "") + "]")
			default:
				b.WriteString(d.quote(name, '"', false))
			}
		case 9: // a line comment
			s := strings.Map(func(r rune) rune {
				if r == '\n' || r == '\r' {
					return -1
				}
				return r
			}, content())
			if d.mysql && op%2 == 0 {
				b.WriteString("#" + s + "\n")
			} else {
				b.WriteString("-- " + s + "\n")
			}
		case 10: // a block comment
			s := content()
			for strings.Contains(s, "*/") || strings.Contains(s, "/*") {
				s = strings.ReplaceAll(strings.ReplaceAll(s, "*/", ""), "/*", "")
			}
			if strings.HasSuffix(s, "*") || strings.HasSuffix(s, "/") {
				s += " "
			}
			if strings.HasPrefix(s, "!") || strings.HasPrefix(s, "M!") {
				s = " " + s // not MySQL's executable comment, which is SQL
			}
			b.WriteString("/*" + s + "*/")
		case 11: // MySQL's executable comment, a literal in it
			if d.mysql {
				b.WriteString("/*!50100 " + d.quote(content(), '\'', d.backslash) + " */")
			}
		case 12: // a prefixed string (X'' and B'' take hex and bits only: the table tests them)
			b.WriteString([]string{"N", "_utf8mb4"}[int(op/14)%2] + d.quote(content(), '\'', d.backslash))
		case 13: // a string after a name, as in a cast: typ'...'
			b.WriteString("typ" + d.quote(content(), '\'', d.backslash))
		}
	}
	return b.String()
}

// FuzzNormalizeSQLHidesLiterals builds statements with the markers inside
// every kind of literal and comment, as each database writes them, and
// checks that no marker comes out, read as that database or as unknown.
func FuzzNormalizeSQLHidesLiterals(f *testing.F) {
	f.Add(uint8(0), []byte("\x02abc\x05x'y\\z\x06$$\x09\x0a*/\x0b\x07\"q\x04"))
	f.Add(uint8(2), []byte("\x02\\'\x07\\\"\x0b\x02'\x09\n\x0a/*"))
	f.Add(uint8(4), []byte("\x08]x\x02'\x01\x0c"))
	for i := range dialects {
		f.Add(uint8(i), []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d"))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		d := dialects[int(which)%len(dialects)]
		stmt := generate(d, data)
		for _, sys := range []monitor.System{d.sys, ""} {
			got := monitor.NormalizeSQL(stmt, sys)
			if strings.Contains(got, marker) || strings.Contains(got, numMarker) {
				t.Fatalf("NormalizeSQL(%q, %q) = %q shows a literal", stmt, sys, got)
			}
		}
	})
}
