#!/usr/bin/env bash
# Runs every fuzzer of the hook's decoders for a bounded time each (FUZZTIME, default 15s).
# hack/test.sh runs it; on a crash Go writes the input that crashed to the package's
# testdata/fuzz/<Fuzzer>/, where `go test` replays it on every run from then on: commit it with
# the fix, as a regression input.
#
#   hack/fuzz.sh                  # every fuzzer, 15 s each
#   FUZZTIME=2m hack/fuzz.sh      # longer, by hand
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-15s}
# package fuzzer: the sync, finalize and customize decoders of the pure core, every hook's
# HTTP body, and the one custom JSON type of the API.
targets=(
  "./pkg/platform FuzzSyncParent"
  "./pkg/platform FuzzFinalize"
  "./pkg/platform FuzzCustomize"
  "./internal/server FuzzHooks"
  "./pkg/apis/summon/v1beta1 FuzzConfigValue"
  "./pkg/children FuzzTemplateAnnotationsAreAsObserveds"
  "./pkg/platform FuzzObservedReadersAreTheConverters"
)
for t in "${targets[@]}"; do
  read -r pkg fuzzer <<<"$t"
  echo "== fuzz $fuzzer ($pkg) for $fuzztime" >&2
  # Nearly every input of a large request finds new coverage; minimising each would take the
  # whole budget, so only a few tries go to it.
  if ! go test "$pkg" -run '^$' -fuzz "^${fuzzer}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5x >&2; then
    echo "fuzzer $fuzzer found a failing input; it is in $pkg/testdata/fuzz/$fuzzer/ (commit it with the fix)" >&2
    exit 1
  fi
done
