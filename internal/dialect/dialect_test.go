package dialect_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx/mysql"
	"github.com/enginekit/enginekit/dbfx/postgres"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/testdb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every test that talks to a database.
const testTimeout = 60 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// engine is one database family under test: its dialect, driver name and a
// way to get a fresh database for a test (skipping when its server is not
// configured).
type engine struct {
	name    string
	dialect *dialect.Dialect
	driver  string
	dsn     func(testing.TB) string
}

var engines = []engine{
	{"postgres", pgDialect, "postgres", testdb.Postgres},
	{"mysql", myDialect, "mysql", testdb.MySQL},
	{"sqlite3", liteDialect, "sqlite3", testdb.SQLite},
}

// open opens a fresh database of the engine, closed when the test ends.
func (e engine) open(t *testing.T) *sql.DB {
	t.Helper()
	return openDB(t, e.driver, e.dsn(t))
}

func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("sql.Open(%q): %v", driver, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close %s database: %v", driver, err)
		}
	})
	return db
}

func TestFamily(t *testing.T) {
	for _, tt := range []struct {
		give *dialect.Dialect
		want dialect.Family
		name string
	}{
		{pgDialect, dialect.Postgres, "postgres"},
		{myDialect, dialect.MySQL, "mysql"},
		{liteDialect, dialect.SQLite, "sqlite3"},
		{dialect.New(dialect.MySQL, nil), dialect.MySQL, "mysql"},
	} {
		if got := tt.give.Family(); got != tt.want || got.String() != tt.name || tt.give.Name() != tt.name || tt.give.String() != tt.name {
			t.Errorf("Family() = %v (%q, Name %q), want %v (%q)", got, got.String(), tt.give.Name(), tt.want, tt.name)
		}
	}
	if got := dialect.Family(9).String(); got != "Family(9)" {
		t.Errorf("Family(9).String() = %q", got)
	}
}

// The dialects of the three drivers.
var (
	pgDialect   = postgres.Driver().Dialect()
	myDialect   = mysql.Driver().Dialect()
	liteDialect = sqlite3.Driver().Dialect()
)

func TestPlaceholder(t *testing.T) {
	tests := []struct {
		give    *dialect.Dialect
		giveN   int
		want    string
		wantApp string // AppendPlaceholder onto "a = "
	}{
		{give: pgDialect, giveN: 1, want: "$1", wantApp: "a = $1"},
		{give: pgDialect, giveN: 9, want: "$9", wantApp: "a = $9"},
		{give: pgDialect, giveN: 10, want: "$10", wantApp: "a = $10"},
		{give: pgDialect, giveN: 65535, want: "$65535", wantApp: "a = $65535"},
		{give: myDialect, giveN: 1, want: "?", wantApp: "a = ?"},
		{give: myDialect, giveN: 65535, want: "?", wantApp: "a = ?"},
		{give: liteDialect, giveN: 1, want: "?", wantApp: "a = ?"},
		{give: liteDialect, giveN: 32766, want: "?", wantApp: "a = ?"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%d", tt.give, tt.giveN), func(t *testing.T) {
			if got := tt.give.Placeholder(tt.giveN); got != tt.want {
				t.Errorf("Placeholder(%d) = %q, want %q", tt.giveN, got, tt.want)
			}
			if got := string(tt.give.AppendPlaceholder([]byte("a = "), tt.giveN)); got != tt.wantApp {
				t.Errorf("AppendPlaceholder(%q, %d) = %q, want %q", "a = ", tt.giveN, got, tt.wantApp)
			}
		})
	}
}

