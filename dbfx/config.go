package dbfx

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/enginekit/enginekit/internal/dialect"
	"github.com/enginekit/enginekit/internal/drv"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrConfig: the Config is invalid. The message names every bad field.
	ErrConfig = errors.New("dbfx: invalid config")
	// ErrConnect: the database did not answer within ConnectTimeout, or
	// refused the connection.
	ErrConnect = errors.New("dbfx: cannot connect")
	// ErrMigration: a migration failed at start.
	ErrMigration = errors.New("dbfx: migration failed")
)

// Config configures one engine. The zero value of a field means its
// default; the pool fields map SQLAlchemy's pool settings onto database/sql.
//
// Its fields carry json, yaml and mapstructure tags with the snake_case
// keys ConfigFromEnv reads (max_open_conns, connect_timeout...), so that
// configuration loaders fill it without glue. Durations are Go durations
// ("5s", "1m30s"): see UnmarshalJSON for JSON; gopkg.in/yaml.v3 reads
// "5s" into a time.Duration field by itself; mapstructure needs its
// StringToTimeDurationHookFunc, which viper and koanf use by default.
type Config struct {
	// engine name, default "primary"; labels metrics, names Fx values
	Name string `json:"name" yaml:"name" mapstructure:"name"`
	// "postgres", "mysql" or "sqlite3"; inferred from the DSN among the drivers given when empty
	Driver string `json:"driver" yaml:"driver" mapstructure:"driver"`
	// postgres://..., mysql DSN or mysql://..., file path / file: URI / :memory:
	DSN string `json:"dsn" yaml:"dsn" mapstructure:"dsn"`
	// read-only DSNs: read-only scopes go to a healthy one (round robin), else the primary
	Replicas []string `json:"replicas" yaml:"replicas" mapstructure:"replicas"`
	// mysql only: further servers of the DSN's database, "host:port" each (a Galera cluster's
	// other nodes); a new connection tries the server that answered last, then the next one when it
	// is down or a Galera node not ready for statements, within ConnectTimeout (see dbfx/mysql)
	FailoverAddrs []string `json:"failover_addrs" yaml:"failover_addrs" mapstructure:"failover_addrs"`
	// pool_size + max_overflow; default 15
	MaxOpenConns int `json:"max_open_conns" yaml:"max_open_conns" mapstructure:"max_open_conns"`
	// pool_size; default 5 (never more than MaxOpenConns)
	MaxIdleConns int `json:"max_idle_conns" yaml:"max_idle_conns" mapstructure:"max_idle_conns"`
	// pool_recycle; default 30m
	ConnMaxLifetime time.Duration `json:"conn_max_lifetime" yaml:"conn_max_lifetime" mapstructure:"conn_max_lifetime"`
	// default 5m
	ConnMaxIdleTime time.Duration `json:"conn_max_idle_time" yaml:"conn_max_idle_time" mapstructure:"conn_max_idle_time"`
	// pool_timeout: a scope waiting longer for a connection fails; default 30s
	AcquireTimeout time.Duration `json:"acquire_timeout" yaml:"acquire_timeout" mapstructure:"acquire_timeout"`
	// how long start waits (retrying with backoff) for the database; default 10s
	ConnectTimeout time.Duration `json:"connect_timeout" yaml:"connect_timeout" mapstructure:"connect_timeout"`
	// default deadline of a statement whose ctx has none (not supported yet: rejected)
	QueryTimeout time.Duration `json:"query_timeout" yaml:"query_timeout" mapstructure:"query_timeout"`
	// statements at least this long are reported to the monitor as slow (0: none)
	SlowQuery time.Duration `json:"slow_query" yaml:"slow_query" mapstructure:"slow_query"`
	// a connection held longer is reported to the monitor with the stack that took it (0: off)
	LeakThreshold time.Duration `json:"leak_threshold" yaml:"leak_threshold" mapstructure:"leak_threshold"`
	// prepared statements kept per engine: 0 = default (256), -1 = off (PgBouncer in transaction mode), n = size
	StatementCache int `json:"statement_cache" yaml:"statement_cache" mapstructure:"statement_cache"`
	// a pooler in transaction pooling mode (PgBouncer) is in front: no statement cache, no prepared
	// statements, nothing kept on a server connection past a transaction; Conn scopes get no affinity
	TransactionPooling bool `json:"transaction_pooling" yaml:"transaction_pooling" mapstructure:"transaction_pooling"`
	// how often replicas and the primary are checked in the background
	HealthInterval time.Duration `json:"health_interval" yaml:"health_interval" mapstructure:"health_interval"`
	// a replica found further behind its primary serves no reads until it catches up (0: any lag)
	MaxReplicaLag time.Duration `json:"max_replica_lag" yaml:"max_replica_lag" mapstructure:"max_replica_lag"`
	// a connection whose server stopped answering (TCP keepalive, TCP_USER_TIMEOUT) fails after this; default 30s, -1 = the system's
	DeadPeerTimeout time.Duration `json:"dead_peer_timeout" yaml:"dead_peer_timeout" mapstructure:"dead_peer_timeout"`
	// a connection idle longer is checked for a server that closed it when taken from the pool; default 1s, -1 = never
	IdleCheck time.Duration `json:"idle_check" yaml:"idle_check" mapstructure:"idle_check"`
}

