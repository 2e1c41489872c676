# shellcheck shell=bash
# Group pgbouncer of scripts/faultdb, which sources this file: PgBouncer
# (Debian's 1.18, installed with apt-get when missing) in transaction
# pooling mode in front of faultdb's private primary, pg-primary, with a
# server pool of PGBOUNCER_POOL_SIZE connections per database and user, so
# that tests can run more clients than there are server connections. Every
# database of pg-primary is reachable through it under its own name
# ([databases] * fallback), so a test's own database is too.
#
#   faultdb up DIR pgbouncer     prints ENGINEKIT_FAULT_PGBOUNCER_DSN (database
#                                test through PgBouncer) and
#                                ENGINEKIT_FAULT_PGBOUNCER_POOL_SIZE
#   faultdb down DIR pgbouncer
#
# It runs as the postgres user (PgBouncer refuses to run as root), on a free
# loopback port, its socket, configuration, log and pid file in DIR/pgbouncer.

readonly PGBOUNCER=/usr/sbin/pgbouncer
readonly PGBOUNCER_POOL_SIZE=${FAULTDB_PGBOUNCER_POOL_SIZE:-4}
PGBOUNCER_PORT= # set while group pgbouncer is up

pgb_dir() { echo "$DIR/pgbouncer"; }
pgb_pidfile() { echo "$DIR/pgbouncer/pgbouncer.pid"; }

# pgb_install installs Debian's pgbouncer when it is missing; the package's
# own service is not started (no systemd here), and would listen on 6432,
# apart from ours.
pgb_install() {
	[[ -x $PGBOUNCER ]] && return 0
	note "pgbouncer is missing: apt-get install pgbouncer"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y pgbouncer >>"$DIR/apt.log" 2>&1; then
		apt-get update >>"$DIR/apt.log" 2>&1 || die "apt-get update failed (see $DIR/apt.log)"
		apt-get install -y pgbouncer >>"$DIR/apt.log" 2>&1 || die "apt-get install pgbouncer failed (see $DIR/apt.log)"
	fi
	[[ -x $PGBOUNCER ]] || die "apt-get installed pgbouncer, but $PGBOUNCER is missing"
}

# pgb_answers succeeds once database test answers through PgBouncer.
pgb_answers() { [[ $(pg_sql "$PGBOUNCER_PORT" test 'SELECT 1' 2>/dev/null) == 1 ]]; }

pgbouncer_up() {
	pgb_install
	# shellcheck disable=SC2046 # the ports are words
	PGBOUNCER_PORT=$(pick_port $(used_ports))
	printf 'PGBOUNCER_PORT=%s\n' "$PGBOUNCER_PORT" >>"$DIR/ports"
	local d
	d=$(pgb_dir)
	install -d -o postgres -g postgres -m 0700 "$d"
	install -o postgres -g postgres -m 0640 /dev/null "$d/log"
	# trust: PgBouncer still wants the user in its auth_file.
	install -o postgres -g postgres -m 0600 /dev/null "$d/userlist.txt"
	echo '"postgres" ""' >"$d/userlist.txt"
	install -o postgres -g postgres -m 0600 /dev/null "$d/pgbouncer.ini"
	cat >"$d/pgbouncer.ini" <<-EOF
		; faultdb: PgBouncer in transaction pooling mode in front of pg-primary
		[databases]
		* = host=127.0.0.1 port=$PG_PRIMARY_PORT

		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $PGBOUNCER_PORT
		unix_socket_dir = $d
		pidfile = $(pgb_pidfile)
		logfile = $d/log
		auth_type = trust
		auth_file = $d/userlist.txt
		admin_users = postgres
		pool_mode = transaction
		default_pool_size = $PGBOUNCER_POOL_SIZE
		min_pool_size = 0
		reserve_pool_size = 0
		max_client_conn = 1000
		server_reset_query =
		ignore_startup_parameters = extra_float_digits
	EOF
	phase
	runuser -u postgres -- "$PGBOUNCER" -d "$d/pgbouncer.ini" >>"$d/log" 2>&1 {lockfd}>&- ||
		fail pgbouncer "pgbouncer did not start"
	wait_until "$WAIT_SECONDS" pgb_answers ||
		fail pgbouncer "database test does not answer through 127.0.0.1:$PGBOUNCER_PORT within ${WAIT_SECONDS}s"
	phase_done "pgbouncer: start"
	cat >"$DIR/pgbouncer.env.tmp" <<-EOF
		ENGINEKIT_FAULT_PGBOUNCER_DSN=postgres://postgres@127.0.0.1:$PGBOUNCER_PORT/test?sslmode=disable
		ENGINEKIT_FAULT_PGBOUNCER_POOL_SIZE=$PGBOUNCER_POOL_SIZE
	EOF
}

# pgbouncer_stop stops PgBouncer (SIGINT: a safe shutdown that drops its
# clients at once) and returns once it is gone; SIGKILL when it does not go
# within WAIT_SECONDS, which fails.
pgbouncer_stop() {
	local pid deadline
	pid=$(pid_of_dir "$(pgb_pidfile)") || return 0
	kill -INT "$pid" 2>/dev/null || true
	deadline=$((SECONDS + WAIT_SECONDS))
	until gone "$pid"; do
		if ((SECONDS >= deadline)); then
			note "pgbouncer: $pid still runs ${WAIT_SECONDS}s after SIGINT: killing it"
			kill -KILL "$pid" 2>/dev/null || true
			return 1
		fi
		sleep 0.05
	done
	rm -f "$(pgb_pidfile)"
}
