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
# HTTP body, the one custom JSON type of the API, and the core's narrow readers of observed
# children and of their last-applied texts, each against what it stands for.
targets=(
  "./pkg/platform FuzzSyncParent"
  "./pkg/platform FuzzFinalize"
  "./pkg/platform FuzzCustomize"
  "./internal/server FuzzHooks"
  "./pkg/apis/summon/v1beta1 FuzzConfigValue"
  "./pkg/children FuzzTemplateAnnotationsAreAsObserveds"
  "./pkg/children FuzzAppliedTemplateScanIsTheStrictDecodes"
  "./pkg/children FuzzObjectScanIsTheDecoders"
  "./pkg/platform FuzzObservedReadersAreTheConverters"
  "./pkg/platform FuzzSpecHashIsTheMapsOne"
)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# fuzz PKG FUZZER: one bounded run; its output goes to stderr and to $log.
fuzz() {
  # Nearly every input of a large request finds new coverage; minimising each would take the
  # whole budget, so only a few tries go to it.
  go test "$1" -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5x 2>&1 | tee "$log" >&2
  return "${PIPESTATUS[0]}"
}

# A run that ends with only "context deadline exceeded", and wrote no failing input, hit Go
# 1.26's own race at the -fuzztime boundary (golang/go#75804, fixed in Go 1.27): the coordinator
# reports its deadline as the target's failure. That run is tried once more; any other failure,
# or the same twice, fails.
boundary_race() {
  grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written to' "$log" &&
    ! grep -qE '^ +--- FAIL' "$log" && ! grep -q 'panic: ' "$log"
}

for t in "${targets[@]}"; do
  read -r pkg fuzzer <<<"$t"
  echo "== fuzz $fuzzer ($pkg) for $fuzztime" >&2
  if fuzz "$pkg" "$fuzzer"; then
    continue
  fi
  if boundary_race; then
    echo "fuzzer $fuzzer stopped on Go's -fuzztime race (golang/go#75804), no failing input: once more" >&2
    fuzz "$pkg" "$fuzzer" && continue
  fi
  echo "fuzzer $fuzzer failed; a failing input it found is in $pkg/testdata/fuzz/$fuzzer/ (commit it with the fix)" >&2
  exit 1
done
