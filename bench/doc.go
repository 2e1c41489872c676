// Package bench measures enginekit against the code its users would write
// instead: the same five operations, on the same schema, rows, driver, DSN
// and pool, on PostgreSQL, MariaDB/MySQL and SQLite. It is a module of its
// own (bench/go.mod) so that GORM never reaches enginekit's users.
//
// # What runs
//
// BenchmarkSuite names each result db=<driver>/impl=<variant>/op=<operation>.
// The variants:
//
//	sql        hand-written database/sql: QueryRowContext(...).Scan, Exec, rows.Scan
//	pgx        (PostgreSQL only) the same hand-written database/sql on pgx's
//	           driver (github.com/jackc/pgx/v5/stdlib, its defaults: each
//	           connection prepares a statement once and caches it)
//	sqlx       hand-written sqlx: GetContext and SelectContext (sqlx's reflection
//	           scanning); writes with positional arguments (ExecContext,
//	           QueryRowxContext), not NamedExec, which re-parses its query per call
//	enginekit  repo.Repository over an engine from dbfx.Open, every call
//	           outside any scope
//	enginekitpgx (PostgreSQL only) the same on dbfx/pgx, Config.Driver "pgx"
//	           (enginekit keeps no statement cache there: pgx's is used)
//	gorm       GORM without PrepareStmt
//	gormprep   GORM with PrepareStmt
//
// Both GORM variants run with SkipDefaultTransaction (so a write is one
// statement, as in every other variant, not BEGIN, statement, COMMIT) and a
// silent logger, on the same *sql.DB as the raw variants (GORM's PostgreSQL
// dialector over a lib/pq pool, not pgx).
//
// The operations:
//
//	Get            one row by primary key
//	Insert         one row, its generated key read back (RETURNING on
//	               PostgreSQL, LastInsertId elsewhere; GORM uses RETURNING on
//	               MariaDB and SQLite too)
//	InsertMany100  100 rows in one multi-row INSERT, their keys read back
//	Find100        the 100 rows of one group (an indexed column), ORDER BY id
//	Update         every column of a real row, guarded by its version
//	               (WHERE id = ? AND version = ?, version = version + 1)
//	Mixed64        64 goroutines on a pool of 8: 80% Get, 20% Update, each
//	               goroutine updating only rows of its own so that versions
//	               never conflict; ns/op is wall time per operation
//
// Every variant gets a fresh database of its own (a new database on the
// server, a new file for SQLite), the same table and the same 1000 seeded
// rows. After every run the benchmark stops its timer and checks the work:
// row counts, generated keys, the values read back, versions; a variant that
// did less than the others fails.
//
// # Pools and DSNs
//
// PostgreSQL and MySQL: one pool of 8 connections (MaxOpenConns 8,
// MaxIdleConns 8, ConnMaxLifetime 30m, ConnMaxIdleTime 5m) for every
// variant. MySQL DSNs carry parseTime=true, clientFoundRows=true, interpolateParams=true and
// timeout=10s for every variant, as dbfx adds them.
//
// SQLite (a file in a temporary directory): every variant gets what enginekit
// opens, a writer pool of one connection (WAL, _txlock=immediate,
// _busy_timeout=5000) and a reader pool of 8 query-only connections
// (_query_only=1, _txlock=deferred). enginekit's connections also keep
// go-sqlite3's statement cache (_stmt_cache_size=64), a default of its
// SQLite driver that the hand-written variants do not set. The single-goroutine operations all run
// on the writer, where enginekit runs statements outside any scope. In
// Mixed64 the reads go to the reader pool: the raw variants and GORM query it
// directly, enginekit sends them outside any scope, where a read runs on the
// reader pool; the updates queue on the one writer.
//
// # Running
//
// run.sh runs the suite ten times (10 rounds of -count=1, so that the
// variants take turns; see the script), compares the variants with
// benchstat and writes RESULTS.md. By hand:
//
//	ENGINEKIT_TEST_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	ENGINEKIT_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' \
//	go test -run '^$' -bench 'Suite/db=postgres/impl=(sqlx|enginekit)/' -benchtime 1s -count 10 .
//
// A server whose variable is unset is skipped (unless ENGINEKIT_TEST_REQUIRE
// names it); SQLite always runs.
//
// # How cost grows
//
// BenchmarkScale (scale_test.go) draws curves instead of single points, for
// sqlx, sql, pgx, enginekit and enginekitpgx: Find of a group of 10, 100,
// 1,000 and 10,000 rows; Mixed64's mix on 1, 8, 64 and 256 goroutines over
// the same pool of 8 (below the servers' max_connections: PostgreSQL's 100,
// MariaDB's 151); bulk loads of 1,000 and 100,000 rows, enginekit's Load and
// InsertMany against the hand-written fastest form (COPY through lib/pq's
// CopyIn or pgx's CopyFrom on PostgreSQL, multi-row INSERTs of 1,000 rows in
// one transaction elsewhere). Each point reports its cost per row (ns/row,
// allocs/row) or per call (ns/call, and allocs/op). It is meant for a fixed
// -benchtime and stays out of CI (.ci/run runs tests only):
//
//	SCALE=1 bench/run.sh        # 3 rounds; writes scale.txt, the SVGs, RESULTS.md
//
// or by hand, one op reading 10,000 rows or loading 100,000:
//
//	go test -run '^$' -bench 'Scale/db=postgres/.*/op=(Find|Load|InsertMany)/' -benchtime 1x .
//	go test -run '^$' -bench 'Scale/db=postgres/.*/op=Mixed/' -benchtime 2000x .
//
// cmd/benchreport plots each curve (scale-<db>-<op>.svg) for RESULTS.md.
package bench
