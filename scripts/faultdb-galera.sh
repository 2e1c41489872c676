# shellcheck shell=bash
# faultdb-galera.sh is sourced by scripts/faultdb: group galera, a 3-node
# MariaDB Galera cluster (galera-4, rsync state transfer) on loopback.
#
# Servers galera1, galera2 and galera3, each with its own directory
# DIR/galeraN (data, my.cnf, log, socket) and four loopback ports: SQL,
# group communication (galera's 4567), incremental state transfer (IST,
# 4568) and rsync's state snapshot transfer (SST, 4444). faultdb up DIR
# galera bootstraps galera1 (--wsrep-new-cluster) and joins galera2, then
# galera3, each by SST from a node already in; kill-one SIGKILLs a node
# (its process group: an SST's rsync goes with it), start-one starts it
# again, without --wsrep-new-cluster: it rejoins the others (IST from
# their gcache, else SST) and answers once Synced. A node is up when root
# answers over TCP and wsrep_local_state_comment is Synced.
#
# Everything small: 32M buffer pool, 16M redo log, 32M gcache; the
# failure detector's timeouts are cut from 5s/15s to 2s/4s so that a
# killed node leaves the group within a few seconds.
#
# It uses faultdb's helpers (die, fail, note, wait_until, pick_port,
# pid_of_dir, gone, phase...) and variables (DIR, WAIT_SECONDS, MARIADBD).

readonly GALERA_NODES=(galera1 galera2 galera3)
readonly GALERA_PROVIDER=/usr/lib/galera/libgalera_smm.so

# Set from DIR/ports while group galera is up: per node N, its SQL port
# GALERAN_PORT, group communication GALERAN_GCOMM, IST GALERAN_IST and SST
# GALERAN_SST.
GALERA1_PORT= GALERA1_GCOMM= GALERA1_IST= GALERA1_SST=
GALERA2_PORT= GALERA2_GCOMM= GALERA2_IST= GALERA2_SST=
GALERA3_PORT= GALERA3_GCOMM= GALERA3_IST= GALERA3_SST=

is_galera() { [[ $1 == galera[123] ]]; }

