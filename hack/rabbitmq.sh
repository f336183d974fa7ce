#!/usr/bin/env bash
# Throwaway RabbitMQ node for integration tests, loopback only.
#
#   hack/rabbitmq.sh start   # install if needed, start, print SUMMON_TEST_RABBITMQ_URL=...
#   hack/rabbitmq.sh stop    # stop the node (and the epmd it started) by PID
#   hack/rabbitmq.sh env     # print the env line if the node is running
#
# Usage from a shell or CI:  eval "$(hack/rabbitmq.sh start)"; export SUMMON_TEST_RABBITMQ_URL
#
# All state lives under <repo>/.cache/rabbitmq/ (git-ignored). Every start wipes
# the old node data (throwaway). Only stdout carries the env line; progress goes
# to stderr.
#
# Overridable environment:
#   SUMMON_RABBITMQ_PORT       AMQP port            (default 5672)
#   SUMMON_RABBITMQ_MGMT_PORT  management HTTP port (default 15672)
#   SUMMON_RABBITMQ_DIST_PORT  Erlang distribution  (default AMQP port + 20000)
#   SUMMON_RABBITMQ_EPMD_PORT  private epmd port    (default 4370, not the system 4369)
#   SUMMON_RABBITMQ_USER / SUMMON_RABBITMQ_PASSWORD admin credentials
#                              (default summon-admin / summon-test-password)
#   SUMMON_RABBITMQ_START_TIMEOUT seconds to wait for the management API (default 120)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
BASE="$REPO_ROOT/.cache/rabbitmq"

HOST=127.0.0.1
AMQP_PORT=${SUMMON_RABBITMQ_PORT:-5672}
MGMT_PORT=${SUMMON_RABBITMQ_MGMT_PORT:-15672}
DIST_PORT=${SUMMON_RABBITMQ_DIST_PORT:-$((AMQP_PORT + 20000))}
EPMD_PORT=${SUMMON_RABBITMQ_EPMD_PORT:-4370}
ADMIN_USER=${SUMMON_RABBITMQ_USER:-summon-admin}
ADMIN_PASS=${SUMMON_RABBITMQ_PASSWORD:-summon-test-password}
START_TIMEOUT=${SUMMON_RABBITMQ_START_TIMEOUT:-120}
NODENAME="summon-test-${AMQP_PORT}@localhost"

PID_FILE="$BASE/pid"              # beam.smp OS PID (written by RabbitMQ itself)
WRAPPER_PID_FILE="$BASE/wrapper.pid"
EPMD_PID_FILE="$BASE/epmd.pid"
RABBIT_BIN=/usr/lib/rabbitmq/bin  # the real scripts, not Debian's su-wrappers in /usr/sbin

log() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

env_line() {
	printf 'SUMMON_TEST_RABBITMQ_URL=http://%s:%s@%s:%s\n' "$ADMIN_USER" "$ADMIN_PASS" "$HOST" "$MGMT_PORT"
}

