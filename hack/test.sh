#!/usr/bin/env bash
# The one command that installs what Summon's tests need and runs them all: it builds a real
# kube-apiserver, etcd, kubectl, kubelet and kube-proxy (cached outside the clone), starts a throwaway PostgreSQL and
# RabbitMQ and an instance's Redis on 127.0.0.1, runs the checks and every Go test, and stops
# what it started.
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

started=()
cleanup() {
  for s in "${started[@]}"; do hack/"$s".sh stop >&2 || true; done
}
trap cleanup EXIT

echo "== checks: gofmt, go vet, staticcheck" >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== build: the static binary the Dockerfile builds (no Docker engine runs here)" >&2
bin=$(hack/build.sh)
"$bin" --help >/dev/null 2>&1 || { echo "the built binary does not answer --help" >&2; exit 1; }
# summonctl, built beside it: its help documents the exit codes CI jobs rely on.
help=$("$(dirname "$bin")/summonctl" --help 2>&1) && grep -q '^Exit codes:' <<<"$help" ||
  { echo "the built summonctl does not answer --help with its exit codes" >&2; exit 1; }

echo "== test services" >&2
KUBEBUILDER_ASSETS=$(hack/kube-binaries.sh | tail -n 1)
export KUBEBUILDER_ASSETS
# The real-controller test cluster (internal/testing/testcluster, test/rollout): kwok beside the kube
# binaries, and the hook binary just built, which the rollout proofs kill and restart.
SUMMON_KWOK_DIR=$(hack/kwok.sh | tail -n 1)
export SUMMON_KWOK_DIR
SUMMON_HOOK_BIN="$PWD/$bin"
export SUMMON_HOOK_BIN
# The real node (internal/testing/realnode): Debian's containerd, runc and CNI plugins beside the
# kubelet and kube-proxy that hack/kube-binaries.sh built. The node starts them itself, inside a
# network namespace of its own, and stops them.
SUMMON_CNI_BIN_DIR=$(hack/node-packages.sh | tail -n 1) || { echo "installing the node's packages failed" >&2; exit 1; }
export SUMMON_CNI_BIN_DIR
# The example app's images (examples/app), built from Debian packages into the same cache: the
# rootfs takes several minutes the first time on a machine, a warm run returns at once. The
# backup tests run the pg_dump Job's own script, which needs the AWS CLI.
SUMMON_APP_IMAGES=$(hack/app-images.sh | tail -n 1) || { echo "building the example app's images failed" >&2; exit 1; }
export SUMMON_APP_IMAGES
command -v aws >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends awscli >&2
# Each start prints one NAME=value line; a start that fails must stop the run, not export nothing.
for service in postgres rabbitmq redis; do
  started+=("$service")
  line=$(hack/"$service".sh start) || { echo "starting $service failed" >&2; exit 1; }
  [[ "$line" == SUMMON_TEST_*=* ]] || { echo "hack/$service.sh start printed no environment line" >&2; exit 1; }
  export "${line?}"
done

echo "== browser: Debian's chromium for the dashboard's browser tests" >&2
SUMMON_TEST_CHROMIUM=$(hack/chromium.sh | tail -n 1) || { echo "installing chromium failed" >&2; exit 1; }
export SUMMON_TEST_CHROMIUM
# CloudNativePG's Cluster CRD of the pinned release, for the dry runs of the Cluster child.
line=$(hack/cnpg-crds.sh) || { echo "fetching CloudNativePG's CRDs failed" >&2; exit 1; }
export "${line?}"

# Integration tests skip when their service is missing on a developer's plain `go test ./...`;
# here a skip is a failure.
export SUMMON_REQUIRE_INTEGRATION=1

echo "== go test" >&2
# The rollout proofs (test/rollout) take minutes; go test's default of 10 minutes per package is
# too tight for them on a loaded 2-core machine.
go test -count=1 -timeout 30m ./... "$@"

echo "== fuzz: every decoder, for a bounded time each" >&2
hack/fuzz.sh
