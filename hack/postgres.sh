#!/usr/bin/env bash
# Throwaway PostgreSQL server for integration tests, loopback only.
#
#   hack/postgres.sh start   # fresh cluster, start, print SUMMON_TEST_POSTGRES_DSN=...
#   hack/postgres.sh stop    # pg_ctl stop -m fast (stops the postmaster by its PID)
#   hack/postgres.sh env     # print the env line if the server is running
#
# Usage from a shell or CI:  eval "$(hack/postgres.sh start)"; export SUMMON_TEST_POSTGRES_DSN
#
# State lives under <repo>/.cache/postgres/ (git-ignored): data/, run/ (unix
# socket), log/. Every start makes a fresh data dir. The server runs as the
# `postgres` OS user (initdb/postgres refuse root). If that user cannot reach
# the repo (e.g. a checkout under /root, mode 0700) or the socket path would be
# too long, data/ and run/ go to a private directory under ${TMPDIR:-/tmp}
# instead, whose path is recorded in .cache/postgres/state-dir.
# Only stdout carries the env line; progress goes to stderr.
#
# Overridable environment:
#   SUMMON_POSTGRES_PORT      TCP port (default 55432)
#   SUMMON_POSTGRES_HOST      the one address it listens on (default 127.0.0.1); the real node's
#                             tests give it the node's address, inside the node's network namespace
#   SUMMON_POSTGRES_CLIENTS   a CIDR whose clients may log in with a password besides loopback
#                             (default none): the real node's pods
#   SUMMON_POSTGRES_STATE     where its state lives (default <repo>/.cache/postgres), so that a
#                             second server runs beside the first
#   SUMMON_POSTGRES_USER / SUMMON_POSTGRES_PASSWORD superuser (default summon_admin / summon_test_password)
#   SUMMON_POSTGRES_BINDIR    directory with initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
#   SUMMON_POSTGRES_OS_USER   OS user that runs the server (default postgres)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
BASE="${SUMMON_POSTGRES_STATE:-$REPO_ROOT/.cache/postgres}"

HOST=${SUMMON_POSTGRES_HOST:-127.0.0.1}
CLIENTS=${SUMMON_POSTGRES_CLIENTS:-}
PORT=${SUMMON_POSTGRES_PORT:-55432}
PG_USER=${SUMMON_POSTGRES_USER:-summon_admin}
PG_PASS=${SUMMON_POSTGRES_PASSWORD:-summon_test_password}
OS_USER=${SUMMON_POSTGRES_OS_USER:-postgres}
STATE_FILE="$BASE/state-dir" # where data/ and run/ live (normally $BASE itself)
PID_FILE="$BASE/pid"         # postmaster PID, copied from data/postmaster.pid

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

env_line() {
	printf 'SUMMON_TEST_POSTGRES_DSN=postgres://%s:%s@%s:%s/postgres?sslmode=disable\n' "$PG_USER" "$PG_PASS" "$HOST" "$PORT"
}

# A PID that exists and is not a zombie (exited, waiting to be reaped).
pid_alive() {
	[[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
	local state
	state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true)
	[[ -n "$state" && "$state" != Z && "$state" != X ]]
}
read_pid() { [[ -s "$1" ]] && head -n1 "$1" | tr -dc '0-9' || true; }
as_pg() { (cd / && runuser -u "$OS_USER" -- "$@"); } # cd /: the repo may be unreadable to that user

find_bindir() {
	if [[ -n "${SUMMON_POSTGRES_BINDIR:-}" ]]; then
		[[ -x "$SUMMON_POSTGRES_BINDIR/initdb" ]] || die "no initdb in SUMMON_POSTGRES_BINDIR=$SUMMON_POSTGRES_BINDIR"
		echo "$SUMMON_POSTGRES_BINDIR"
		return
	fi
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r b; do
		[[ -x "$b/initdb" && -x "$b/pg_ctl" && -x "$b/postgres" ]] && echo "$b"
	done | tail -n1)
	echo "$d"
}

