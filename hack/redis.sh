#!/usr/bin/env bash
# The Redis of one SummonPlatform, for the real-Redis test, loopback only.
#
#   hack/redis.sh start   # render, start both servers, print SUMMON_TEST_REDIS_DIR=...
#   hack/redis.sh stop    # stop both servers by their PIDs
#   hack/redis.sh env     # print the env line if both servers run
#
# Summon runs two Redis servers per instance, the cache and the Channels layer. This script starts
# Debian's redis-server (installed if missing) once for each, with exactly the config file the
# instance's Redis config Secret holds: `go run ./internal/testing/redistest/render` takes the files from
# what platform.Sync answers for a fresh install (internal/testing/redistest). The only overrides, on the
# command line after the file, are the port and the bind address (127.0.0.1 instead of every
# address of the pod). internal/testing/redistest checks that the running servers got the files the code
# renders now, then connects with the URLs of the app config file written beside them.
#
# State lives under <repo>/.cache/redis/ (git-ignored, recreated on each start): the rendered files
# (they hold the instance's password, mode 0600), ports, the servers' PIDs and logs. Only stdout
# carries the env line; progress goes to stderr.
#
# Overridable environment:
#   SUMMON_REDIS_PORT           the cache server's port on 127.0.0.1 (default 56479)
#   SUMMON_REDIS_CHANNELS_PORT  the Channels layer server's port (default SUMMON_REDIS_PORT + 1)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
DIR="$REPO_ROOT/.cache/redis"

HOST=127.0.0.1
CACHE_PORT=${SUMMON_REDIS_PORT:-56479}
CHANNELS_PORT=${SUMMON_REDIS_CHANNELS_PORT:-$((CACHE_PORT + 1))}
SERVERS=(cache channels)

log() { printf 'redis.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_of() { case "$1" in cache) echo "$CACHE_PORT" ;; channels) echo "$CHANNELS_PORT" ;; esac; }
env_line() { printf 'SUMMON_TEST_REDIS_DIR=%s\n' "$DIR"; }

# A PID that exists, is not a zombie, and runs redis-server.
pid_is_redis() {
	[[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
	local state
	state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true)
	[[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q redis-server
}
read_pid() { [[ -s "$1" ]] && head -n1 "$1" | tr -dc '0-9' || true; }
listening() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

running() {
	local s
	for s in "${SERVERS[@]}"; do
		pid_is_redis "$(read_pid "$DIR/$s.pid")" && listening "$(port_of "$s")" || return 1
	done
}

install_redis() {
	command -v apt-get >/dev/null || die "redis-server not found and apt-get is unavailable"
	[[ $(id -u) -eq 0 ]] || die "redis-server not found; run this once as root to install it"
	log "installing Debian's redis-server (noninteractive, the system service not started)"
	# policy-rc.d exit 101 keeps the postinst from starting the system service; only add one if the
	# machine has none, and remove it afterwards.
	local policy=/usr/sbin/policy-rc.d added_policy="" rc=0
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	local apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)
	if ! apt-get install "${apt_opts[@]}" redis-server >&2; then
		log "install failed; running apt-get update once and retrying"
		apt-get update -q >&2 && apt-get install "${apt_opts[@]}" redis-server >&2 || rc=$?
	fi
	[[ -n "$added_policy" ]] && rm -f "$policy"
	[[ $rc -eq 0 ]] || die "apt-get install redis-server failed (rc=$rc)"
}

start() {
	command -v redis-server >/dev/null || install_redis
	if running; then
		log "already running (PIDs $(read_pid "$DIR/cache.pid") $(read_pid "$DIR/channels.pid"))"
		env_line
		return 0
	fi
	stop
	local s
	for s in "${SERVERS[@]}"; do
		listening "$(port_of "$s")" && die "port $HOST:$(port_of "$s") is already in use; set SUMMON_REDIS_PORT (and SUMMON_REDIS_CHANNELS_PORT)"
	done
	rm -rf "$DIR"
	mkdir -p "$DIR"
	chmod 700 "$DIR"

	log "rendering the instance's Redis config files with the builder (go run ./internal/testing/redistest/render)"
	(cd "$REPO_ROOT" && go run ./internal/testing/redistest/render "$DIR") || die "rendering the Redis config files failed"
	printf 'cache=%s\nchannels=%s\n' "$CACHE_PORT" "$CHANNELS_PORT" >"$DIR/ports"

	for s in "${SERVERS[@]}"; do
		log "starting the $s server on $HOST:$(port_of "$s") with $DIR/$s.conf"
		# In its own session, so that it outlives this script; its working directory is the state
		# directory, as /data is the container's.
		(cd "$DIR" && exec setsid redis-server "$DIR/$s.conf" --port "$(port_of "$s")" --bind "$HOST" \
			</dev/null >"$DIR/$s.log" 2>&1) &
		echo $! >"$DIR/$s.pid"
	done
	local i
	for ((i = 0; i < 100; i++)); do
		running && break
		sleep 0.1
	done
	if ! running; then
		tail -n 20 "$DIR"/*.log >&2 || true
		stop
		die "redis-server did not start; see $DIR/*.log"
	fi
	log "running (PIDs $(read_pid "$DIR/cache.pid") $(read_pid "$DIR/channels.pid"))"
	env_line
}

stop() {
	local s pid i
	for s in "${SERVERS[@]}"; do
		pid=$(read_pid "$DIR/$s.pid")
		if pid_is_redis "$pid"; then
			log "stopping the $s server (PID $pid)"
			kill -TERM "$pid"
			for ((i = 0; i < 100; i++)); do
				pid_is_redis "$pid" || break
				sleep 0.1
			done
			pid_is_redis "$pid" && die "redis-server (PID $pid) did not stop"
		fi
		rm -f "$DIR/$s.pid"
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) running && env_line || die "not running" ;;
*)
	echo "usage: $0 start|stop|env" >&2
	exit 2
	;;
esac