// TestPlaceholderRoundTrip sends a statement built with AppendPlaceholder to
// each real database and checks that each argument lands where its number
// says.
func TestPlaceholderRoundTrip(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			ctx := testContext(t)
			const n = 12 // $10 and above have two digits
			q := []byte("SELECT ")
			args := make([]any, n)
			got := make([]string, n)
			dest := make([]any, n)
			for i := range n {
				if i > 0 {
					q = append(q, ", "...)
				}
				q = e.dialect.AppendPlaceholder(q, i+1)
				args[i] = fmt.Sprint("arg", i+1)
				dest[i] = &got[i]
			}
			if err := db.QueryRowContext(ctx, string(q), args...).Scan(dest...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			for i := range n {
				if got[i] != args[i] {
					t.Errorf("%s: column %d = %q, want %q", q, i+1, got[i], args[i])
				}
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		give       string
		wantDouble string // PostgreSQL and SQLite: "..."
		wantBack   string // MySQL: `...`
	}{
		{give: "name", wantDouble: `"name"`, wantBack: "`name`"},
		{give: "", wantDouble: `""`, wantBack: "``"},
		{give: "Mixed Case", wantDouble: `"Mixed Case"`, wantBack: "`Mixed Case`"},
		{give: `a"b`, wantDouble: `"a""b"`, wantBack: "`a\"b`"},
		{give: `"`, wantDouble: `""""`, wantBack: "`\"`"},
		{give: "a`b", wantDouble: "\"a`b\"", wantBack: "`a``b`"},
		{give: "``", wantDouble: "\"``\"", wantBack: "``````"},
		{give: `x"; DROP TABLE t; --`, wantDouble: `"x""; DROP TABLE t; --"`, wantBack: "`x\"; DROP TABLE t; --`"},
		{give: "it's", wantDouble: `"it's"`, wantBack: "`it's`"},
		{give: "ünï ćødé", wantDouble: `"ünï ćødé"`, wantBack: "`ünï ćødé`"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.give), func(t *testing.T) {
			for _, c := range []struct {
				d    *dialect.Dialect
				want string
			}{
				{pgDialect, tt.wantDouble},
				{liteDialect, tt.wantDouble},
				{myDialect, tt.wantBack},
			} {
				if got := c.d.Quote(tt.give); got != c.want {
					t.Errorf("%v: Quote(%q) = %s, want %s", c.d, tt.give, got, c.want)
				}
			}
		})
	}
}

