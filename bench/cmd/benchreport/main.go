// Command benchreport writes bench/RESULTS.md from benchstat's CSV output
// (benchstat -format csv -table /db -row /op -col /impl, sqlx first) and
// the run's circumstances that run.sh collects. It asks the servers named
// by ENGINEKIT_TEST_POSTGRES_DSN and ENGINEKIT_TEST_MYSQL_DSN, and the
// SQLite library linked in, for their versions.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the mysql driver
	_ "github.com/lib/pq"              // the postgres driver
	_ "github.com/mattn/go-sqlite3"    // the sqlite3 driver
)

// base is the variant every other is compared with.
const base = "sqlx"

// cell is one figure of benchstat's table.
type cell struct {
	value float64 // the median
	ci    string  // the 95% confidence interval, "±3%"
	delta string  // against base: "+12.34%", or "~" when not significant
	p     string  // "p=0.000 n=10"
}

// table is benchstat's figures for one database: unit -> op -> variant.
type table struct {
	db       string
	variants []string
	ops      []string
	cells    map[string]map[string]map[string]cell
}

func main() {
	csvPath := flag.String("csv", "", "benchstat's CSV output")
	metaPath := flag.String("meta", "", "the run's circumstances, one \"key: value\" a line")
	flag.Parse()
	if err := run(*csvPath, *metaPath, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(csvPath, metaPath string, w io.Writer) error {
	f, err := os.Open(csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tables, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", csvPath, err)
	}
	meta, modules, err := readMeta(metaPath)
	if err != nil {
		return err
	}
	servers := serverVersions()
	bw := bufio.NewWriter(w)
	write(bw, tables, meta, modules, servers)
	return bw.Flush()
}

// parse reads benchstat's CSV: for each "/db: NAME" a block per unit, each
// a row of variant names, a row of units and column kinds, then a row per
// op and a geomean.
func parse(r io.Reader) ([]*table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var (
		tables []*table
		cur    *table
		cols   map[string]int // variant -> column of its median
		unit   string
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch {
		case len(rec) == 1 && strings.HasPrefix(rec[0], "/db: "):
			cur = &table{db: strings.TrimPrefix(rec[0], "/db: "), cells: map[string]map[string]map[string]cell{}}
			tables = append(tables, cur)
			cols, unit = nil, ""
		case cur == nil || len(rec) < 2 || (len(rec) == 1 && rec[0] == ""):
		case rec[0] == "" && cols == nil: // variant names
			cols = map[string]int{}
			var names []string
			for i, name := range rec {
				if name != "" {
					cols[name] = i
					names = append(names, name)
				}
			}
			if cur.variants == nil {
				cur.variants = names
			}
		case rec[0] == "": // units
			unit = rec[cols[cur.variants[0]]]
			cur.cells[unit] = map[string]map[string]cell{}
		case rec[0] == "geomean":
			cols, unit = nil, ""
		case unit != "":
			op := rec[0]
			if unit == "sec/op" {
				cur.ops = append(cur.ops, op)
			}
			row := map[string]cell{}
			for name, i := range cols {
				if i >= len(rec) || rec[i] == "" {
					continue
				}
				v, err := strconv.ParseFloat(rec[i], 64)
				if err != nil {
					return nil, fmt.Errorf("%s %s %s: %w", cur.db, op, name, err)
				}
				c := cell{value: v, ci: at(rec, i+1)}
				if name != cur.variants[0] {
					c.delta, c.p = at(rec, i+2), at(rec, i+3)
				}
				row[name] = c
			}
			cur.cells[unit][op] = row
		}
	}
	if len(tables) == 0 {
		return nil, errors.New("no /db tables: run benchstat with -table /db -row /op -col /impl")
	}
	for _, t := range tables {
		if len(t.variants) == 0 || t.variants[0] != base {
			return nil, fmt.Errorf("%s: the first column is %v, want %s", t.db, t.variants, base)
		}
	}
	return tables, nil
}

func at(rec []string, i int) string {
	if i < len(rec) {
		return rec[i]
	}
	return ""
}

// readMeta reads run.sh's "key: value" lines; "module: path version" lines
// go to modules.
func readMeta(path string) (map[string]string, map[string]string, error) {
	meta, modules := map[string]string{}, map[string]string{}
	if path == "" {
		return meta, modules, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if k == "module" {
			p, ver, _ := strings.Cut(v, " ")
			modules[p] = ver
			continue
		}
		meta[k] = v
	}
	return meta, modules, nil
}

// serverVersions asks each database for its version: driver -> version.
func serverVersions() map[string]string {
	out := map[string]string{}
	for _, s := range []struct{ driver, dsn, query string }{
		{"postgres", os.Getenv("ENGINEKIT_TEST_POSTGRES_DSN"), "SHOW server_version"},
		{"mysql", strings.TrimPrefix(os.Getenv("ENGINEKIT_TEST_MYSQL_DSN"), "mysql://"), "SELECT VERSION()"},
		{"sqlite3", ":memory:", "SELECT sqlite_version()"},
	} {
		if s.dsn == "" {
			continue
		}
		v, err := queryString(s.driver, s.dsn, s.query)
		if err != nil {
			v = "unknown (" + err.Error() + ")"
		}
		out[s.driver] = v
	}
	return out
}

func queryString(driver, dsn, query string) (string, error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v string
	err = db.QueryRowContext(ctx, query).Scan(&v)
	return v, err
}

// dbTitle names a database for the headings.
func dbTitle(driver string, servers map[string]string) string {
	switch driver {
	case "postgres":
		return "PostgreSQL"
	case "mysql":
		if strings.Contains(servers["mysql"], "MariaDB") {
			return "MariaDB"
		}
		return "MySQL"
	case "sqlite3":
		return "SQLite"
	}
	return driver
}

var units = []struct{ key, title string }{
	{"sec/op", "ns/op"},
	{"B/op", "B/op"},
	{"allocs/op", "allocs/op"},
}

func write(w *bufio.Writer, tables []*table, meta, modules, servers map[string]string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Benchmark results\n\n")
	p("Written by `bench/run.sh` (do not edit by hand). What each variant and operation does, and what\n")
	p("every variant gets (DSN, pool, SQLite pools), is in `bench/doc.go`. The raw `go test` output is\n")
	p("`bench/results.txt`: compare a later run with `benchstat results.txt new.txt`.\n\n")

	p("## The run\n\n| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			p("| %s | %s |\n", k, v)
		}
	}
	row("Date", meta["date"])
	row("Command", "`"+meta["command"]+"`")
	row("Duration", meta["elapsed"])
	if b, a := meta["load before"], meta["load after"]; b != "" && a != "" {
		row("Load average (1, 5, 15 min)", "before "+b+", after "+a)
	}
	cpu := meta["cpu"]
	if c := meta["cores"]; c != "" {
		cpu += ", " + c + " cores"
	}
	if m := meta["memory"]; m != "" {
		cpu += ", " + m
	}
	row("Machine", cpu)
	row("OS", meta["os"])
	row("Go", meta["go"])
	row("enginekit", meta["enginekit"])
	for _, d := range []string{"postgres", "mysql", "sqlite3"} {
		if v := servers[d]; v != "" {
			row(dbTitle(d, servers), v)
		}
	}
	var drivers, libs []string
	for _, m := range []string{"github.com/lib/pq", "github.com/go-sql-driver/mysql", "github.com/mattn/go-sqlite3"} {
		if v := modules[m]; v != "" {
			drivers = append(drivers, m+" "+v)
		}
	}
	for _, m := range []string{"github.com/jmoiron/sqlx", "gorm.io/gorm", "gorm.io/driver/postgres", "gorm.io/driver/mysql", "gorm.io/driver/sqlite"} {
		if v := modules[m]; v != "" {
			libs = append(libs, m+" "+v)
		}
	}
	row("Drivers", strings.Join(drivers, ", "))
	row("Libraries", strings.Join(libs, ", "))
	p("\n")

	p("The variants: `sqlx` hand-written sqlx (the base of every ratio), `sql` hand-written\n")
	p("database/sql, `enginekit` repo.Repository over an engine from dbfx.Open, `gorm` GORM,\n")
	p("`gormprep` GORM with PrepareStmt; all on the same driver, DSN and pool.\n\n")
	p("Each figure is the median of the runs, ± its 95%% confidence interval (benchstat). The\n")
	p("ratio is the variant's median over hand-written sqlx's: below 1 is faster (or smaller)\n")
	p("than sqlx. Beside it, benchstat's verdict: the change and its p-value when it is\n")
	p("significant, `~` when benchstat sees no difference. Mixed64 is 64 goroutines on a pool\n")
	p("of 8: its ns/op is wall time per operation.\n\n")

	p("## Time against hand-written sqlx\n\n")
	var variants []string
	for _, t := range tables {
		for _, v := range t.variants {
			if !contains(variants, v) {
				variants = append(variants, v)
			}
		}
	}
	p("| database | operation |")
	for _, v := range variants[1:] {
		p(" %s |", v)
	}
	p("\n|---|---|%s\n", strings.Repeat("---:|", len(variants)-1))
	for _, t := range tables {
		for _, op := range t.ops {
			p("| %s | %s |", dbTitle(t.db, servers), op)
			for _, v := range variants[1:] {
				p(" %s |", ratio(t, "sec/op", op, v, false))
			}
			p("\n")
		}
	}
	p("\n")

	for _, t := range tables {
		title := dbTitle(t.db, servers)
		if v := servers[t.db]; v != "" {
			title += " " + v
		}
		p("## %s\n\n", title)
		p("| operation | variant |")
		for _, u := range units {
			p(" %s | × sqlx |", u.title)
		}
		p("\n|---|---|%s\n", strings.Repeat("---:|---:|", len(units)))
		for _, op := range t.ops {
			for _, v := range t.variants {
				p("| %s | %s |", op, v)
				for _, u := range units {
					c, ok := t.cells[u.key][op][v]
					if !ok {
						p(" | |")
						continue
					}
					p(" %s | %s |", figure(u.key, c), ratio(t, u.key, op, v, true))
				}
				p("\n")
			}
		}
		p("\n")
	}
}

// figure formats a median with its confidence interval.
func figure(unit string, c cell) string {
	v := c.value
	if unit == "sec/op" {
		v *= 1e9
	}
	s := strconv.FormatFloat(v, 'f', 0, 64)
	if c.ci != "" && c.ci != "∞" && c.ci != "±∞" {
		s += " ±" + strings.TrimPrefix(c.ci, "±")
	}
	return s
}

// ratio formats variant v's median over base's, with benchstat's verdict;
// p adds the p-value.
func ratio(t *table, unit, op, v string, withP bool) string {
	c, ok := t.cells[unit][op][v]
	b, okb := t.cells[unit][op][base]
	if !ok || !okb {
		return ""
	}
	if v == base {
		return "1"
	}
	if b.value == 0 {
		if c.value == 0 {
			return "1 ~"
		}
		return "∞"
	}
	s := strconv.FormatFloat(c.value/b.value, 'f', 2, 64)
	switch {
	case c.delta == "~" || c.delta == "":
		s += " ~"
	case withP:
		s += " (" + c.delta + ", " + strings.SplitN(c.p, " ", 2)[0] + ")"
	}
	return s
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
