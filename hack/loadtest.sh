#!/usr/bin/env bash
# Load-tests the sync hook on loopback and runs the core's benchmarks (docs/performance.md has the
# results and how to read them). It builds the server as hack/build.sh does and cmd/summon-load,
# starts the server on a free 127.0.0.1 port with a throwaway credential key, waits for /readyz,
# POSTs the steady-state sync request (testdata/sync/steady-ready) with summon-load, scrapes
# /metrics once, optionally cross-checks with wrk if it is installed, stops the server by its PID,
# then runs `go test ./pkg/platform -bench`. Everything it makes lives in a temporary directory that
# it removes; everything it starts it stops, also on failure. It writes nothing in the repository.
#
#   hack/loadtest.sh                         # 4 workers, 20 s, at most 200000 requests
#   WORKERS=2 DURATION=5s REQUESTS=10000 BENCH_COUNT=0 WRK=0 hack/loadtest.sh
set -euo pipefail
cd "$(dirname "$0")/.."

workers=${WORKERS:-4}
duration=${DURATION:-20s}
requests=${REQUESTS:-200000}
bench_count=${BENCH_COUNT:-5} # 0 skips the benchmarks
wrk_run=${WRK:-1}             # 0 skips the wrk cross-check (it runs only if wrk is installed)
body=testdata/sync/steady-ready/request.json
# The key of the golden tests (pkg/platform/helpers_test.go) and their default image: with them the
# steady-state request is truly steady (the answer changes nothing), as in production.
test_key=summon-test-master-key-0123456789abcdef
default_image=registry.example.com/summon-platform

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== machine"
echo "cores: $(nproc), $(go version | cut -d' ' -f3-), load average:$(uptime | sed 's/.*load average://')"

echo "== build"
hack/build.sh "$tmp/summon" >/dev/null
go build -o "$tmp/summon-load" ./cmd/summon-load

echo "== start the server"
(umask 077 && printf '%s' "$test_key" >"$tmp/credential-key")
"$tmp/summon" --listen=127.0.0.1:0 --credential-key-file="$tmp/credential-key" \
  --default-image="$default_image" 2>"$tmp/server.log" &
pid=$!
addr=
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; echo "the server exited" >&2; exit 1; }
  addr=$(sed -n 's/.*"msg":"serving","address":"\([^"]*\)".*/\1/p' "$tmp/server.log" | head -n 1)
  [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  addr=
  sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/server.log" >&2; echo "the server did not get ready" >&2; exit 1; }
case "$addr" in 127.*) ;; *) echo "the server listens on $addr, not loopback" >&2; exit 1 ;; esac
echo "pid $pid, ready on $addr"

echo "== load: summon-load -workers $workers -duration $duration -requests $requests"
"$tmp/summon-load" -url "http://$addr/sync" -body "$body" \
  -workers "$workers" -duration "$duration" -requests "$requests"

echo "== the server's own metrics (/metrics, scraped once, after the load)"
curl -fsS "http://$addr/metrics" >"$tmp/metrics"
awk '
  /^summon_hook_duration_seconds_bucket\{hook="sync"/ {
    match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
    n++; bound[n] = (le == "+Inf") ? -1 : le + 0; cum[n] = $2 + 0
  }
  /^summon_hook_duration_seconds_sum\{hook="sync"\}/   { sum = $2 }
  /^summon_hook_duration_seconds_count\{hook="sync"\}/ { count = $2 }
  /^summon_hook_requests_total\{/                      { print "  " $0 }
  /^summon_syncs_total\{/ && $2 > 0                    { print "  " $0 }
  /^process_cpu_seconds_total /                        { cpu = $2 }
  /^process_resident_memory_bytes /                    { rss = $2 }
  function q(p,   target, i, lo, prev) {
    # histogram_quantile: linear interpolation inside the bucket that holds the rank.
    target = p * count; prev = 0; lo = 0
    for (i = 1; i <= n; i++) {
      if (cum[i] >= target) {
        if (bound[i] < 0) return "> " lo * 1000 " ms"
        return sprintf("%.3f ms", (lo + (bound[i] - lo) * (cum[i] == prev ? 0 : (target - prev) / (cum[i] - prev))) * 1000)
      }
      prev = cum[i]; lo = bound[i]
    }
  }
  END {
    if (count == 0) { print "no sync calls recorded"; exit 1 }
    printf "summon_hook_duration_seconds{hook=\"sync\"}: %d calls, mean %.3f ms; from the buckets p50 %s, p90 %s, p99 %s\n", count, sum / count * 1000, q(0.5), q(0.9), q(0.99)
    printf "  buckets (cumulative):"
    for (i = 1; i <= n; i++) if (cum[i] > 0 && (i == 1 || cum[i - 1] < count)) printf " <=%s: %.1f%%", (bound[i] < 0 ? "+Inf" : bound[i] * 1000 "ms"), 100 * cum[i] / count
    printf "\n"
    printf "server process: %.2f s of CPU in all (%.3f ms per sync call, start-up included), resident memory %.1f MB\n", cpu, cpu / count * 1000, rss / 1e6
  }
' "$tmp/metrics"

if [ "$wrk_run" != 0 ] && command -v wrk >/dev/null && command -v jq >/dev/null; then
  echo "== cross-check: wrk -t2 -c$workers -d10s (same server, same compacted body)"
  jq -c . "$body" | tr -d '\n' >"$tmp/body.json"
  cat >"$tmp/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$tmp/body.json", "rb"))
wrk.body = f:read("*a")
f:close()
EOF
  wrk -t2 -c"$workers" -d10s --latency -s "$tmp/post.lua" "http://$addr/sync"
fi

echo "== stop the server (pid $pid)"
kill -TERM "$pid"
wait "$pid"
pid=
grep -c '"msg":"hook call"' "$tmp/server.log" | sed 's/^/hook calls logged: /'

if [ "$bench_count" != 0 ]; then
  echo "== go test ./pkg/platform -run '^\$' -bench . -benchmem -count $bench_count"
  go test ./pkg/platform -run '^$' -bench . -benchmem -count "$bench_count"
fi