install_postgres() {
	command -v apt-get >/dev/null || die "PostgreSQL server binaries not found and apt-get is unavailable"
	[[ $(id -u) -eq 0 ]] || die "PostgreSQL server binaries not found; run this once as root to install them"
	log "installing Debian's postgresql (noninteractive, system cluster not started)"
	# policy-rc.d exit 101 keeps the postinst from starting the system cluster;
	# only add one if the machine has none, and remove it afterwards.
	local policy=/usr/sbin/policy-rc.d added_policy="" rc=0
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	local apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)
	if ! apt-get install "${apt_opts[@]}" postgresql >&2; then
		log "install failed; running apt-get update once and retrying"
		apt-get update -q >&2 && apt-get install "${apt_opts[@]}" postgresql >&2 || rc=$?
	fi
	[[ -n "$added_policy" ]] && rm -f "$policy"
	[[ $rc -eq 0 ]] || die "apt-get install postgresql failed (rc=$rc)"
	# If a system cluster got started anyway, stop it (pg_ctlcluster stops the postmaster by PID).
	if command -v pg_lsclusters >/dev/null; then
		local ver name status
		while read -r ver name _ status _; do
			if [[ "$status" == online* ]]; then
				log "stopping system cluster $ver/$name started by the package install"
				pg_ctlcluster "$ver" "$name" stop -m fast >&2 || true
			fi
		done < <(pg_lsclusters -h 2>/dev/null || true)
	fi
}

state_dir() { [[ -s "$STATE_FILE" ]] && cat "$STATE_FILE" || echo "$BASE"; }

