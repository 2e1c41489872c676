#!/usr/bin/env bash
# Runs the benchmark suite, compares the variants with benchstat and writes
# RESULTS.md (and results.txt, the raw go test output, to compare later runs
# against with benchstat).
#
#   bench/run.sh                    # the whole suite: about 20 minutes
#   BENCH='Suite/db=postgres/' ROUNDS=3 bench/run.sh
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

bench=${BENCH:-.}
rounds=${ROUNDS:-10}
count=${COUNT:-1}
benchtime=${BENCHTIME:-600ms}

if ! command -v benchstat >/dev/null; then
	go install golang.org/x/perf/cmd/benchstat@latest
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The run's circumstances, for RESULTS.md.
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "command: go test -run '^\$' -bench '$bench' -benchtime $benchtime -count $count, $rounds times"
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
		github.com/lib/pq github.com/go-sql-driver/mysql github.com/mattn/go-sqlite3 \
		github.com/jmoiron/sqlx gorm.io/gorm gorm.io/driver/postgres gorm.io/driver/mysql gorm.io/driver/sqlite
} >"$tmp/meta.txt"

go test -c -o "$tmp/bench.test" .
start=$SECONDS
for ((i = 1; i <= rounds; i++)); do
	echo "round $i of $rounds" >&2
	"$tmp/bench.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime" \
		-test.count "$count" -test.timeout 60m >"$tmp/round.txt" || {
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

benchstat -format csv -table /db -row /op -col '/impl@(sqlx sql enginekit gorm gormprep)' \
	"$tmp/results.txt" >"$tmp/results.csv" 2>/dev/null
go run ./cmd/benchreport -csv "$tmp/results.csv" -meta "$tmp/meta.txt" >"$tmp/RESULTS.md"
cp "$tmp/results.txt" results.txt
cp "$tmp/RESULTS.md" RESULTS.md
echo "wrote $(pwd)/RESULTS.md"
