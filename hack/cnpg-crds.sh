#!/usr/bin/env bash
# CloudNativePG's Cluster and Backup CRDs, of the release Summon's children target, for the
# API-server tests. They come from CNPG's Go module (config/crd/bases/ is part of it), which the Go
# module proxy serves and the Go module cache keeps outside the clone; nothing is vendored into the
# repository. The module's version list is not served: the version is pinned here, exactly. The two
# go into one file, in Summon's cache outside the clone, so that a test installs and removes them
# together, as CNPG's install does.
#
#   export "$(hack/cnpg-crds.sh)"    # SUMMON_TEST_CNPG_CRDS=<the CRDs file>
#
# Only stdout carries the env line; progress goes to stderr.
set -euo pipefail

# The CNPG release that pkg/children/postgres.go builds its Cluster and Backup for.
CNPG_VERSION=v1.27.1
MODULE=github.com/cloudnative-pg/cloudnative-pg

log() { printf 'cnpg-crds.sh: %s\n' "$*" >&2; }

# Outside any module, so that nothing of the repository's go.mod or go.sum is touched.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "fetching $MODULE@$CNPG_VERSION into the Go module cache (once)"
dir=$(cd "$tmp" && GOFLAGS=-mod=mod GOWORK=off go mod download -json "$MODULE@$CNPG_VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
bases="$dir/config/crd/bases"
for kind in clusters backups; do
	[[ -n "$dir" && -s "$bases/postgresql.cnpg.io_$kind.yaml" ]] || { log "no $kind CRD in '$bases'"; exit 1; }
done
out="${SUMMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/summon}/cnpg/$CNPG_VERSION"
mkdir -p "$out"
# Written aside and renamed, so that a reader never sees half a file.
{ cat "$bases/postgresql.cnpg.io_clusters.yaml"; printf -- '---\n'; cat "$bases/postgresql.cnpg.io_backups.yaml"; } >"$out/.crds.yaml.$$"
mv "$out/.crds.yaml.$$" "$out/crds.yaml"
printf 'SUMMON_TEST_CNPG_CRDS=%s\n' "$out/crds.yaml"
