package mysql

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/go-sql-driver/mysql"

	"github.com/enginekit/enginekit/internal/drv"
)

// connector is the mysql driver's connector with enginekit's server-side
// cancel (drv.Canceller): MySQL and MariaDB run a statement whose client
// gave up to its end (the driver only closes its socket when the ctx
// ends), so it is stopped with KILL QUERY from a connection of its own.
//
// KILL QUERY names a connection id, which is only meaningful on the
// server that gave it: behind a proxy, a load balancer or a cluster
// address, the connection that sends the KILL may reach another server,
// where the same id is someone else's; and after a restart the ids start
// again. So each connection, as it opens, takes a user-level lock of a
// random name (GET_LOCK, no privilege needed), held until it closes; the
// cancel's connection asks its server who holds that lock (IS_USED_LOCK)
// and sends KILL QUERY only when the answer is the statement's own
// connection id. A user-level lock lives on one server instance and only
// while its connection does: the answer proves that the cancel reached the
// statement's server (not another node, not a restarted one) and that the
// id still names the statement's connection (ids are not reused while
// their connection lives, and the connection wrapper runs no statement on
// it once it asked for the cancel). Anything else (no holder, another
// holder, an error) and nothing is killed: the cancel is reported as not
// attempted.
//
// Server variables were the alternative: @@hostname, @@port, @@server_id
// and the start time (UNIX_TIMESTAMP() less the Uptime status), or MySQL
// 8's @@server_uuid (which survives a restart, after which the ids start
// again, so it needs the start time too). They tell servers apart only as
// well as the servers are configured: two servers on one host answer the
// same @@hostname and, by default, the same @@server_id (1); Galera wants
// one server_id on all its nodes; the start time is read from
// information_schema.GLOBAL_STATUS on MariaDB and from performance_schema
// on MySQL 8. And they cannot see a proxy that multiplexes its clients
// over its server connections, where the id read at connect need not name
// the server connection of a later statement. The lock keeps them
// together: ProxySQL never multiplexes a client connection again once it
// called GET_LOCK (its documentation says so), so behind ProxySQL each of
// enginekit's connections keeps a server connection of its own (the cost
// of a cancel that can be trusted there). A multiplexing proxy that moved
// a connection holding a lock to other server connections would defeat
// this check, as it defeats any KILL by id.
//
// Where GET_LOCK is refused (MariaDB Galera versions with wsrep_on answer
// error 1235, MDEV-30473), a connection has no lock and its statements are
// not stopped on the server: the cancel is reported as not attempted.
// MariaDB 10.11.19 with galera-4 26.4.23 allows GET_LOCK, and its locks are
// each node's own, as the check needs (internal/faults' TestGalera).
type connector struct {
	driver.Connector
	// askFor is the lock name the cancel's connection asks about, given
	// the statement's (nil: the same): tests make it another server's
	// answer (see export_test.go).
	askFor func(lock string) string
}

var _ drv.Canceller = (*connector)(nil)

// identity is what a connection's cancel needs.
type identity struct {
	id     uint64 // the connection's id on its server (CONNECTION_ID())
	lock   string // the name of the user-level lock it holds
	noLock error  // why it holds none: its statements cannot be cancelled
}

// lockPrefix begins the name of each connection's lock.
const lockPrefix = "enginekit.cancel."

// Identify takes the connection's lock and reads its id: one round trip,
// at connect.
func (c *connector) Identify(ctx context.Context, dc driver.Conn) (any, error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	lock := lockPrefix + hex.EncodeToString(b[:])
	vals, err := queryRow(ctx, dc, "SELECT CONNECTION_ID(), GET_LOCK('"+lock+"', 0)")
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me):
		// The server refused the lock (Galera): the connection is fine,
		// its statements cannot be cancelled. Its id is read for the
		// report alone.
		id := &identity{noLock: fmt.Errorf("its server refused GET_LOCK: %w", err)}
		if vals, err = queryRow(ctx, dc, "SELECT CONNECTION_ID()"); err != nil {
			return nil, err
		}
		id.id, _ = asUint(vals[0])
		return id, nil
	case err != nil:
		return nil, err
	}
	id := &identity{lock: lock}
	var ok bool
	if id.id, ok = asUint(vals[0]); !ok {
		return nil, fmt.Errorf("mysql: CONNECTION_ID() answered %v", vals[0])
	}
	if got, _ := asUint(vals[1]); got != 1 {
		id.lock, id.noLock = "", fmt.Errorf("GET_LOCK answered %v", vals[1])
	}
	return id, nil
}

// Cancel stops the statement of the connection that cid describes:
// from a connection of its own, KILL QUERY once its server says that the
// statement's connection holds its lock.
func (c *connector) Cancel(ctx context.Context, cid any) error {
	id := cid.(*identity)
	if id.noLock != nil {
		return fmt.Errorf("KILL QUERY %d not attempted: the connection's server is unknown (%w)", id.id, id.noLock)
	}
	kc, err := c.Connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("KILL QUERY %d: connecting: %w", id.id, err)
	}
	defer kc.Close()
	name := id.lock
	if c.askFor != nil {
		name = c.askFor(name)
	}
	vals, err := queryRow(ctx, kc, "SELECT IS_USED_LOCK('"+name+"')")
	if err != nil {
		return fmt.Errorf("KILL QUERY %d: checking the server: %w", id.id, err)
	}
	if holder, ok := asUint(vals[0]); !ok || holder != id.id {
		return fmt.Errorf("KILL QUERY %d not attempted: %w", id.id, errNotHere)
	}
	ec, ok := kc.(driver.ExecerContext)
	if !ok {
		return fmt.Errorf("KILL QUERY %d: the driver's connection cannot exec", id.id)
	}
	_, err = ec.ExecContext(ctx, "KILL QUERY "+strconv.FormatUint(id.id, 10), nil)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1094 { // ER_NO_SUCH_THREAD: it ended since the check
		return nil
	}
	if err != nil {
		return fmt.Errorf("KILL QUERY %d: %w", id.id, err)
	}
	return nil
}

// errNotHere is why a KILL QUERY was not sent: the server the cancel's
// connection reached has no connection holding the statement's lock.
var errNotHere = errors.New("the statement's connection is not on the server the cancel reached " +
	"(another server answered, or the connection had ended)")

// queryRow runs query, without arguments, on the driver's connection and
// returns its first row.
func queryRow(ctx context.Context, dc driver.Conn, query string) ([]driver.Value, error) {
	qc, ok := dc.(driver.QueryerContext)
	if !ok {
		return nil, errors.New("mysql: the driver's connection cannot query")
	}
	rows, err := qc.QueryContext(ctx, query, nil)
	if err != nil {
		return nil, err
	}
	vals := make([]driver.Value, len(rows.Columns()))
	err = rows.Next(vals)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("mysql: no row")
	}
	return vals, err
}

// asUint reads an unsigned integer the driver returned.
func asUint(v driver.Value) (uint64, bool) {
	switch v := v.(type) {
	case int64:
		return uint64(v), v >= 0
	case uint64:
		return v, true
	case []byte:
		n, err := strconv.ParseUint(string(v), 10, 64)
		return n, err == nil
	case string:
		n, err := strconv.ParseUint(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}