# galera_var NODE KIND prints the port KIND (PORT, GCOMM, IST, SST) of NODE.
galera_var() {
	local n=${1#galera} v
	v=GALERA${n}_$2
	echo "${!v}"
}

# galera_ports prints the ports of group galera that are set.
galera_ports() {
	echo "$GALERA1_PORT $GALERA1_GCOMM $GALERA1_IST $GALERA1_SST" \
		"$GALERA2_PORT $GALERA2_GCOMM $GALERA2_IST $GALERA2_SST" \
		"$GALERA3_PORT $GALERA3_GCOMM $GALERA3_IST $GALERA3_SST"
}

# galera_need_packages installs galera-4 and rsync when missing (Debian's
# packages: the cluster's provider and its state transfer).
galera_need_packages() {
	local missing=()
	[[ -e $GALERA_PROVIDER ]] || missing+=(galera-4)
	command -v rsync >/dev/null || missing+=(rsync)
	[[ -x /usr/bin/wsrep_sst_rsync ]] || missing+=(mariadb-server)
	((${#missing[@]} == 0)) && return 0
	note "galera: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y "${missing[@]}" >>"$DIR/galera-apt.log" 2>&1 ||
		{ apt-get update >>"$DIR/galera-apt.log" 2>&1 && apt-get install -y "${missing[@]}" >>"$DIR/galera-apt.log" 2>&1; } ||
		die "apt-get install ${missing[*]} failed (see $DIR/galera-apt.log)"
	[[ -e $GALERA_PROVIDER ]] || die "galera-4 is installed but $GALERA_PROVIDER is missing"
}

galera_sock() { echo "$DIR/$1/mysqld.sock"; }
galera_pidfile() { echo "$DIR/$1/mysqld.pid"; }

galera_tcp() {
	mariadb --no-defaults --connect-timeout=3 -h 127.0.0.1 -P "$(galera_var "$1" PORT)" -u root -N -B -e "$2"
}
galera_socket() { mariadb --no-defaults --connect-timeout=3 -S "$(galera_sock "$1")" -u root -N -B -e "$2"; }

# galera_synced NODE [socket]: root answers over TCP (or the socket) and
# the node is Synced with the cluster's primary component.
galera_synced() {
	local how=galera_tcp
	[[ ${2:-} == socket ]] && how=galera_socket
	[[ $($how "$1" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
		WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT'" 2>/dev/null) == Synced ]]
}

# galera_size NODE N: NODE sees a primary component of N nodes.
galera_size() {
	[[ $(galera_tcp "$1" "SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY VARIABLE_NAME) FROM information_schema.GLOBAL_STATUS
		WHERE VARIABLE_NAME IN ('WSREP_CLUSTER_SIZE', 'WSREP_CLUSTER_STATUS')" 2>/dev/null) == "$2,Primary" ]]
}

# galera_config NODE writes NODE's my.cnf: mariadbd reads it alone
# (--defaults-file), and so do the SST scripts it runs, so that the
# shared server's /etc/mysql never applies.
galera_config() {
	local node=$1 d=$DIR/$1 peers=() n
	for n in "${GALERA_NODES[@]}"; do
		peers+=("127.0.0.1:$(galera_var "$n" GCOMM)")
	done
	local IFS=,
	cat >"$d/my.cnf" <<-EOF
		# faultdb: $node of group galera
		[mysqld]
		user = mysql
		datadir = $d/data
		port = $(galera_var "$node" PORT)
		bind-address = 127.0.0.1
		socket = $(galera_sock "$node")
		pid-file = $(galera_pidfile "$node")
		log-error = $d/log
		skip-name-resolve
		max-connections = 300
		innodb-buffer-pool-size = 32M
		innodb-log-file-size = 16M
		innodb-autoinc-lock-mode = 2
		default-storage-engine = InnoDB
		binlog-format = ROW
		wsrep-on = ON
		wsrep-provider = $GALERA_PROVIDER
		wsrep-cluster-name = faultdb
		wsrep-cluster-address = gcomm://${peers[*]}
		wsrep-node-name = $node
		wsrep-node-address = 127.0.0.1:$(galera_var "$node" GCOMM)
		wsrep-sst-method = rsync
		wsrep-sst-receive-address = 127.0.0.1:$(galera_var "$node" SST)
		wsrep-slave-threads = 2
		wsrep-provider-options = "gmcast.listen_addr=tcp://127.0.0.1:$(galera_var "$node" GCOMM);ist.recv_addr=127.0.0.1:$(galera_var "$node" IST);gcache.size=32M;gcache.page_size=16M;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.install_timeout=PT4S;pc.wait_prim_timeout=PT30S"
	EOF
}

# galera_init writes each node's my.cnf and makes galera1's data
# directory (mariadb-install-db); the others' stay empty until they join:
# their SST fills them.
galera_init() {
	local node d
	for node in "${GALERA_NODES[@]}"; do
		d=$DIR/$node
		install -d -o mysql -g mysql -m 0750 "$d"
		install -o mysql -g mysql -m 0640 /dev/null "$d/log"
		[[ $node == galera1 ]] || install -d -o mysql -g mysql -m 0750 "$d/data"
		galera_config "$node"
	done
	d=$DIR/galera1
	(cd "$d" && runuser -u mysql -- mariadb-install-db --no-defaults --datadir="$d/data" \
		--auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
		>>"$d/log" 2>&1) || fail galera1 "mariadb-install-db failed"
}

# galera_launch NODE [new] starts mariadbd for NODE in a session of its
# own (kill-one kills its process group); new bootstraps a cluster. A
# node that crashed left no position in grastate.dat: it is read from
# InnoDB first, so that the node asks the others for the writesets it
# missed (IST) rather than a copy of everything (SST).
galera_launch() {
	local node=$1 d=$DIR/$1 pos=
	if [[ -z ${2:-} ]] && grep -q '^seqno: *-1' "$d/data/grastate.dat" 2>/dev/null; then
		pos=$(galera_recover "$node")
	fi
	setsid "$MARIADBD" --defaults-file="$d/my.cnf" ${2:+--wsrep-new-cluster} \
		${pos:+--wsrep-start-position="$pos"} </dev/null >>"$d/log" 2>&1 {lockfd}>&- &
	echo $!
}

# galera_recover NODE prints the position NODE's InnoDB has committed up
# to (mariadbd --wsrep-recover, which starts InnoDB, logs it and exits),
# or nothing.
galera_recover() {
	local d=$DIR/$1 log=$DIR/$1/recover.log
	rm -f "$log"
	timeout "$WAIT_SECONDS" "$MARIADBD" --defaults-file="$d/my.cnf" --wsrep-recover \
		--log-error="$log" </dev/null >/dev/null 2>&1 {lockfd}>&- || true
	sed -n 's/.*WSREP: Recovered position: *\([0-9a-f-]*:[0-9-]*\).*/\1/p' "$log" 2>/dev/null | tail -n 1
}

# galera_start NODE [new] starts NODE unless it runs and returns once it
# is Synced (a joiner first receives its state: SST or IST) and root
# gets in over TCP; new bootstraps a cluster.
galera_start() {
	local node=$1 pid
	if pid=$(pid_of_dir "$(galera_pidfile "$node")") && ! gone "$pid"; then
		:
	else
		rm -f "$(galera_pidfile "$node")"
		[[ -n ${2:-} ]] || galera_need_peer "$node"
		pid=$(galera_launch "$node" "${2:-}")
	fi
	galera_wait "$node" "$pid"
}

# galera_wait NODE PID [setup] is galera_start's wait for NODE's
# mariadbd, PID; setup lets root in from 127.0.0.1 and creates database
# test once the node answers on its socket.
galera_wait() {
	local node=$1 pid=$2 deadline=$((SECONDS + WAIT_SECONDS))
	until galera_synced "$node" socket; do
		gone "$pid" && fail "$node" "mariadbd (pid $pid) exited while starting"
		((SECONDS < deadline)) || fail "$node" "is not Synced on $(galera_sock "$node") within ${WAIT_SECONDS}s"
		sleep 0.2
	done
	if [[ -n ${3:-} ]]; then
		galera_socket "$node" "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
			GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
			CREATE DATABASE IF NOT EXISTS test;" >>"$DIR/$node/log" 2>&1 ||
			fail "$node" "cannot let root in over TCP or create database test"
	fi
	wait_until "$WAIT_SECONDS" galera_synced "$node" ||
		fail "$node" "root does not get in over 127.0.0.1:$(galera_var "$node" PORT) within ${WAIT_SECONDS}s"
}

# galera_need_peer NODE fails unless another node runs: a node that is
# not bootstrapped waits for a peer to join (pc.wait_prim_timeout).
galera_need_peer() {
	local n pid
	for n in "${GALERA_NODES[@]}"; do
		[[ $n != "$1" ]] || continue
		pid=$(pid_of_dir "$(galera_pidfile "$n")") && ! gone "$pid" && return 0
	done
	die "$1: no other node of group galera runs: it has no cluster to join (faultdb down, then up, starts a new one)"
}

# galera_stop NODE SIGNAL [SECONDS] stops NODE (TERM: clean shutdown;
# KILL: crash, its whole process group) and waits until it is gone, at
# most SECONDS (default WAIT_SECONDS).
galera_stop() {
	local node=$1 sig=$2 limit=${3:-$WAIT_SECONDS} pid deadline
	pid=$(pid_of_dir "$(galera_pidfile "$node")") || return 0
	if [[ $sig == KILL ]]; then
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	else
		kill -s "$sig" "$pid" 2>/dev/null || true
	fi
	deadline=$((SECONDS + limit))
	until gone "$pid"; do
		((SECONDS < deadline)) || fail "$node" "mariadbd $pid still runs ${limit}s after SIG$sig"
		sleep 0.1
	done
	rm -f "$(galera_pidfile "$node")"
}

# galera_stop_surely NODE stops NODE for down and stop, which remove its
# directory: a clean shutdown if it takes at most 15s (a joiner waiting
# for its state transfer may never act on SIGTERM), else SIGKILL.
galera_stop_surely() {
	[[ -d $DIR/$1 ]] || return 0
	(galera_stop "$1" TERM 15 2>/dev/null) && return 0
	note "$1: no clean shutdown within 15s: killing it"
	galera_stop "$1" KILL
}

galera_server_pid() { pid_of_dir "$(galera_pidfile "$1")"; }

# galera_up starts group galera and writes DIR/galera.env.tmp.
galera_up() {
	galera_need_packages
	local node n kind
	for node in "${GALERA_NODES[@]}"; do
		n=${node#galera}
		for kind in PORT GCOMM IST SST; do
			# shellcheck disable=SC2046 # the ports are words
			printf -v "GALERA${n}_$kind" %s "$(pick_port $(used_ports) $(galera_ports))"
		done
	done
	for node in "${GALERA_NODES[@]}"; do
		n=${node#galera}
		for kind in PORT GCOMM IST SST; do
			echo "GALERA${n}_$kind=$(galera_var "$node" "$kind")"
		done
	done >>"$DIR/ports"
	phase
	galera_init
	phase_done "galera: mariadb-install-db"
	phase
	local pid
	pid=$(galera_launch galera1 new)
	galera_wait galera1 "$pid" setup
	phase_done "galera1: bootstrap"
	# One joiner at a time: a node gives one state transfer at once.
	for node in galera2 galera3; do
		phase
		galera_start "$node"
		phase_done "$node: join (rsync SST)"
	done
	wait_until "$WAIT_SECONDS" galera_size galera1 3 ||
		fail galera1 "does not see a primary component of 3 nodes within ${WAIT_SECONDS}s"
	cat >"$DIR/galera.env.tmp" <<-EOF
		ENGINEKIT_FAULT_GALERA1_DSN=root@tcp(127.0.0.1:$GALERA1_PORT)/test
		ENGINEKIT_FAULT_GALERA2_DSN=root@tcp(127.0.0.1:$GALERA2_PORT)/test
		ENGINEKIT_FAULT_GALERA3_DSN=root@tcp(127.0.0.1:$GALERA3_PORT)/test
	EOF
}

# galera_down_ports forgets group galera's ports.
galera_down_ports() { sed -i '/^GALERA[123]_/d' "$DIR/ports"; }