# Where the postgres OS user keeps data/ and run/ for this start.
choose_state_dir() {
	local dir="$BASE"
	mkdir -p "$BASE"
	# Unix socket paths are limited to 107 bytes.
	if ! as_pg test -x "$BASE" 2>/dev/null || ((${#BASE} + 24 > 100)); then
		dir=$(mktemp -d "${TMPDIR:-/tmp}/summon-postgres.XXXXXX")
		log "user $OS_USER cannot use $BASE (permissions or path length); using $dir"
	fi
	printf '%s\n' "$dir" >"$STATE_FILE"
	echo "$dir"
}

# Remove a fallback state dir under $TMPDIR (never anything else).
remove_tmp_state() {
	local dir=$1
	if [[ "$dir" != "$BASE" && "$(basename -- "$dir")" == summon-postgres.* && -d "$dir" ]]; then
		# keep the server log next to the others before dropping the data
		mkdir -p "$BASE/log" && cp -f "$dir/log/postgres.log" "$BASE/log/" 2>/dev/null || true
		rm -rf -- "$dir"
	fi
}

is_ready() {
	local dir=$1 pid
	pid=$(read_pid "$dir/data/postmaster.pid")
	pid_alive "$pid" && "$BINDIR/pg_isready" -q -h "$HOST" -p "$PORT" -t 3 >/dev/null 2>&1
}

start() {
	BINDIR=$(find_bindir)
	if [[ -z "$BINDIR" ]]; then
		install_postgres
		BINDIR=$(find_bindir)
		[[ -n "$BINDIR" ]] || die "no /usr/lib/postgresql/*/bin with initdb after installing postgresql"
	fi
	id "$OS_USER" >/dev/null 2>&1 || die "OS user '$OS_USER' does not exist (set SUMMON_POSTGRES_OS_USER)"
	[[ $(id -u) -eq 0 ]] || die "must run as root (to run the server as '$OS_USER' via runuser)"

	local dir
	dir=$(state_dir)
	if is_ready "$dir"; then
		log "already running (PID $(read_pid "$dir/data/postmaster.pid"))"
		env_line
		return 0
	fi
	# Not healthy: stop whatever is left of a previous start, then start fresh.
	if [[ -d "$dir/data" ]] && pid_alive "$(read_pid "$dir/data/postmaster.pid")"; then
		log "found a previous server that is not ready; stopping it first"
		stop
	fi
	if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
		die "port $HOST:$PORT is already in use; set SUMMON_POSTGRES_PORT"
	fi
	remove_tmp_state "$dir"
	rm -rf "$BASE"
	dir=$(choose_state_dir)

	mkdir -p "$dir/data" "$dir/run" "$dir/log" "$BASE/log"
	chown "$OS_USER:" "$dir/data" "$dir/run" "$dir/log"
	chmod 700 "$dir/data" "$dir/run"
	[[ "$dir" == "$BASE" ]] || chown "$OS_USER:" "$dir"

	local pwfile="$dir/run/pwfile"
	printf '%s\n' "$PG_PASS" >"$pwfile"
	chown "$OS_USER:" "$pwfile"
	chmod 600 "$pwfile"

	log "initdb ($BINDIR) in $dir/data"
	if ! as_pg "$BINDIR/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$pwfile" \
		--auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 --no-sync \
		>"$BASE/log/initdb.log" 2>&1; then
		rm -f "$pwfile"
		tail -n 20 "$BASE/log/initdb.log" >&2 || true
		die "initdb failed; see $BASE/log/initdb.log"
	fi
	rm -f "$pwfile"

	# Loopback TCP with password auth; unix socket only inside run/ (mode 0700).
	cat >"$dir/data/pg_hba.conf" <<EOF
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   $HOST/32   scram-sha-256
EOF
	if [[ -n "$CLIENTS" ]]; then
		printf 'host    all       all   %s   scram-sha-256\n' "$CLIENTS" >>"$dir/data/pg_hba.conf"
	fi
	cat >>"$dir/data/postgresql.conf" <<EOF

# --- hack/postgres.sh: throwaway test server ---
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$dir/run'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
max_connections = 200
# Throwaway data: durability is not needed, speed is.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
	chown "$OS_USER:" "$dir/data/pg_hba.conf"

	log "starting postgres on $HOST:$PORT"
	if ! as_pg "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/log/postgres.log" -w -t 60 start >"$BASE/log/pg_ctl.log" 2>&1; then
		tail -n 20 "$dir/log/postgres.log" "$BASE/log/pg_ctl.log" >&2 || true
		die "pg_ctl start failed; see $dir/log/ and $BASE/log/"
	fi
	read_pid "$dir/data/postmaster.pid" >"$PID_FILE"
	is_ready "$dir" || die "postgres started but is not ready on $HOST:$PORT; see $dir/log/postgres.log"
	log "running (PID $(cat "$PID_FILE"))"
	env_line
}

stop() {
	local dir pid
	dir=$(state_dir)
	pid=$(read_pid "$dir/data/postmaster.pid")
	[[ -n "$pid" ]] || pid=$(read_pid "$PID_FILE")
	if ! pid_alive "$pid"; then
		log "not running"
		rm -f "$PID_FILE"
		return 0
	fi
	BINDIR=${BINDIR:-$(find_bindir)}
	log "stopping postgres (PID $pid)"
	if [[ -n "$BINDIR" && -f "$dir/data/postmaster.pid" ]] &&
		as_pg "$BINDIR/pg_ctl" -D "$dir/data" stop -m fast -w -t 60 >&2; then
		:
	else
		# pg_ctl unusable (data dir gone?): fall back to the postmaster PID, if it still is one.
		if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q postgres; then
			log "pg_ctl stop failed; sending SIGINT (fast shutdown) to PID $pid"
			kill -INT "$pid" 2>/dev/null || true
			local i
			for ((i = 0; i < 300; i++)); do
				pid_alive "$pid" || break
				sleep 0.1
			done
			pid_alive "$pid" && die "postgres (PID $pid) did not stop"
		fi
	fi
	rm -f "$PID_FILE"
	remove_tmp_state "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env)
	BINDIR=$(find_bindir)
	[[ -n "$BINDIR" ]] && is_ready "$(state_dir)" && env_line || die "not running"
	;;
*)
	echo "usage: $0 start|stop|env" >&2
	exit 2
	;;
esac
