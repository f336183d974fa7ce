#!/usr/bin/env bash
# Builds kube-apiserver, etcd, kubectl, kube-controller-manager and kube-scheduler from their Go
# modules (pinned in hack/kubetools/go.mod) for envtest and the real-controller test cluster,
# and kubelet and kube-proxy for the real node (internal/testing/realnode), unless they are
# already there. Needs only Go and the Go module proxy.
#
# They are cached outside the clone, in ${XDG_CACHE_HOME:-$HOME/.cache}/summon/kube/<version>-<stamp>/,
# keyed by the pins and the build flags: a fresh clone (as in CI) finds them there instead of
# spending most of CI's time rebuilding them. SUMMON_CACHE_DIR moves the whole cache.
#
# Logs go to stderr; the last line on stdout is the binaries' directory, so:
#   export KUBEBUILDER_ASSETS="$(hack/kube-binaries.sh)"
#
# A cold build takes several minutes on 2 cores; a warm run returns at once.
set -euo pipefail

log() { printf 'kube-binaries: %s\n' "$*" >&2; }

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd))"
tools_dir="$root/hack/kubetools"

# The Kubernetes version is whatever hack/kubetools/go.mod pins.
version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' "$tools_dir/go.mod")"
if [[ ! "$version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	log "cannot read the k8s.io/kubernetes version from $tools_dir/go.mod (got '$version')"
	exit 1
fi
major="${BASH_REMATCH[1]}"
minor="${BASH_REMATCH[2]}"


# binary name -> main package
declare -A pkgs=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[etcd]=go.etcd.io/etcd/server/v3
	[kubectl]=k8s.io/kubernetes/cmd/kubectl
	[kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
	[kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
	[kubelet]=k8s.io/kubernetes/cmd/kubelet
	[kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
)
# kubelet and kube-proxy share almost all of the control plane's packages: built after it, they
# cost a few minutes more, not the quarter of an hour they take alone.
bins=(kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kubelet kube-proxy)

# Same stamping as Kubernetes' hack/lib/version.sh, so that version checks
# (kubectl version, the API server's emulation version) see a real release
# instead of v0.0.0-master.
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

# The pins (go.mod/go.sum), the packages, the build flags and the Go version name the build; a
# change to any of them builds into a new directory, and the old one is left for `rm -rf`.
stamp="$( (cat "$tools_dir/go.mod" "$tools_dir/go.sum"; for b in "${bins[@]}"; do echo "$b=${pkgs[$b]}"; done; echo "$ldflags"; go env GOVERSION) | sha256sum | cut -c1-12)"
cache="${SUMMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/summon}"
out="$cache/kube/$version-$stamp"
mkdir -p "$out"

# Serialise concurrent runs (e.g. two test packages asking at once).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$out/.lock"
	flock 9
fi

missing=()
for bin in "${bins[@]}"; do
	[[ -x "$out/$bin" ]] || missing+=("$bin")
done

if ((${#missing[@]} > 0)); then
	command -v go >/dev/null 2>&1 || { log "go is not on PATH"; exit 1; }

	export CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"
	for bin in "${missing[@]}"; do
		log "building $bin from ${pkgs[$bin]} (Kubernetes $version pins) ..."
		start=$SECONDS
		tmp="$out/.$bin.tmp.$$"
		if ! (cd "$tools_dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "${pkgs[$bin]}") >&2; then
			rm -f "$tmp"
			log "building $bin failed"
			exit 1
		fi
		mv -f "$tmp" "$out/$bin"
		log "built $bin in $((SECONDS - start))s"
	done
else
	log "${bins[*]} $version already in $out"
fi

printf '%s\n' "$out"
