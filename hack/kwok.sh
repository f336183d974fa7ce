#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok, the fake kubelet of the real-controller test cluster in
# internal/testing/testcluster) from its Go module, unless it is already there, and copies beside it what
# a standalone kwok needs from the same module: the Stage CRD and the stage objects under
# kustomize/stage/ (standalone kwok has no built-in stages; without them it moves no node and no
# pod). Needs only Go and the Go module proxy.
#
# Cached outside the clone, in ${XDG_CACHE_HOME:-$HOME/.cache}/summon/kwok/<version>/, so a fresh
# clone (as in CI) finds it there. SUMMON_CACHE_DIR moves the whole cache, as for
# hack/kube-binaries.sh.
#
# Logs go to stderr; the last line on stdout is the directory, so:
#   export SUMMON_KWOK_DIR="$(hack/kwok.sh | tail -n 1)"
#
# A cold build takes about 70 s of a quiet machine's 2 cores; a warm run returns at once.
set -euo pipefail

version=v0.8.0

log() { printf 'kwok: %s\n' "$*" >&2; }

cache="${SUMMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/summon}"
out="$cache/kwok/$version"
mkdir -p "$out"

# Serialise concurrent runs.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$out/.lock"
	flock 9
fi

stages=kustomize/stage
crd=kustomize/crd/bases/kwok.x-k8s.io_stages.yaml

if [[ -x "$out/kwok" && -f "$out/$crd" && -d "$out/$stages" ]]; then
	log "kwok $version already in $out"
	printf '%s\n' "$out"
	exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is not on PATH"; exit 1; }
export CGO_ENABLED=0 GOWORK=off GOFLAGS="-buildvcs=false"
# Outside any module: `go install pkg@version` and `go mod download` then ignore this repository's
# go.mod (kwok has no replace directives, so it installs as a module of its own).
cd "$out"

if [[ ! -x "$out/kwok" ]]; then
	log "building kwok $version from sigs.k8s.io/kwok/cmd/kwok ..."
	start=$SECONDS
	bin="$out/.bin.$$"
	rm -rf "$bin"
	if ! GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$version" >&2; then
		rm -rf "$bin"
		log "building kwok failed"
		exit 1
	fi
	mv -f "$bin/kwok" "$out/kwok"
	rm -rf "$bin"
	log "built kwok in $((SECONDS - start))s"
fi

moddir="$(go mod download -json "sigs.k8s.io/kwok@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$moddir" || ! -f "$moddir/$crd" || ! -d "$moddir/$stages" ]]; then
	log "can't find the Stage CRD and stages in the module sigs.k8s.io/kwok@$version (got '$moddir')"
	exit 1
fi
rm -rf "$out/kustomize"
mkdir -p "$out/$(dirname "$crd")"
cp "$moddir/$crd" "$out/$crd"
cp -R "$moddir/$stages" "$out/$stages"
# The module cache is read-only; the copies need not be. Only the YAML is data.
chmod -R u+w "$out/kustomize"
find "$out/kustomize" -type f ! -name '*.yaml' -delete
log "copied the Stage CRD and stages of sigs.k8s.io/kwok@$version into $out/kustomize"

printf '%s\n' "$out"