// TestQuoteRoundTrip creates, on each real database, a table whose name and
// column names hold quote characters, spaces, semicolons and comment markers,
// all through Quote, then writes and reads them back.
func TestQuoteRoundTrip(t *testing.T) {
	table := `t "q" ; x`
	columns := []string{
		`id`,
		`col "double" quoted`,
		"col `back` ticked",
		`semi;colon -- not a comment`,
		`it's /* not */ a comment`,
		`"`,
		"`",
		`Mixed Case`,
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			ctx := testContext(t)
			d := e.dialect

			var ddl, ins, sel strings.Builder
			fmt.Fprintf(&ddl, "CREATE TABLE %s (", d.Quote(table))
			fmt.Fprintf(&ins, "INSERT INTO %s (", d.Quote(table))
			sel.WriteString("SELECT ")
			for i, c := range columns {
				if i > 0 {
					ddl.WriteString(", ")
					ins.WriteString(", ")
					sel.WriteString(", ")
				}
				fmt.Fprintf(&ddl, "%s VARCHAR(100)", d.Quote(c))
				ins.WriteString(d.Quote(c))
				sel.WriteString(d.Quote(c))
			}
			ddl.WriteString(")")
			ins.WriteString(") VALUES (")
			args := make([]any, len(columns))
			for i, c := range columns {
				if i > 0 {
					ins.WriteString(", ")
				}
				ins.WriteString(d.Placeholder(i + 1))
				args[i] = "value of " + c
			}
			ins.WriteString(")")
			fmt.Fprintf(&sel, " FROM %s WHERE %s = %s", d.Quote(table), d.Quote(columns[1]), d.Placeholder(1))

			for _, q := range []string{ddl.String(), ins.String()} {
				var err error
				if q == ins.String() {
					_, err = db.ExecContext(ctx, q, args...)
				} else {
					_, err = db.ExecContext(ctx, q)
				}
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}

			rows, err := db.QueryContext(ctx, sel.String(), "value of "+columns[1])
			if err != nil {
				t.Fatalf("%s: %v", sel.String(), err)
			}
			defer rows.Close()
			names, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(names, "|") != strings.Join(columns, "|") {
				t.Errorf("column names = %q, want %q", names, columns)
			}
			if !rows.Next() {
				t.Fatalf("%s: no row (err %v)", sel.String(), rows.Err())
			}
			got := make([]string, len(columns))
			dest := make([]any, len(columns))
			for i := range got {
				dest[i] = &got[i]
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatal(err)
			}
			for i, c := range columns {
				if want := "value of " + c; got[i] != want {
					t.Errorf("column %q = %q, want %q", c, got[i], want)
				}
			}
			if rows.Next() {
				t.Error("more than one row")
			}
			if err := rows.Err(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCheckIsolation(t *testing.T) {
	levels := []sql.IsolationLevel{
		sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted,
		sql.LevelWriteCommitted, sql.LevelRepeatableRead, sql.LevelSnapshot,
		sql.LevelSerializable, sql.LevelLinearizable,
	}
	tests := []struct {
		give engine
		want []sql.IsolationLevel // accepted; every other level is rejected
	}{
		{
			give: engines[0], // postgres
			want: []sql.IsolationLevel{
				sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted,
				sql.LevelRepeatableRead, sql.LevelSerializable,
			},
		},
		{
			give: engines[1], // mysql
			want: []sql.IsolationLevel{
				sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted,
				sql.LevelRepeatableRead, sql.LevelSerializable,
			},
		},
		{
			give: engines[2], // sqlite3
			want: []sql.IsolationLevel{sql.LevelDefault, sql.LevelSerializable},
		},
	}
	for _, tt := range tests {
		t.Run(tt.give.name, func(t *testing.T) {
			for _, level := range levels {
				accepted := false
				for _, l := range tt.want {
					accepted = accepted || l == level
				}
				err := tt.give.dialect.CheckIsolation(level)
				switch {
				case accepted && err != nil:
					t.Errorf("CheckIsolation(%v) = %v, want nil", level, err)
				case !accepted && err == nil:
					t.Errorf("CheckIsolation(%v) = nil, want an error", level)
				case !accepted && (!strings.Contains(err.Error(), level.String()) ||
					!strings.Contains(err.Error(), tt.give.dialect.Name())):
					t.Errorf("CheckIsolation(%v) = %q, want it to name the level and %s", level, err, tt.give.dialect.Name())
				}
			}
		})
	}
}

// TestCheckIsolationMatchesDriver begins a transaction at every level the
// dialect accepts on the real server, and checks that lib/pq and mysql refuse
// the levels it rejects (sqlite3 ignores the level, which is why enginekit
// checks before BEGIN).
func TestCheckIsolationMatchesDriver(t *testing.T) {
	levels := []sql.IsolationLevel{
		sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted,
		sql.LevelWriteCommitted, sql.LevelRepeatableRead, sql.LevelSnapshot,
		sql.LevelSerializable, sql.LevelLinearizable,
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			ctx := testContext(t)
			for _, level := range levels {
				tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: level})
				if err == nil {
					var one int
					err = tx.QueryRowContext(ctx, "SELECT 1").Scan(&one)
					if rerr := tx.Rollback(); err == nil {
						err = rerr
					}
				}
				checked := e.dialect.CheckIsolation(level)
				switch {
				case checked == nil && err != nil:
					t.Errorf("level %v: the dialect accepts it but BEGIN failed: %v", level, err)
				case checked != nil && err == nil && e.name != "sqlite3":
					t.Errorf("level %v: the dialect rejects it but the driver began it", level)
				}
			}
		})
	}
}
