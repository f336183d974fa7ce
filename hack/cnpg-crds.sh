#!/usr/bin/env bash
# CloudNativePG's Cluster CRD, of the release Summon's Cluster child targets, for the API-server
# tests. It comes from CNPG's Go module (config/crd/bases/ is part of it), which the Go module proxy
# serves and the Go module cache keeps outside the clone; nothing is vendored into the repository.
# The module's version list is not served: the version is pinned here, exactly.
#
#   export "$(hack/cnpg-crds.sh)"    # SUMMON_TEST_CNPG_CRDS=<the CRD file>
#
# Only stdout carries the env line; progress goes to stderr.
set -euo pipefail

# The CNPG release that pkg/children/postgres.go builds its Cluster for.
CNPG_VERSION=v1.27.1
MODULE=github.com/cloudnative-pg/cloudnative-pg

log() { printf 'cnpg-crds.sh: %s\n' "$*" >&2; }

# Outside any module, so that nothing of the repository's go.mod or go.sum is touched.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "fetching $MODULE@$CNPG_VERSION into the Go module cache (once)"
dir=$(cd "$tmp" && GOFLAGS=-mod=mod GOWORK=off go mod download -json "$MODULE@$CNPG_VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
crd="$dir/config/crd/bases/postgresql.cnpg.io_clusters.yaml"
[[ -n "$dir" && -s "$crd" ]] || { log "no Cluster CRD at '$crd'"; exit 1; }
printf 'SUMMON_TEST_CNPG_CRDS=%s\n' "$crd"
