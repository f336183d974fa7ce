#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from their Go modules (pinned in
# hack/kubetools/go.mod) into .cache/kube/v<version>/ for envtest, unless they
# are already there. Needs only Go and the Go module proxy.
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

out="$root/.cache/kube/$version"
mkdir -p "$out"

# Serialise concurrent runs (e.g. two test packages asking at once).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$out/.lock"
	flock 9
fi

# binary name -> main package
declare -A pkgs=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[etcd]=go.etcd.io/etcd/server/v3
	[kubectl]=k8s.io/kubernetes/cmd/kubectl
)

# Same stamping as Kubernetes' hack/lib/version.sh, so that version checks
# (kubectl version, the API server's emulation version) see a real release
# instead of v0.0.0-master.
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

# A change to the pins (go.mod/go.sum) or to the build flags invalidates the
# binaries already built.
stamp="$( (cat "$tools_dir/go.mod" "$tools_dir/go.sum"; for b in kube-apiserver etcd kubectl; do echo "$b=${pkgs[$b]}"; done; echo "$ldflags") | sha256sum | cut -d' ' -f1)"
if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" != "$stamp" ]]; then
	log "pins changed since the last build; rebuilding in $out"
	rm -f "$out/kube-apiserver" "$out/etcd" "$out/kubectl" "$out/.stamp"
fi

missing=()
for bin in kube-apiserver etcd kubectl; do
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
	printf '%s\n' "$stamp" >"$out/.stamp"
else
	log "kube-apiserver, etcd and kubectl $version already in $out"
fi

printf '%s\n' "$out"
