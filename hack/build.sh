#!/usr/bin/env bash
# Builds the summon binary exactly as the Dockerfile does (static, no cgo, reproducible paths):
# CI runs this where no Docker engine is available. The binary goes to .cache/bin/summon, or to
# the path given as the first argument; summonctl, the CLI, is built the same way beside it.
# stdout is the path of summon.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-.cache/bin/summon}
mkdir -p "$(dirname "$out")"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out" ./cmd/summon
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$(dirname "$out")/summonctl" ./cmd/summonctl
echo "$out"
