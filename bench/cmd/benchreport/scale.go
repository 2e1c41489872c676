package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The scaling runs (BenchmarkScale): go test's output, read line by line,
// each benchmark named Scale/db=D/impl=I/op=O/rows=N (or goroutines=G).

// point is one benchmark's figures over the rounds.
type point struct {
	time, allocs []float64 // ns and allocs per row or per call
}

// curve is one database's Find, Mixed or Load: series -> x -> point.
type curve struct {
	db, op string
	xName  string // rows or goroutines
	unit   string // row or call
	series []string
	points map[string]map[int]*point
	xs     []int
}

// curveOps are the curves in the order shown, with what they measure.
var curveOps = []struct{ op, title, x, unit string }{
	{"Find", "Find", "rows", "row"},
	{"Mixed", "Mixed (80% Get, 20% Update)", "goroutines", "call"},
	{"Load", "Bulk load", "rows", "row"},
}

// seriesOrder is the order of the lines and of the tables' rows.
var seriesOrder = []string{"sqlx", "sql", "pgx", "enginekit", "enginekitpgx", "enginekit InsertMany", "enginekitpgx InsertMany"}

// parseScale reads go test -bench output: db -> op -> curve.
func parseScale(r io.Reader) (map[string]map[string]*curve, error) {
	out := map[string]map[string]*curve{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkScale/") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		key := map[string]string{}
		for _, part := range strings.Split(name, "/")[1:] {
			k, v, _ := strings.Cut(part, "=")
			key[k] = v
		}
		op, impl := key["op"], key["impl"]
		series := impl
		if op == "InsertMany" {
			op, series = "Load", impl+" InsertMany"
		}
		xName := "rows"
		if op == "Mixed" {
			xName = "goroutines"
		}
		x, err := strconv.Atoi(key[xName])
		if err != nil {
			return nil, fmt.Errorf("%s: no %s", f[0], xName)
		}
		metrics := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f[0], err)
			}
			metrics[f[i+1]] = v
		}
		byOp := out[key["db"]]
		if byOp == nil {
			byOp = map[string]*curve{}
			out[key["db"]] = byOp
		}
		c := byOp[op]
		if c == nil {
			c = &curve{db: key["db"], op: op, xName: xName, unit: "row", points: map[string]map[int]*point{}}
			byOp[op] = c
		}
		t, a := metrics["ns/row"], metrics["allocs/row"]
		if op == "Mixed" {
			c.unit = "call"
			t, a = metrics["ns/call"], metrics["allocs/op"]
		}
		if c.points[series] == nil {
			c.points[series] = map[int]*point{}
		}
		p := c.points[series][x]
		if p == nil {
			p = &point{}
			c.points[series][x] = p
		}
		p.time = append(p.time, t)
		p.allocs = append(p.allocs, a)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, byOp := range out {
		for _, c := range byOp {
			seen := map[int]bool{}
			for _, ps := range c.points {
				for x := range ps {
					if !seen[x] {
						seen[x] = true
						c.xs = append(c.xs, x)
					}
				}
			}
			sort.Ints(c.xs)
			for _, s := range seriesOrder {
				if c.points[s] != nil {
					c.series = append(c.series, s)
				}
			}
		}
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// at returns the medians of series s at x, NaN where it did not run.
func (c *curve) at(s string, x int) (t, a float64) {
	p := c.points[s][x]
	if p == nil {
		return math.NaN(), math.NaN()
	}
	return median(p.time), median(p.allocs)
}

// baseline is the hand-written series a series is compared with: on the
// same driver, sqlx for reads, the hand-written bulk form for loads.
func (c *curve) baseline(s string) string {
	impl, _, _ := strings.Cut(s, " ")
	var b string
	switch {
	case impl == "enginekitpgx":
		b = "pgx"
	case c.op == "Load":
		b = "sql"
	default:
		b = "sqlx"
	}
	if c.points[b] == nil || b == s {
		return ""
	}
	return b
}

var colors = []string{"#1f77b4", "#7f7f7f", "#9467bd", "#d62728", "#ff7f0e", "#2ca02c", "#8c564b"}

func seriesColor(s string) string {
	for i, o := range seriesOrder {
		if o == s {
			return colors[i%len(colors)]
		}
	}
	return "#000000"
}

// svgName is the file of a curve's plot.
func svgName(c *curve) string { return "scale-" + c.db + "-" + strings.ToLower(c.op) + ".svg" }

// writeSVG plots c's time per row or call against x, both on log scales,
// one line per series.
func writeSVG(path, title string, c *curve) error {
	const (
		width, height          = 760, 420
		left, right, top, bot  = 80, 230, 40, 50
		plotW, plotH           = width - left - right, height - top - bot
		tickFont, legendHeight = 11, 18
	)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, x := range c.xs {
			if t, _ := c.at(s, x); t > 0 {
				lo, hi = math.Min(lo, t), math.Max(hi, t)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return fmt.Errorf("%s: no figures", title)
	}
	ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yhi-ylo < 1 {
		yhi = ylo + 1
	}
	xlo, xhi := math.Log10(float64(c.xs[0])), math.Log10(float64(c.xs[len(c.xs)-1]))
	if xhi == xlo {
		xhi = xlo + 1
	}
	px := func(x int) float64 { return left + (math.Log10(float64(x))-xlo)/(xhi-xlo)*plotW }
	py := func(y float64) float64 { return top + (yhi-math.Log10(y))/(yhi-ylo)*plotH }

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="%d">`+"\n",
		width, height, width, height, tickFont)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(title))
	// y grid: 1, 2, 5 per decade
	for d := ylo; d <= yhi; d++ {
		for _, m := range []float64{1, 2, 5} {
			y := m * math.Pow(10, d)
			if math.Log10(y) > yhi+1e-9 {
				break
			}
			yy := py(y)
			stroke := "#eeeeee"
			if m == 1 {
				stroke = "#cccccc"
			}
			p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, yy, left+plotW, yy, stroke)
			p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yy+4, humanNs(y))
		}
	}
	for _, x := range c.xs {
		xx := px(x)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#cccccc"/>`+"\n", xx, top, xx, top+plotH)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", xx, top+plotH+16, thousands(x))
	}
	p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333333"/>`+"\n", left, top, plotW, plotH)
	p(`<text x="%d" y="%d" text-anchor="middle">%s (log scale)</text>`+"\n", left+plotW/2, height-10, c.xName)
	p(`<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">time per %s (log scale)</text>`+"\n",
		top+plotH/2, top+plotH/2, c.unit)
	for i, s := range c.series {
		col := seriesColor(s)
		dash := ""
		if strings.HasPrefix(s, "enginekit") {
			dash = ` stroke-width="2.5"`
		} else {
			dash = ` stroke-width="1.5" stroke-dasharray="6 3"`
		}
		var pts []string
		for _, x := range c.xs {
			if t, _ := c.at(s, x); t > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(x), py(t)))
				p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(x), py(t), col)
			}
		}
		p(`<polyline points="%s" fill="none" stroke="%s"%s/>`+"\n", strings.Join(pts, " "), col, dash)
		ly := top + 10 + i*legendHeight
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"%s/>`+"\n", left+plotW+12, ly, left+plotW+40, ly, col, dash)
		p(`<text x="%d" y="%d">%s</text>`+"\n", left+plotW+46, ly+4, esc(s))
	}
	p("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// humanNs formats nanoseconds as ns, µs, ms or s.
func humanNs(v float64) string {
	f := func(x float64, u string) string { return strconv.FormatFloat(x, 'g', 3, 64) + " " + u }
	switch {
	case v >= 1e9:
		return f(v/1e9, "s")
	case v >= 1e6:
		return f(v/1e6, "ms")
	case v >= 1e3:
		return f(v/1e3, "µs")
	}
	return f(v, "ns")
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeScale writes the scaling section of RESULTS.md and the SVGs into
// svgDir.
func writeScale(w *bufio.Writer, curves map[string]map[string]*curve, meta map[string]string, svgDir string, servers map[string]string) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## How cost grows\n\n")
	p("`SCALE=1 bench/run.sh` (BenchmarkScale in `bench/scale_test.go`). ")
	if meta["date"] != "" {
		p("Run of %s: `%s`, %s; load average before %s, after %s.\n\n",
			meta["date"], meta["command"], meta["elapsed"], meta["load before"], meta["load after"])
	}
	p("Each point is the median of the rounds, as time and allocations per row (Find: one op reads\n")
	p("10,000 rows, by 10,000/N Finds of N rows; Load: one op loads 100,000 rows, by loads of N\n")
	p("rows, each into a fresh database of 1,000 seeded rows) or per call (Mixed: wall time per\n")
	p("operation, Mixed64's mix on G goroutines over a pool of 8). Both axes are logarithmic: a flat\n")
	p("line is a constant cost per row or call, and two lines that stay as far apart grow alike.\n")
	p("The growth columns compare each enginekit series with its hand-written baseline on the same\n")
	p("driver: its cost over the baseline's at the smallest and at the largest x; a ratio that\n")
	p("rises means enginekit's cost grows faster.\n\n")
	for _, db := range []string{"sqlite3", "postgres", "mysql"} {
		byOp := curves[db]
		if byOp == nil {
			continue
		}
		for _, co := range curveOps {
			c := byOp[co.op]
			if c == nil || len(c.xs) == 0 {
				continue
			}
			title := dbTitle(db, servers) + ": " + co.title + ", time per " + c.unit
			if svgDir != "" {
				if err := writeSVG(filepath.Join(svgDir, svgName(c)), title, c); err != nil {
					return err
				}
			}
			p("### %s\n\n![%s](%s)\n\n", dbTitle(db, servers)+": "+co.title, esc(title), svgName(c))
			p("| series |")
			for _, x := range c.xs {
				p(" %s %s |", thousands(x), c.xName)
			}
			p(" against | ratio at %s | ratio at %s |\n|---|", thousands(c.xs[0]), thousands(c.xs[len(c.xs)-1]))
			p("%s---|---:|---:|\n", strings.Repeat("---:|", len(c.xs)))
			for _, s := range c.series {
				p("| %s |", s)
				for _, x := range c.xs {
					t, a := c.at(s, x)
					if math.IsNaN(t) {
						p(" |")
						continue
					}
					p(" %s, %s allocs |", humanNs(t), strconv.FormatFloat(a, 'f', 1, 64))
				}
				b := c.baseline(s)
				if b == "" || !strings.HasPrefix(s, "enginekit") {
					p(" | | |\n")
					continue
				}
				p(" %s |", b)
				for _, x := range []int{c.xs[0], c.xs[len(c.xs)-1]} {
					t, a := c.at(s, x)
					bt, ba := c.at(b, x)
					p(" %s time, %s allocs |", strconv.FormatFloat(t/bt, 'f', 2, 64), strconv.FormatFloat(a/ba, 'f', 2, 64))
				}
				p("\n")
			}
			p("\n")
		}
	}
	return nil
}