# A PID that exists and is not a zombie (exited, waiting to be reaped).
pid_alive() {
	[[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
	local state
	state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true)
	[[ -n "$state" && "$state" != Z && "$state" != X ]]
}
read_pid() { [[ -s "$1" ]] && tr -dc '0-9' <"$1" || true; }

# Environment for every RabbitMQ / Erlang command we run: all state in $BASE.
rabbit_env() {
	export HOME="$BASE/home" # .erlang.cookie lives here, not in /root
	export RABBITMQ_NODENAME="$NODENAME"
	export RABBITMQ_NODE_IP_ADDRESS="$HOST"
	export RABBITMQ_NODE_PORT="$AMQP_PORT"
	export RABBITMQ_DIST_PORT="$DIST_PORT"
	export RABBITMQ_MNESIA_BASE="$BASE/mnesia"
	export RABBITMQ_MNESIA_DIR="$BASE/mnesia/$NODENAME"
	export RABBITMQ_LOG_BASE="$BASE/log"
	export RABBITMQ_LOGS="$BASE/log/rabbit.log"
	export RABBITMQ_PID_FILE="$PID_FILE"
	export RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$BASE/advanced.config"
	export RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins"
	export RABBITMQ_FEATURE_FLAGS_FILE="$BASE/feature_flags"
	export RABBITMQ_QUORUM_DIR="$BASE/mnesia/$NODENAME/quorum"
	export RABBITMQ_STREAM_DIR="$BASE/mnesia/$NODENAME/stream"
	export RABBITMQ_GENERATED_CONFIG_DIR="$BASE/generated"
	export RABBITMQ_SCHEMA_DIR="$BASE/schema"
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
	export ERL_EPMD_ADDRESS="$HOST"
	export ERL_EPMD_PORT="$EPMD_PORT"
	export ERL_CRASH_DUMP="$BASE/log/erl_crash.dump"
}

mgmt_up() {
	curl -fsS -m 5 -u "$ADMIN_USER:$ADMIN_PASS" "http://$HOST:$MGMT_PORT/api/overview" >/dev/null 2>&1
}

port_busy() {
	# true if something already listens on 127.0.0.1:$1 (or on all addresses)
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Stop any RabbitMQ / epmd that the package install left running through the
# init system (we only want our own node). Processes are matched by their
# executable and our own PIDs are never touched.
stop_system_rabbit() {
	local ours pid exe
	ours=" $(read_pid "$PID_FILE") $(read_pid "$EPMD_PID_FILE") "
	for pid in $(pgrep -x beam.smp || true) $(pgrep -x epmd || true); do
		[[ "$ours" == *" $pid "* ]] && continue
		exe=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
		case "$exe" in
		*rabbit* | *epmd*)
			# Only system-wide ones: running as the rabbitmq user or with the default node dir.
			if [[ "$(stat -c %U "/proc/$pid" 2>/dev/null)" == rabbitmq || "$exe" == *"/var/lib/rabbitmq"* ]]; then
				log "stopping system-wide process left by the package install: PID $pid"
				kill "$pid" 2>/dev/null || true
			fi
			;;
		esac
	done
}

install_rabbitmq() {
	[[ -x "$RABBIT_BIN/rabbitmq-server" ]] && return 0
	command -v apt-get >/dev/null || die "rabbitmq-server is not installed and apt-get is unavailable"
	[[ $(id -u) -eq 0 ]] || die "rabbitmq-server is not installed; run this once as root to install it"
	log "installing Debian's rabbitmq-server (noninteractive)"
	# Keep the package's postinst from starting a system-wide node: policy-rc.d
	# exit 101 forbids invoke-rc.d/deb-systemd-invoke starts. Only add one if the
	# machine has none, and remove it afterwards.
	local policy=/usr/sbin/policy-rc.d added_policy=""
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added_policy=1
	fi
	local rc=0
	export DEBIAN_FRONTEND=noninteractive
	local apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)
	if ! apt-get install "${apt_opts[@]}" rabbitmq-server >&2; then
		log "install failed; running apt-get update once and retrying"
		apt-get update -q >&2 && apt-get install "${apt_opts[@]}" rabbitmq-server >&2 || rc=$?
	fi
	[[ -n "$added_policy" ]] && rm -f "$policy"
	[[ $rc -eq 0 ]] || die "apt-get install rabbitmq-server failed (rc=$rc)"
	stop_system_rabbit
	[[ -x "$RABBIT_BIN/rabbitmq-server" ]] || die "$RABBIT_BIN/rabbitmq-server missing after install"
}

# Print the env line if our node is up; returns non-zero otherwise.
already_running() {
	local pid
	pid=$(read_pid "$PID_FILE")
	pid_alive "$pid" && mgmt_up
}

write_config() {
	rm -rf "$BASE"
	mkdir -p "$BASE/home" "$BASE/mnesia" "$BASE/log" "$BASE/generated" "$BASE/schema"
	chmod 700 "$BASE/home"
	# Fresh random cookie per start; only our CLI calls (same HOME) use it.
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$BASE/home/.erlang.cookie"
	chmod 400 "$BASE/home/.erlang.cookie"
	: >"$BASE/rabbitmq-env.conf"
	cat >"$BASE/rabbitmq.conf" <<EOF
listeners.tcp.1 = $HOST:$AMQP_PORT
management.tcp.ip = $HOST
management.tcp.port = $MGMT_PORT
loopback_users = none
default_user = $ADMIN_USER
default_pass = $ADMIN_PASS
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.file.level = info
log.console = false
EOF
	printf '[].\n' >"$BASE/advanced.config"
	printf '%s\n' "$ADMIN_PASS" >"$BASE/admin-password"
	chmod 600 "$BASE/admin-password"
}

# epmd_listener prints the PID of an epmd listening on our private port, if any. Erlang tools
# start one by themselves ("epmd -daemon") when they find none, and it outlives the node; on our
# private port it can only be ours.
epmd_listener() {
	command -v ss >/dev/null 2>&1 || return 0
	ss -ltnpH "sport = :$EPMD_PORT" 2>/dev/null | grep -o 'epmd",pid=[0-9]*' | head -n1 | cut -d= -f2 || true
}

