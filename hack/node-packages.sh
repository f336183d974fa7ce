#!/usr/bin/env bash
# Installs what the real node (internal/testing/realnode) runs beside the kube binaries, unless it is
# there: Debian's containerd, runc, the CNI plugins (bridge, host-local, portmap), iptables and
# conntrack for kube-proxy. Nothing but apt-get downloads anything. The package's own service is
# not started: the node starts containerd itself, inside its namespace, with its own config.
#
# Prints the CNI plugin directory (the last line of stdout):
#   export SUMMON_CNI_BIN_DIR="$(hack/node-packages.sh | tail -n 1)"
set -euo pipefail

log() { printf 'node-packages: %s\n' "$*" >&2; }

cni_dir=/usr/lib/cni
have() {
	command -v containerd >/dev/null && command -v ctr >/dev/null && command -v runc >/dev/null &&
		command -v iptables >/dev/null && command -v conntrack >/dev/null && [[ -x $cni_dir/bridge ]] &&
		[[ -x $cni_dir/host-local ]] && [[ -x $cni_dir/portmap ]]
}

if ! have; then
	if [ "$(id -u)" -ne 0 ]; then
		log "containerd, runc, the CNI plugins, iptables or conntrack are missing; installing them needs root"
		exit 1
	fi
	log "installing Debian's containerd, runc, containernetworking-plugins, iptables, conntrack (about a minute)"
	export DEBIAN_FRONTEND=noninteractive
	# A policy-rc.d that refuses keeps the package scripts from starting containerd on the host.
	policy=/usr/sbin/policy-rc.d
	own_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		own_policy=1
	fi
	trap '[[ -n $own_policy ]] && rm -f "$policy"' EXIT
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends containerd runc containernetworking-plugins iptables conntrack >&2
	have || { log "installed, but something is still missing"; exit 1; }
fi
log "$(containerd --version), $(runc --version | head -n1)"
echo "$cni_dir"
