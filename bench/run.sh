#!/usr/bin/env bash
# Runs the benchmark suite, compares the variants with benchstat and writes
# RESULTS.md (and results.txt, the raw go test output, to compare later runs
# against with benchstat).
#
#   bench/run.sh                    # the whole suite: about 20 minutes
#   BENCH='Suite/db=postgres/' ROUNDS=3 bench/run.sh
#   SCALE=1 bench/run.sh            # the scaling runs instead (BenchmarkScale)
#   SCALE=1 BENCH='Scale/db=postgres/.*' bench/run.sh
#   REPORT=1 bench/run.sh           # only rewrite RESULTS.md and the SVGs
#
# SCALE=1 runs BenchmarkScale, how cost grows with the size of a Find or a
# bulk load and with the goroutines of Mixed, in ROUNDS (default 3) of a
# fixed number of iterations (go test's calibration would spend minutes on
# the large points): Find and the loads with -benchtime 1x (one op reads
# 10,000 rows or loads 100,000), Mixed with -benchtime ${MIXED:-2000}x. It
# writes scale.txt and scale.meta, then RESULTS.md and one SVG per curve
# (scale-<db>-<op>.svg, by cmd/benchreport). Each round takes 4 to 6
# minutes on 2 cores under load.
#
# Every benchmark runs 10 times (-count=10 in all), for BENCHTIME each
# (default 600ms), in ROUNDS (default 10) of COUNT (default 1): each round
# runs the whole suite once on fresh databases, so that the variants take
# turns and a burst of load on a shared machine, or a server slowing down
# as the run goes on, spreads over all of them instead of landing on the
# one whose ten runs it happens to meet. ROUNDS=1 COUNT=10 is the plain
# go test -count=10.
#
# The suite has 90 benchmarks (3 databases x 5 variants x 6 operations).
# Go calibrates b.N with shorter runs first, so a benchmark of 600ms takes
# about 1.2 s, and 1.3 s with the checks between runs and the fresh
# databases: a round lasts about 2 minutes, the default run about 20 (it
# measured 98 s a round at 500ms, on 2 cores under a load average of 7).
#
# The servers are those of ENGINEKIT_TEST_POSTGRES_DSN and
# ENGINEKIT_TEST_MYSQL_DSN (default: PostgreSQL and MariaDB on 127.0.0.1 as
# .ci/run sets them up); each variant gets a fresh database there, dropped
# afterwards. Both servers are required.
set -euo pipefail

cd "$(dirname "$0")"
export PATH="$PATH:$(go env GOPATH)/bin"

: "${ENGINEKIT_TEST_POSTGRES_DSN:=postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
: "${ENGINEKIT_TEST_MYSQL_DSN:=root@tcp(127.0.0.1:3306)/test}"
export ENGINEKIT_TEST_POSTGRES_DSN ENGINEKIT_TEST_MYSQL_DSN
export ENGINEKIT_TEST_REQUIRE=postgres,mysql

bench=${BENCH:-Suite}
rounds=${ROUNDS:-10}
count=${COUNT:-1}
benchtime=${BENCHTIME:-600ms}
if [[ -n ${SCALE:-} ]]; then
	bench=${BENCH:-Scale/.*/.*} # Scale/db=.../impl=..., to which /op=... is added
	rounds=${ROUNDS:-3}
fi

if ! command -v benchstat >/dev/null; then
	go install golang.org/x/perf/cmd/benchstat@latest
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# report writes RESULTS.md from results.txt and results.meta (the suite)
# and, when there, scale.txt and scale.meta (the scaling runs).
report() {
	benchstat -format csv -table /db -row /op -col '/impl@(sqlx sql pgx enginekit enginekitpgx gorm gormprep)' \
		results.txt >"$tmp/results.csv" 2>/dev/null
	local scale=()
	if [[ -f scale.txt ]]; then
		scale=(-scale scale.txt -scalemeta scale.meta -svg .)
	fi
	if [[ -f scale-notes.md ]]; then # the reading of the curves, by hand
		scale+=(-notes scale-notes.md)
	fi
	go run ./cmd/benchreport -csv "$tmp/results.csv" -meta results.meta "${scale[@]}" >"$tmp/RESULTS.md"
	if [[ -f targets.md ]]; then # round 2's targets, by hand
		{
			echo
			cat targets.md
		} >>"$tmp/RESULTS.md"
	fi
	cp "$tmp/RESULTS.md" RESULTS.md
	echo "wrote $(pwd)/RESULTS.md" >&2
}

if [[ -n ${REPORT:-} ]]; then
	report
	exit 0
fi

# The run's circumstances, for RESULTS.md.
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	if [[ -n ${SCALE:-} ]]; then
		echo "command: go test -run '^\$' -bench '$bench/op=(Find|Load|InsertMany)/' -benchtime 1x, then -bench '$bench/op=Mixed/' -benchtime ${MIXED:-2000}x, $rounds times"
	else
		echo "command: go test -run '^\$' -bench '$bench' -benchtime $benchtime -count $count, $rounds times"
	fi
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores: $(nproc)"
	echo "memory: $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "os: $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -srm)"
	echo "go: $(go version)"
	if rev=$(git rev-parse --short HEAD 2>/dev/null); then
		if [[ -n $(git status --porcelain -- .. 2>/dev/null) ]]; then
			rev="$rev with uncommitted changes"
		fi
		echo "enginekit: $rev"
	fi
	go list -m -f 'module: {{.Path}} {{.Version}}' \
		github.com/lib/pq github.com/jackc/pgx/v5 github.com/go-sql-driver/mysql github.com/mattn/go-sqlite3 \
		github.com/jmoiron/sqlx gorm.io/gorm gorm.io/driver/postgres gorm.io/driver/mysql gorm.io/driver/sqlite
} >"$tmp/meta.txt"

go test -c -o "$tmp/bench.test" .
# runs is one round: the suite, or the scaling runs' two invocations.
runs() {
	if [[ -z ${SCALE:-} ]]; then
		"$tmp/bench.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime" \
			-test.count "$count" -test.timeout 60m
		return
	fi
	"$tmp/bench.test" -test.run '^$' -test.bench "$bench/op=(Find|Load|InsertMany)/" -test.benchtime 1x \
		-test.timeout 60m &&
		"$tmp/bench.test" -test.run '^$' -test.bench "$bench/op=Mixed/" -test.benchtime "${MIXED:-2000}x" \
			-test.timeout 60m | grep '^Benchmark'
}
start=$SECONDS
for ((i = 1; i <= rounds; i++)); do
	echo "round $i of $rounds" >&2
	runs >"$tmp/round.txt" || {
		cat "$tmp/round.txt"
		exit 1
	}
	# One header, then every round's results.
	if ((i == 1)); then
		grep -v -e '^PASS$' -e '^ok ' "$tmp/round.txt" >"$tmp/results.txt"
	else
		grep '^Benchmark' "$tmp/round.txt" >>"$tmp/results.txt"
	fi
done
{
	echo "elapsed: $(((SECONDS - start + 30) / 60)) min"
	echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$tmp/meta.txt"

out=results
if [[ -n ${SCALE:-} ]]; then
	out=scale
fi
cp "$tmp/results.txt" "$out.txt"
cp "$tmp/meta.txt" "$out.meta"
report
