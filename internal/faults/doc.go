// Package faults is enginekit's fault suite. It has no code of its own:
// its tests run enginekit against real database servers while those
// servers restart, crash, stop, lose connections or run out of them, and
// check what an application needs to rely on:
//
//   - a server restarted or crashed under 32 writers: the pool recovers
//     without restarting the application, no caller fails once the server
//     answers again (also when the pool held connections idle through the
//     restart), no transaction reported committed is missing, none that
//     failed (other than with session.ErrAmbiguousCommit) is present, and
//     nothing is half committed; restarted a moment after the pool's
//     connections were last used, at most the first caller meets one dead;
//   - a server paused (SIGSTOP) for 5 s under 32 writers whose
//     transactions have a 2 s deadline: every call returns within a
//     second of its deadline, none is lost or half committed, and once the
//     server is continued the pool commits again;
//   - connections killed from the server side (pg_terminate_backend,
//     MariaDB KILL) between statements, during one or before COMMIT: a
//     clear error, or a successful retry of a read-only scope, never a
//     hang nor a partial commit;
//   - the database down when the application starts: the start fails
//     within ConnectTimeout with dbfx.ErrConnect, or succeeds when the
//     database comes up within it;
//   - read replicas: read-only scopes are served by the replica, writes
//     and SERIALIZABLE reads by the primary; a stopped replica's reads fall
//     back to the primary within about one HealthInterval and come back to
//     it once it is up; Health reports it and its lag;
//   - failover: a PostgreSQL primary crashed under 32 writers and its
//     synchronous standby promoted (faultdb's group pg-ha, which the test
//     starts and takes down): one engine, given both servers in one DSN
//     with target_session_attrs=read-write, writes on the promoted standby
//     without a restart; every transaction reported committed is there,
//     and every failure is a ctx error, session.ErrAmbiguousCommit or a
//     lost connection, within the transaction's deadline; the row says how
//     long writes stopped;
//   - a MariaDB Galera cluster of three nodes (faultdb's group galera,
//     started once by TestGalera for its three faults): three engines,
//     one per node, writing the same rows at once meet certification
//     conflicts (1213, at COMMIT or on a statement) that Manager.Tx
//     retries, and every node ends with each committed transaction once
//     and counters that match them (lost 0, duplicated 0); one engine
//     given every node (Config.FailoverAddrs) writes on through the others
//     when its node is killed, every failure a lost connection or an
//     ambiguous commit within its deadline, and the node rejoins, Synced
//     in a cluster of 3 with every committed transaction; a statement
//     past its deadline on a node returns the ctx error and is stopped on
//     that node (or, where Galera refuses GET_LOCK, runs to its end);
//   - PgBouncer 1.18 in transaction pooling mode in front of PostgreSQL,
//     with a server pool of 4 and 32 clients (faultdb's group pgbouncer):
//     without Config.TransactionPooling statements with arguments fail
//     (prepared statements met on another server connection) or answer
//     another client's statement; with it, statements, repository CRUD
//     and Page, Nested savepoints, RequiresNew, read-only scopes and
//     retried serialization failures and deadlocks all work;
//   - replica lag: the replica's replay paused under a write; with
//     Config.MaxReplicaLag reads leave it for the primary and Health
//     reports it lagging, and come back once it caught up; a replica of
//     an idle primary is not taken for a lagging one; a ctx marked by
//     session's ReadYourWrites reads its write from the primary while
//     others read the stale replica, and the replica once it replayed it;
//   - an application stopped under load, with time enough to let its
//     scopes finish and without: each scope commits or fails with
//     session.ErrClosed or a ctx error, none is cut mid-commit, the pools
//     close, no goroutine is left;
//   - a pool of 10 under 500 goroutines: those that wait longer than
//     AcquireTimeout fail quickly with session.ErrAcquireTimeout, the rest
//     succeed.
//
// Every test checks for connections or scopes left over
// (fxtest.RequireNoLeaks) and goroutines left over (goleak), and logs its
// outcome as one line:
//
//	FAULT-TABLE | fault | attempted=N | committed=N | failed=N(class:n, ...) | ambiguous=N | lost=0 | ...
//
// The servers are the private ones of scripts/faultdb, never the shared
// servers the other tests use, since the tests stop, pause and restart them:
//
//	scripts/faultdb run "$(mktemp -d)" -- go test -race -count=1 -v ./internal/faults/
//
// Without ENGINEKIT_FAULT_DIR (set by faultdb) every test skips, unless
// ENGINEKIT_TEST_REQUIRE names "faults": then they fail. The tests run one
// after the other, never in parallel, and leave every server up.
package faults
