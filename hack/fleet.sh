#!/usr/bin/env bash
# The fleet on the real Metacontroller (test/fleet, docs/fleet.md): N SummonPlatforms applied at
# once beside a do-nothing hook, on a test cluster of kube-apiserver, etcd and
# kube-controller-manager's garbage collector. It sets up the kube binaries and the hook binary as
# hack/test.sh does; Metacontroller it never builds: METACONTROLLER_BIN must name a binary built
# outside the project.
#
#   METACONTROLLER_BIN=/path/to/metacontroller hack/fleet.sh                 # N = 100 and 1000
#   SUMMON_FLEET=100 SUMMON_FLEET_SETTINGS='--client-go-qps=5 --client-go-burst=10;--client-go-qps=1000 --client-go-burst=2000' hack/fleet.sh
#
# Settings are separated by ";" (see test/fleet: Metacontroller flags, etag=off, etag-timeout=S,
# etag-cleanup=S); SUMMON_FLEET_HOOKS picks summon and/or noop; SUMMON_FLEET_OUT names a file that
# gets one JSON line per run. Extra arguments go to go test (e.g. -run 'TestFleet/N=100/').
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${METACONTROLLER_BIN:-}" ] || [ ! -x "$METACONTROLLER_BIN" ]; then
  echo "METACONTROLLER_BIN must name a Metacontroller binary (v4.17 or later), built outside the project" >&2
  exit 1
fi
export METACONTROLLER_BIN
export SUMMON_FLEET="${SUMMON_FLEET:-100,1000}"

KUBEBUILDER_ASSETS=$(hack/kube-binaries.sh | tail -n 1)
export KUBEBUILDER_ASSETS
SUMMON_HOOK_BIN="$PWD/$(hack/build.sh)"
export SUMMON_HOOK_BIN

# A thousand instances take minutes per run on 2 cores; -v prints each run's figures as it ends.
go test -count=1 -v -timeout 4h ./test/fleet/ "$@"
