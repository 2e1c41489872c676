// Command benchreport writes bench/RESULTS.md from benchstat's CSV output
// (benchstat -format csv -table /db -row /op -col /impl, sqlx first) and
// the run's circumstances that run.sh collects. It asks the servers named
// by ENGINEKIT_TEST_POSTGRES_DSN and ENGINEKIT_TEST_MYSQL_DSN, and the
// SQLite library linked in, for their versions.
//
// With -scale, it also reads the go test output of the scaling runs
// (BenchmarkScale) and writes, with -svg, one SVG per curve into that
// directory (scale-<db>-<op>.svg: x the size or the goroutines, y the time
// per row or per call, both on log scales, one line per variant), shown in
// RESULTS.md's "How cost grows" with the figures and allocations. -notes
// appends a hand-written file (the reading of the curves) after them.
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
	flag.StringVar(&scale.path, "scale", "", "go test output of the scaling runs (BenchmarkScale)")
	flag.StringVar(&scale.meta, "scalemeta", "", "the scaling runs' circumstances")
	flag.StringVar(&scale.svg, "svg", "", "the directory to write the curves' SVGs into")
	flag.StringVar(&scale.notes, "notes", "", "a markdown file to append after the curves")
	flag.Parse()
	if err := run(*csvPath, *metaPath, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// scale is where the scaling runs' figures are, when given.
var scale struct{ path, meta, svg, notes string }

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
	if scale.path != "" {
		sf, err := os.Open(scale.path)
		if err != nil {
			return err
		}
		defer sf.Close()
		curves, err := parseScale(sf)
		if err != nil {
			return fmt.Errorf("%s: %w", scale.path, err)
		}
		smeta, _, err := readMeta(scale.meta)
		if err != nil {
			return err
		}
		if err := writeScale(bw, curves, smeta, scale.svg, servers); err != nil {
			return err
		}
	}
	if scale.notes != "" {
		notes, err := os.ReadFile(scale.notes)
		if err != nil {
			return err
		}
		bw.Write(notes)
	}
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
	for _, m := range []string{"github.com/lib/pq", "github.com/jackc/pgx/v5", "github.com/go-sql-driver/mysql", "github.com/mattn/go-sqlite3"} {
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

	if warn := loadWarning(meta); warn != "" {
		p("%s\n\n", warn)
	}
	p("The variants: `sqlx` hand-written sqlx (the base of every ratio), `sql` hand-written\n")
	p("database/sql, `pgx` (PostgreSQL only) the same hand-written database/sql on pgx's driver\n")
	p("(github.com/jackc/pgx/v5/stdlib, which prepares and caches each statement per connection),\n")
	p("`enginekit` repo.Repository over an engine from dbfx.Open, `enginekitpgx` (PostgreSQL only)\n")
	p("the same on dbfx/pgx (`Config.Driver` \"pgx\"), `gorm` GORM, `gormprep` GORM with\n")
	p("PrepareStmt; all on the same DSN and pool, and but for the pgx ones on the same driver\n")
	p("(lib/pq on PostgreSQL).\n\n")
	p("Each figure is the median of the runs, ± its 95%% confidence interval (benchstat). The\n")
	p("ratio is the variant's median over hand-written sqlx's: below 1 is faster (or smaller)\n")
	p("than sqlx. Beside it, benchstat's verdict: the change and its p-value when it is\n")
	p("significant, `~` when benchstat sees no difference. Mixed64 is 64 goroutines on a pool\n")
	p("of 8: its ns/op is wall time per operation.\n\n")

	p("## Time against hand-written sqlx\n\n")
	// Every table's variants, in the order of the first table that has
	// each pair (the pgx variants run on PostgreSQL only).
	var variants []string
	for _, t := range tables {
		for i, v := range t.variants {
			if contains(variants, v) {
				continue
			}
			at := len(variants)
			if i > 0 {
				for j, w := range variants {
					if w == t.variants[i-1] {
						at = j + 1
					}
				}
			}
			variants = append(variants[:at], append([]string{v}, variants[at:]...)...)
		}
	}
	p("| database | operation |")
	for _, v := range variants[1:] {
		p(" %s |", v)
	}
	p("\n|---|---|%s\n", strings.Repeat("---:|", len(variants)-1))
	summary := func(unit string) {
		for _, t := range tables {
			for _, op := range t.ops {
				p("| %s | %s |", dbTitle(t.db, servers), op)
				for _, v := range variants[1:] {
					r := ratio(t, unit, op, v, false)
					if unit == "allocs/op" { // exact counts: benchstat's verdict adds nothing
						r = strings.TrimSuffix(r, " ~")
					}
					p(" %s |", r)
				}
				p("\n")
			}
		}
		p("\n")
	}
	summary("sec/op")
	p("## Allocations against hand-written sqlx\n\n")
	p("allocs/op over sqlx's: these do not move with the machine's load.\n\n")
	p("| database | operation |")
	for _, v := range variants[1:] {
		p(" %s |", v)
	}
	p("\n|---|---|%s\n", strings.Repeat("---:|", len(variants)-1))
	summary("allocs/op")

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

// loadWarning says, when the machine had more work than cores, that the
// timings are noisy and the allocations are not.
func loadWarning(meta map[string]string) string {
	load, err := strconv.ParseFloat(strings.Fields(meta["load before"] + " x")[0], 64)
	cores, err2 := strconv.Atoi(meta["cores"])
	if err != nil || err2 != nil || load <= float64(cores) {
		return ""
	}
	return fmt.Sprintf("**Taken under load.** The machine was shared with other work: a load average of %s "+
		"on %d cores before the run (%s after). The timings are noisy (with fewer than 6 rounds "+
		"benchstat gives no interval and calls no difference significant) and the headline time "+
		"ratios need a quiet re-run with `bench/run.sh`; the allocation counts do not depend on "+
		"the load and stand as measured.", strings.Fields(meta["load before"])[0], cores,
		strings.Fields(meta["load after"] + " ?")[0])
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