start_epmd() {
	# A private epmd on its own loopback port, started by us so stop can end it by PID.
	local epmd
	epmd=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -n1 || true)
	[[ -n "$epmd" ]] || die "epmd not found (erlang-base missing?)"
	local stray
	stray=$(epmd_listener)
	if [[ -n "$stray" ]]; then
		stop_pid "$stray" 10 "a leftover epmd on our port" epmd
	fi
	if port_busy "$EPMD_PORT"; then
		die "port $HOST:$EPMD_PORT (epmd) is already in use; set SUMMON_RABBITMQ_EPMD_PORT"
	fi
	ERL_EPMD_ADDRESS="$HOST" "$epmd" -address "$HOST" -port "$EPMD_PORT" </dev/null >>"$BASE/log/epmd.log" 2>&1 &
	echo $! >"$EPMD_PID_FILE"
	local i
	for i in $(seq 50); do
		port_busy "$EPMD_PORT" && return 0
		pid_alive "$(read_pid "$EPMD_PID_FILE")" || die "epmd exited; see $BASE/log/epmd.log"
		sleep 0.1
	done
	die "epmd did not listen on $HOST:$EPMD_PORT"
}

start() {
	if already_running; then
		log "already running (PID $(read_pid "$PID_FILE"))"
		env_line
		return 0
	fi
	# A half-dead previous instance (e.g. management not answering): clean it up.
	if pid_alive "$(read_pid "$PID_FILE")" || pid_alive "$(read_pid "$EPMD_PID_FILE")" || pid_alive "$(read_pid "$WRAPPER_PID_FILE")"; then
		log "found a previous instance that is not healthy; stopping it first"
		stop
	fi
	command -v curl >/dev/null || die "curl is required"
	install_rabbitmq

	local p
	for p in "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT"; do
		port_busy "$p" && die "port $HOST:$p is already in use (another RabbitMQ?); set SUMMON_RABBITMQ_*PORT"
	done

	write_config
	rabbit_env
	log "enabling rabbitmq_management (offline)"
	"$RABBIT_BIN/rabbitmq-plugins" --offline enable rabbitmq_management >"$BASE/log/plugins.log" 2>&1 ||
		die "rabbitmq-plugins failed; see $BASE/log/plugins.log"

	start_epmd
	log "starting node $NODENAME (AMQP $HOST:$AMQP_PORT, management $HOST:$MGMT_PORT)"
	setsid "$RABBIT_BIN/rabbitmq-server" </dev/null >>"$BASE/log/stdout.log" 2>&1 &
	echo $! >"$WRAPPER_PID_FILE"

	local deadline=$((SECONDS + START_TIMEOUT))
	until mgmt_up; do
		if ! pid_alive "$(read_pid "$WRAPPER_PID_FILE")" && ! pid_alive "$(read_pid "$PID_FILE")"; then
			tail -n 30 "$BASE/log/stdout.log" >&2 || true
			stop >/dev/null 2>&1 || true
			die "rabbitmq-server exited during start; logs in $BASE/log/"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$BASE/log/stdout.log" >&2 || true
			stop >/dev/null 2>&1 || true
			die "management API did not answer on http://$HOST:$MGMT_PORT within ${START_TIMEOUT}s; logs in $BASE/log/"
		fi
		sleep 0.5
	done
	pid_alive "$(read_pid "$PID_FILE")" || die "management API answers but $PID_FILE has no live PID"
	log "running (PID $(read_pid "$PID_FILE"), epmd PID $(read_pid "$EPMD_PID_FILE"))"
	env_line
}

# Send TERM to a PID and wait up to $2 seconds, then KILL.
stop_pid() {
	local pid=$1 wait_s=$2 name=$3 match=$4 i
	pid_alive "$pid" || return 0
	# Guard against a recycled PID: only signal the process we expect. An empty
	# cmdline means the process is already exiting (zombie): just wait for it.
	local cmd
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
	if [[ -z "$cmd" ]]; then
		for ((i = 0; i < 50; i++)); do
			pid_alive "$pid" || return 0
			sleep 0.1
		done
		return 0
	fi
	if [[ "$cmd" != *"$match"* ]]; then
		log "PID $pid is no longer $name; not touching it"
		return 0
	fi
	log "stopping $name (PID $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < wait_s * 10; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	log "$name (PID $pid) still running after ${wait_s}s; sending KILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	die "could not stop $name (PID $pid)"
}

stop() {
	local beam wrapper epmd
	beam=$(read_pid "$PID_FILE")
	wrapper=$(read_pid "$WRAPPER_PID_FILE")
	epmd=$(read_pid "$EPMD_PID_FILE")
	if ! pid_alive "$beam" && ! pid_alive "$wrapper" && ! pid_alive "$epmd"; then
		log "not running"
	fi
	stop_pid "$beam" 60 "rabbitmq node" beam
	stop_pid "$wrapper" 10 "rabbitmq-server wrapper" rabbitmq
	stop_pid "$epmd" 10 "epmd" epmd
	local stray
	stray=$(epmd_listener)
	if [[ -n "$stray" ]]; then
		stop_pid "$stray" 10 "epmd started by the Erlang tools" epmd
	fi
	rm -f "$PID_FILE" "$WRAPPER_PID_FILE" "$EPMD_PID_FILE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) already_running && env_line || die "not running" ;;
*)
	echo "usage: $0 start|stop|env" >&2
	exit 2
	;;
esac
