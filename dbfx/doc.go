// Package dbfx gives an application one engine per database: its pools, a
// session.Manager, health checks, startup steps such as migrations and a
// graceful close, started and stopped by Fx lifecycle hooks (or by Open
// and Close without Fx).
//
//	app := fx.New(
//		fx.Supply(dbfx.Config{DSN: os.Getenv("DATABASE_URL")}),
//		dbfx.Module,                           // *dbfx.Engine and *session.Manager
//		postgres.Module,                       // the driver (dbfx/postgres)
//		migrate.Module(migrations),            // optional: goose migrations at start (dbfx/migrate)
//		dbfx.ProvideRepository[User, int64](), // *repo.Repository[User, int64]
//		fx.Provide(NewUserHandler),            // takes them by constructor injection
//	)
//
// The engine connects in OnStart, retrying until Config.ConnectTimeout,
// then runs its startup steps (WithStartup: migrations, say). fx.Invoke
// functions and constructors run before that: there, a scope (Tx,
// ReadOnly, Conn), a statement through Q or Prepared, a repository call
// and a statement through Engine.DB() all fail with an error matching
// session.ErrNotStarted, and nothing reaches the database (no connection
// is opened, no SQLite file created), so that nothing runs on a pool that
// skipped the connect retry and the migrations; Health reports the engine
// starting, "engine not started" (and "engine starting" while its start
// runs). Do database work in an OnStart hook appended
// after the engine's (an fx.Invoke that registers one), or once the app
// has started. From the first step of the start on, everything goes
// through. A start that fails closes the pools, and the engine stays
// refused: scopes and statements through the Manager fail with
// session.ErrNotStarted naming the failure (Engine.DB() with database/sql's
// "database is closed"), and Health reports "engine failed to start".
// OnStop closes the engine: new scopes fail with session.ErrClosed, scopes
// in flight are awaited until the stop context ends, and the pools close.
// Named provides a further database under an Fx name tag, on a Config
// given to it or, given the zero Config, the graph's Config tagged with
// its name; OptionsFor hands it options through the graph as Options does
// for Module's engine.
//
// Config has json, yaml and mapstructure tags (dsn, max_open_conns,
// connect_timeout...), and its UnmarshalJSON reads durations as "5s", so
// configuration loaders fill it as it is. WithPassword asks a hook for the
// password of each new connection (rotating credentials), and WithTLS
// gives PostgreSQL and MySQL a *tls.Config without registering it by name.
//
// # Drivers
//
// dbfx imports no database driver. A driver is a value (Driver) from one
// of enginekit's driver packages: dbfx/postgres (lib/pq), dbfx/mysql
// (go-sql-driver/mysql, for MySQL 8 and MariaDB) and dbfx/sqlite3
// (mattn/go-sqlite3, cgo). Their Module puts the driver in the Fx graph
// (the DriversGroup value group), where Module and Named find it; without
// Fx, WithDriver gives it to Open. There is no registry and no init(): two
// apps in one process may run on different sets, and a program links only
// the drivers it imports. Config.Driver names the driver; when it is empty,
// the form of the DSN chooses among those given:
//
//   - postgres: postgres:// and postgresql:// URLs, and libpq's key=value
//     pairs with at least one key libpq knows (host=, dbname=, user=...);
//   - mysql: mysql:// URLs and the mysql driver's own form,
//     user:pw@tcp(host:3306)/db, user:pw@unix(/socket)/db, user@/db,
//     tcp(host)/db, unix(/socket)/db;
//   - sqlite3: :memory:, a file: URI, or a path: no "://" and, before any
//     "?", no "@", "=", "tcp(" or "unix(".
//
// Anything else (postgresql+psycopg2://, mongodb://, a typo'd scheme,
// white space around the DSN, user:pw@host without tcp(...)) is ErrConfig
// naming the DSN field, before anything is opened: no file is created and
// no password shown. Config.Driver decides a DSN that could be either (a
// bare /db is a path, and the mysql driver's DSN of a local server), and
// makes any string a file name for sqlite3 (a file whose name has "@" or
// "="); a DSN that is plainly another driver's is ErrConfig. A DSN of a
// driver that was not given is ErrConfig, naming the package to import.
//
// Each driver parses its DSNs with its own parser: dbfx/postgres with
// lib/pq's (pq.NewConfig: quoted values, several hosts, and the PG*
// environment variables lib/pq honours, such as PGPASSWORD and PGSSLMODE),
// dbfx/mysql with the mysql driver's ParseDSN. A DSN the driver refuses is
// ErrConfig naming the field (DSN, Replicas[i]). The password, wherever it
// came from, is redacted from every error, log line and health report, as
// is whatever else in the DSN could be one (between "://" and "@", before
// the "@" of the mysql form, the value of a password= key): a message a
// driver might have written with a piece of a password is replaced by
// what it says of the DSN with those parts masked.
//
// The driver carries what is its own: the connector, the parsing, checking
// and redaction of its DSNs, the parameters enginekit relies on, the
// classification of its errors (what is retried, what aborts a
// transaction, what is a lost connection) and which connect errors waiting
// cannot cure. A Driver is also a session.Driver, so a pool opened by hand
// gets the same classification: session.New(db, session.WithDriver(d)).
// The set of drivers is closed for now: Driver's methods have types of
// enginekit's own internal packages.
//
// Every pool an engine opens runs on enginekit's connection wrapper, which
// observes statements for the monitor, returns the driver's errors with
// their class, refuses the statements of a transaction that an error
// aborted (and rolls it back at COMMIT), and enforces the pool's policy:
// each connection's own jittered lifetime, leak reports. sql.Conn.Raw
// hands out the wrapper; DriverConn gives the driver's connection.
//
// # Deadlines and dead connections
//
// No call outlives its ctx by much, whatever the server or the network
// does:
//
//   - Start waits at most Config.ConnectTimeout in all, and each
//     connection's setup (dial and handshake), at start and later, is
//     bounded by it too: a server that accepts and never answers fails
//     the start with ErrConnect (PostgreSQL gets a connect_timeout, which
//     lib/pq lacks unless told).
//   - A call whose ctx ended while its server does not answer (a stopped
//     backend, a partition) has its connection closed under the driver
//     half a second later (internal/connwrap's CutGrace), and returns the
//     ctx's error; the connection is never used again. A COMMIT ended so
//     is session.ErrAmbiguousCommit wrapping the ctx's error: it may have
//     been committed.
//   - A call with no deadline on a peer that vanished fails within
//     Config.DeadPeerTimeout (TCP keepalive and TCP_USER_TIMEOUT on every
//     socket the engine dials), not the kernel's quarter of an hour.
//   - A connection idle longer than Config.IdleCheck, or older than a
//     lost connection seen on the pool, is checked when taken out (a look
//     at its socket, no round trip) and discarded when its server closed
//     it: after a restart, a failover, pg_terminate_backend or an idle
//     timeout, no caller that has sent nothing meets a dead connection.
//     The monitor hears of each (monitor.PoolDeadConn).
//
// # MySQL: values written into the SQL
//
// Open sets the mysql driver's interpolateParams=true unless the DSN sets
// it (false stays false) or names a character set whose multibyte
// characters can hide a backslash (big5, cp932, gb2312, gbk, gb18030,
// sjis). A statement with arguments that is not a cached prepared statement
// (see session.Manager.Prepared) then takes one round trip: the driver
// writes the values, escaped, into the SQL text outside strings and
// comments, instead of a server-side prepare, execute and close (measured
// 1.6-2x faster on MariaDB); a value it cannot write falls back to the
// prepare. Every parameter type is stored as a prepared statement stores
// it (TestMySQLInterpolatedValues checks integers, unsigned, floats, bools,
// strings with quotes, backslashes and NUL, bytes, times, decimals, JSON,
// NULL, Valuers). What changes is the protocol of the result, text instead
// of binary, as for a statement without arguments: the driver gives the same
// Go values, except an unsigned BIGINT scanned into an any (uint64 instead
// of int64) and a FLOAT column, parsed from the server's six significant
// digits instead of its exact single-precision value. An expression over
// a parameter (SELECT ? + 1) takes its type from the written literal: a
// float64 written without an exponent (0.1) is a DECIMAL there.
//
// # Past one server
//
// Config.TransactionPooling is for a pooler in transaction pooling mode
// (PgBouncer) in front of the database: the engine keeps nothing on a
// server connection past a transaction (no statement cache, no prepared
// statements, no MySQL server-side cancel) and lib/pq sends each
// statement with arguments in one exchange (binary_parameters); a Conn
// scope then has no affinity to a server connection. Config.MaxReplicaLag
// keeps read-only scopes off a replica found further behind its primary,
// and session's Manager.ReadYourWrites sends a request's reads to the
// primary until a replica has replayed its writes. The README's "Running
// past one server" has the details and the Config of each setup.
//
// # Health
//
// Engine.Health reports ok, degraded (callers wait for a connection of a
// pool that has none free, each pool counted on its own, SQLite's single
// writer included; or a replica is down, or lags past MaxReplicaLag) or down, with the latency and the
// pool's figures, on a connection kept apart from the pools. HealthHandler
// serves it as JSON to GET and HEAD for a readiness probe (503 when down,
// and "starting" with 503 until the engine's start completes); its JSON shows no error text and no address, which go to the
// engine's log. Engine.Check is the same for probe libraries (an error
// matching ErrDown only when down or starting), and LiveHandler answers a liveness
// probe without touching any database.
//
// Configuration errors name every bad field (ErrConfig), connection
// failures name the engine, driver and host (ErrConnect), and no error,
// log line or health report ever carries a DSN password. Nor does a
// printed Config: String, GoString (%#v) and Format (every fmt verb),
// MarshalLogObject (zap.Any), LogValue (slog) and MarshalJSON show the DSN
// and the replicas' DSNs with their passwords (user:password@, password=,
// _auth_pass=...) replaced by xxxxx, and a DSN they cannot read as its
// form and "(unparsed)". Decoding a Config (encoding/json through
// UnmarshalJSON, a loader that sets its fields, ConfigFromEnv) keeps the
// passwords; MarshalJSON's output reads back into the same Config but for
// them.
package dbfx