// Defaults filled in by Open for zero fields.
const (
	DefaultName           = "primary"
	DefaultMaxOpenConns   = 15
	DefaultMaxIdleConns   = 5
	DefaultConnMaxLife    = 30 * time.Minute
	DefaultConnMaxIdle    = 5 * time.Minute
	DefaultAcquireTimeout = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultHealthInterval = 10 * time.Second
	DefaultDeadPeer       = 30 * time.Second
)

// withDefaults returns c with every zero field set to its default and the
// driver inferred from the DSN.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = DefaultMaxIdleConns
		if c.MaxOpenConns > 0 {
			c.MaxIdleConns = min(c.MaxIdleConns, c.MaxOpenConns)
		}
	}
	if c.ConnMaxLifetime == 0 {
		c.ConnMaxLifetime = DefaultConnMaxLife
	}
	if c.ConnMaxIdleTime == 0 {
		c.ConnMaxIdleTime = DefaultConnMaxIdle
	}
	if c.AcquireTimeout == 0 {
		c.AcquireTimeout = DefaultAcquireTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.DeadPeerTimeout == 0 {
		c.DeadPeerTimeout = DefaultDeadPeer
	}
	return c
}

// FieldError is one invalid field of a Config.
type FieldError struct {
	Field  string
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ConfigError lists every invalid field of a Config. It matches ErrConfig.
type ConfigError struct {
	Engine string
	Fields []FieldError
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dbfx: invalid config for engine %q: ", e.Engine)
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

var validName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// Validate reports every invalid field in one error that matches
// ErrConfig. Fields left zero are valid: they take their defaults.
// No message quotes a DSN, so none can leak a password.
//
// Given the drivers the engine will have, it checks the DSNs as Open
// does: the driver each needs is among them, and each parses. Without
// drivers it checks every other field and that the DSNs are of a form
// enginekit knows.
func (c Config) Validate(ds ...Driver) error {
	var given drivers
	for _, d := range ds {
		given = given.add(d)
	}
	missing := refuseMissing
	if len(ds) == 0 {
		missing = allowMissing
	}
	_, err := c.resolve(given, drv.Options{ConnectTimeout: c.withDefaults().ConnectTimeout}, missing)
	return err
}

// missingDriver says what resolve makes of a DSN whose driver was not
// given.
type missingDriver uint8

const (
	refuseMissing missingDriver = iota // an error: the engine could not open it
	allowMissing                       // no error: Validate without drivers checks the rest
)

// resolve validates c (after defaults) and works out the DSNs to open
// with the drivers ds. With allowMissing, a DSN whose driver is not in ds
// is not an error, and the result is nil when c is otherwise valid.
func (c Config) resolve(ds drivers, o drv.Options, missing missingDriver) (*resolved, error) {
	c = c.withDefaults()
	o.TransactionPooling = c.TransactionPooling
	var bad []FieldError
	add := func(field, format string, args ...any) {
		bad = append(bad, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !validName.MatchString(c.Name) {
		add("Name", "%q must start with a letter and hold only letters, digits, '_' and '-'", c.Name)
	}
	var r *resolved
	var d *drv.Driver
	if c.DSN == "" {
		add("DSN", "is empty")
	} else {
		var field, why string
		var notGiven bool
		if d, field, why, notGiven = ds.pick(c.Driver, c.DSN); d != nil {
			c.Driver = d.Name
			po := o // the primary's servers; a replica's DSN names its own
			po.FailoverAddrs = c.FailoverAddrs
			t, err := resolveDSN(d, c.DSN, po)
			if err != nil {
				add("DSN", "%v", err)
			} else {
				r = &resolved{drv: d, Target: t}
			}
		} else if !notGiven || missing == refuseMissing {
			add(field, "%s", why)
		}
	}
	var replicas []*resolved
	for i, dsn := range c.Replicas {
		field := fmt.Sprintf("Replicas[%d]", i)
		switch why := dsnProblem(c.Driver, dsn); {
		case dsn == "":
			add(field, "is empty")
		case why != "":
			add(field, "%s", why)
		case d == nil:
		case d.SQL.Family() == dialect.SQLite:
			add(field, "read replicas need postgres or mysql")
		default:
			t, err := resolveDSN(d, dsn, o)
			if err != nil {
				add(field, "%v", err)
				continue
			}
			rc := c
			rc.DSN = dsn
			replicas = append(replicas, &resolved{cfg: rc, drv: d, Target: t})
		}
	}
	for i, a := range c.FailoverAddrs {
		if why := addrProblem(a); why != "" {
			add(fmt.Sprintf("FailoverAddrs[%d]", i), "%s", why)
		}
	}
	if fam := familyOf(c.DSN); len(c.FailoverAddrs) > 0 && (d != nil && !d.Failover || d == nil && fam != "" && fam != "mysql") {
		add("FailoverAddrs", "are for mysql DSNs, which name one server each (a PostgreSQL DSN names "+
			"several itself: postgres://h1:5432,h2:5432/db?target_session_attrs=read-write)")
	}
	// Fields whose feature has not landed are refused rather than ignored.
	for _, f := range []struct {
		field string
		set   bool
	}{
		{"QueryTimeout", c.QueryTimeout != 0},
	} {
		if f.set {
			add(f.field, "is not supported yet")
		}
	}
	if c.MaxOpenConns < 0 {
		add("MaxOpenConns", "must not be negative, got %d", c.MaxOpenConns)
	}
	if c.MaxIdleConns < 0 {
		add("MaxIdleConns", "must not be negative, got %d", c.MaxIdleConns)
	} else if c.MaxOpenConns > 0 && c.MaxIdleConns > c.MaxOpenConns {
		add("MaxIdleConns", "%d exceeds MaxOpenConns %d", c.MaxIdleConns, c.MaxOpenConns)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"ConnMaxLifetime", c.ConnMaxLifetime}, {"ConnMaxIdleTime", c.ConnMaxIdleTime},
		{"AcquireTimeout", c.AcquireTimeout}, {"ConnectTimeout", c.ConnectTimeout},
		{"QueryTimeout", c.QueryTimeout}, {"SlowQuery", c.SlowQuery},
		{"LeakThreshold", c.LeakThreshold}, {"HealthInterval", c.HealthInterval},
		{"MaxReplicaLag", c.MaxReplicaLag},
	} {
		if d.v < 0 {
			add(d.field, "must not be negative, got %s", d.v)
		}
	}
	if c.DeadPeerTimeout < 0 && c.DeadPeerTimeout != -1 {
		add("DeadPeerTimeout", "must be -1 (the system's), 0 (default) or a duration, got %s", c.DeadPeerTimeout)
	} else if c.DeadPeerTimeout > 0 && c.DeadPeerTimeout < time.Second {
		add("DeadPeerTimeout", "must be at least 1s (TCP's keepalive counts seconds), got %s", c.DeadPeerTimeout)
	}
	if c.IdleCheck < -1 {
		add("IdleCheck", "must be -1 (never), 0 (default) or a duration, got %s", c.IdleCheck)
	}
	if c.StatementCache < -1 {
		add("StatementCache", "must be -1 (off), 0 (default) or a size, got %d", c.StatementCache)
	}
	if c.TransactionPooling {
		if c.StatementCache > 0 {
			add("StatementCache", "must be 0 or -1 with TransactionPooling (a prepared statement would meet another server connection), got %d", c.StatementCache)
		}
		if d != nil && d.SQL.Family() == dialect.SQLite {
			add("TransactionPooling", "is for a pooler in front of a PostgreSQL or MySQL server, not SQLite")
		}
		c.StatementCache = -1
	}
	if len(bad) > 0 {
		return nil, &ConfigError{Engine: c.Name, Fields: bad}
	}
	if r == nil {
		return nil, nil // valid as far as it can be checked without its driver
	}
	r.cfg = c
	r.replicas = replicas
	return r, nil
}

// addrProblem says why a of FailoverAddrs is not host:port, without
// quoting it (a DSN pasted there would show its password).
func addrProblem(a string) string {
	if a == "" {
		return "is empty"
	}
	if strings.ContainsAny(a, "@/()?=") || strings.ContainsFunc(a, unicode.IsSpace) {
		return "is not host:port (an address, not a DSN)"
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "is not host:port"
	}
	if host == "" {
		return "has no host"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "has no port 1-65535"
	}
	return ""
}

// ConfigFromEnv reads a Config from PREFIX_NAME, PREFIX_DRIVER, PREFIX_DSN,
// PREFIX_REPLICAS and PREFIX_FAILOVER_ADDRS (comma-separated), PREFIX_MAX_OPEN_CONNS,
// PREFIX_MAX_IDLE_CONNS, PREFIX_CONN_MAX_LIFETIME, PREFIX_CONN_MAX_IDLE_TIME,
// PREFIX_ACQUIRE_TIMEOUT, PREFIX_CONNECT_TIMEOUT, PREFIX_QUERY_TIMEOUT,
// PREFIX_SLOW_QUERY, PREFIX_LEAK_THRESHOLD, PREFIX_STATEMENT_CACHE,
// PREFIX_TRANSACTION_POOLING, PREFIX_HEALTH_INTERVAL, PREFIX_MAX_REPLICA_LAG,
// PREFIX_DEAD_PEER_TIMEOUT and PREFIX_IDLE_CHECK.
// Durations are Go durations ("5s"); booleans are strconv.ParseBool's
// (true, false, 1, 0). Unset variables leave their field
// zero; every malformed one is named in one error matching ErrConfig. The
// result is not validated: call Validate.
func ConfigFromEnv(prefix string) (Config, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "_") {
		prefix += "_"
	}
	var c Config
	var bad []FieldError
	str := func(name string, dst *string) { *dst = os.Getenv(prefix + name) }
	num := func(name string, dst *int) {
		if v := os.Getenv(prefix + name); v != "" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				bad = append(bad, FieldError{prefix + name, fmt.Sprintf("%q is not an integer", v)})
			}
			*dst = n
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v := os.Getenv(prefix + name); v != "" {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				bad = append(bad, FieldError{prefix + name, fmt.Sprintf("%q is not a duration such as 5s", v)})
			}
			*dst = d
		}
	}
	str("NAME", &c.Name)
	str("DRIVER", &c.Driver)
	str("DSN", &c.DSN)
	var replicas string
	str("REPLICAS", &replicas)
	for _, r := range strings.Split(replicas, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.Replicas = append(c.Replicas, r)
		}
	}
	for _, a := range strings.Split(os.Getenv(prefix+"FAILOVER_ADDRS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.FailoverAddrs = append(c.FailoverAddrs, a)
		}
	}
	num("MAX_OPEN_CONNS", &c.MaxOpenConns)
	num("MAX_IDLE_CONNS", &c.MaxIdleConns)
	dur("CONN_MAX_LIFETIME", &c.ConnMaxLifetime)
	dur("CONN_MAX_IDLE_TIME", &c.ConnMaxIdleTime)
	dur("ACQUIRE_TIMEOUT", &c.AcquireTimeout)
	dur("CONNECT_TIMEOUT", &c.ConnectTimeout)
	dur("QUERY_TIMEOUT", &c.QueryTimeout)
	dur("SLOW_QUERY", &c.SlowQuery)
	dur("LEAK_THRESHOLD", &c.LeakThreshold)
	num("STATEMENT_CACHE", &c.StatementCache)
	if v := os.Getenv(prefix + "TRANSACTION_POOLING"); v != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			bad = append(bad, FieldError{prefix + "TRANSACTION_POOLING", fmt.Sprintf("%q is not a boolean such as true", v)})
		}
		c.TransactionPooling = b
	}
	dur("HEALTH_INTERVAL", &c.HealthInterval)
	dur("MAX_REPLICA_LAG", &c.MaxReplicaLag)
	dur("DEAD_PEER_TIMEOUT", &c.DeadPeerTimeout)
	dur("IDLE_CHECK", &c.IdleCheck)
	if len(bad) > 0 {
		name := c.Name
		if name == "" {
			name = DefaultName
		}
		return c, &ConfigError{Engine: name, Fields: bad}
	}
	return c, nil
}
