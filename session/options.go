package session

import (
	"context"
	"database/sql"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/monitor"
)

// Option configures a Manager.
type Option func(*config)

type config struct {
	driver         Driver
	reader         *sqlx.DB
	replicas       func() *sqlx.DB
	position       func(ctx context.Context) (uint64, error) // WithReplicaPositions
	pickAt         func(pos uint64) *sqlx.DB                 // WithReplicaPositions
	acquireTimeout time.Duration
	retry          RetryPolicy
	mon            monitor.Monitor // nil: no events
	db             string          // the database's name in events
	stmtCache      int             // prepared statements kept: 0 the default, < 0 none
	prepareQ       bool            // Q's Queriers run statements prepared
	gate           func() error    // nil: always open
}

// Driver is what a Manager needs of its database's driver: its dialect,
// the SQL it speaks and what its errors mean (which are retried, which
// abort a transaction). The drivers of enginekit's driver packages are
// Drivers: postgres.Driver(), mysql.Driver(), sqlite3.Driver().
type Driver interface {
	Dialect() *dialect.Dialect
}

// WithDriver names the driver of the pools given to New. It is required.
func WithDriver(d Driver) Option { return func(c *config) { c.driver = d } }

// WithReader gives the Manager a separate pool for read-only scopes, and
// for the SELECTs run outside any scope: on SQLite, a pool of connections
// opened with query_only, so that reads do not queue behind the single
// writer. Without it, SQLite read-only scopes run on the writer with
// PRAGMA query_only around them.
func WithReader(db *sqlx.DB) Option { return func(c *config) { c.reader = db } }

// WithReplicas gives the Manager read replicas: a read-only scope that
// begins its own transaction runs on the pool pick returns, unless pick
// returns nil (no healthy replica) or the scope asks for
// sql.LevelSerializable (a hot standby refuses it): then on the writer.
// See ReadYourWrites for a request that must read its own writes.
func WithReplicas(pick func() *sqlx.DB) Option { return func(c *config) { c.replicas = pick } }

// WithAcquireTimeout bounds how long a scope, or a statement outside any
// scope that Q runs through Exec, Get or Select, waits for a free pool
// connection; longer fails with ErrAcquireTimeout. Zero waits as long as
// the ctx allows.
func WithAcquireTimeout(d time.Duration) Option { return func(c *config) { c.acquireTimeout = d } }

// WithRetryPolicy sets the default retry policy of transaction scopes.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *config) { c.retry = p } }

// WithStatementCache sets how many prepared statements the Manager keeps
// for Prepared (and for Q with WithPreparedQueries): n of them, the least
// recently used closed beyond that; DefaultStatementCache when n is 0;
// none when n is -1 (or less), so that every statement is sent as it is,
// as behind PgBouncer in transaction mode, where a prepared statement
// would meet another server connection.
func WithStatementCache(n int) Option { return func(c *config) { c.stmtCache = n } }

// WithPreparedQueries makes the Queriers Q returns run statements as
// Prepared's do: every text with arguments becomes a cached prepared
// statement. Queries whose text varies with their values (IN lists of
// varying length, values written into the SQL) churn the cache: the bound
// keeps its memory in check, not its hit rate. It does nothing when the
// statement cache is off.
func WithPreparedQueries() Option { return func(c *config) { c.prepareQ = true } }

// WithGate makes the Manager ask gate before each outermost scope begins
// (Tx, ReadOnly, Conn and their kin, which take a connection of their own)
// and before each statement that Q or Prepared runs outside any scope: an
// error gate returns is returned as it is, before any connection is taken
// or waited for, and the statement cache is left as it was. Scopes opened
// inside a scope are not asked again. A dbfx engine's Manager has one that
// refuses with an error matching ErrNotStarted until the engine's start
// begins; a Manager without one is open from New on. gate is called from
// many goroutines at once and on every such statement: it must be safe
// for concurrent use and quick.
func WithGate(gate func() error) Option { return func(c *config) { c.gate = gate } }

// Mode is a propagation mode: what a scope does when the context already
// carries a transaction of the same Manager.
type Mode uint8

const (
	// Required joins the current transaction, or begins one. The default.
	Required Mode = iota
	// RequiresNew always begins a transaction of its own on another
	// connection; the current one, if any, waits.
	RequiresNew
	// Nested runs in a savepoint of the current transaction, or begins one.
	// A failure rolls back to the savepoint and leaves the outer
	// transaction usable.
	Nested
	// Mandatory joins the current transaction; without one it fails with
	// ErrNoTransaction.
	Mandatory
	// Supports joins the current transaction, or runs without one.
	Supports
	// NotSupported runs without a transaction: statements go to the pool,
	// outside the current transaction, which waits.
	NotSupported
	// Never runs without a transaction; inside one it fails with
	// ErrTransactionExists.
	Never
)

var modeNames = [...]string{"Required", "RequiresNew", "Nested", "Mandatory", "Supports", "NotSupported", "Never"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "Mode(?)"
}

// RetryPolicy says how a transaction scope that owns its transaction runs
// it again after a retryable failure.
type RetryPolicy struct {
	MaxAttempts int           // attempts in all, the first included; <= 1 means no retry
	BaseDelay   time.Duration // the backoff before attempt n+1 is random in [0, min(MaxDelay, BaseDelay*2^(n-1))]
	MaxDelay    time.Duration
	// RetryOn, when set, names further errors to retry (a unique violation,
	// say), on top of the built-in classes.
	RetryOn func(error) bool
}

// DefaultRetryPolicy is the policy of transaction scopes unless a Manager
// option or a TxOption says otherwise: 3 attempts, backoff from 5ms to 250ms.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 250 * time.Millisecond}
}

// TxOption configures one scope.
type TxOption func(*txConfig)

type txConfig struct {
	mode      Mode
	isolation sql.IsolationLevel
	timeout   time.Duration
	retry     RetryPolicy
	label     string
}

// Propagation sets the propagation mode (Required by default).
func Propagation(p Mode) TxOption { return func(c *txConfig) { c.mode = p } }

// Isolation sets the isolation level of a transaction this scope begins.
// A level the database does not support is an error before BEGIN. A scope
// that joins a transaction runs at that transaction's level.
func Isolation(level sql.IsolationLevel) TxOption { return func(c *txConfig) { c.isolation = level } }

// Timeout bounds the scope with a deadline: each attempt of a transaction
// it begins, or its fn when it joins, nests in or suspends another.
func Timeout(d time.Duration) TxOption { return func(c *txConfig) { c.timeout = d } }

// Retry sets the retry policy of the scope.
func Retry(p RetryPolicy) TxOption { return func(c *txConfig) { c.retry = p } }

// NoRetry turns retries off for the scope.
func NoRetry() TxOption { return func(c *txConfig) { c.retry = RetryPolicy{MaxAttempts: 1} } }

// Label names the scope in metrics and logs.
func Label(name string) TxOption { return func(c *txConfig) { c.label = name } }
