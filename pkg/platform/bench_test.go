package platform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// The benchmarks measure the whole sync (decode the body, the core, encode the answer) at three
// request sizes, each beside its limit: the same body decoded the same way and an answer of the
// same bytes encoded, with no logic in between. Summon / limit is the figure that counts on a
// shared machine; hack/bench.sh runs them and prints the ratios.
//
//	go test ./pkg/platform -run '^$' -bench 'Sync|Limit' -benchmem

// benchSize is one request of the harness.
type benchSize struct {
	name string
	body func(testing.TB) []byte
}

var benchSizes = []benchSize{
	// A fresh install: no child exists yet.
	{"small", func(tb testing.TB) []byte { return compactGolden(tb, "fresh-install") }},
	// A Ready instance with its 12 children, each with managedFields and Metacontroller's
	// last-applied annotation, as the API server returns them.
	{"realistic", func(tb testing.TB) []byte { return compactGolden(tb, "steady-ready") }},
	// The same instance with leftovers of an older layout beside it (worker Deployments and
	// Services of Celery queues): 60 observed children, which the core keeps as they are.
	{"large", func(tb testing.TB) []byte { return withLeftovers(tb, compactGolden(tb, "steady-ready"), 16, 32) }},
}

// compactGolden is a golden request compacted, as Metacontroller sends it.
func compactGolden(tb testing.TB, name string) []byte {
	raw, err := os.ReadFile(filepath.Join(goldenDir, name, "request.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		tb.Fatal(err)
	}
	return compact.Bytes()
}

// withLeftovers adds leftovers of Celery queues to a request: copies of the observed celeryd
// Deployment and of the web Service, each under a name and component of its own, so that the core
// neither builds nor drops them.
func withLeftovers(tb testing.TB, body []byte, deployments, services int) []byte {
	var req metacontroller.SyncRequest
	if err := metacontroller.Decode(body, &req); err != nil {
		tb.Fatal(err)
	}
	copies := []struct {
		group, key string
		n          int
	}{
		{GroupDeployment, "summon-qa/car1-qa-celeryd", deployments},
		{GroupService, "summon-qa/car1-qa-web", services},
	}
	for _, c := range copies {
		src := req.Children[c.group][c.key]
		if src == nil {
			tb.Fatalf("the request has no %s %s to copy", c.group, c.key)
		}
		for i := range c.n {
			var obj metacontroller.Object
			b, _ := json.Marshal(src)
			if err := metacontroller.Decode(b, &obj); err != nil {
				tb.Fatal(err)
			}
			name := fmt.Sprintf("car1-qa-queue-%02d", i)
			meta := obj["metadata"].(map[string]any)
			meta["name"] = name
			meta["labels"].(map[string]any)["app.kubernetes.io/component"] = name
			req.Children[c.group]["summon-qa/"+name] = obj
		}
	}
	out, err := json.Marshal(&req)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// cpuTime is the CPU time the process has used, the garbage collector's included. On a machine
// shared with other work, ns/op (wall time) counts the time others ran; CPU time per op does
// not, so hack/bench.sh takes its ratios from cpu-ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopCPU runs the benchmark loop and reports the process's CPU time per op beside ns/op.
func loopCPU(b *testing.B, op func()) {
	n, start := 0, cpuTime()
	for b.Loop() {
		op()
		n++
	}
	// After the loop: b.Loop drops metrics reported before it.
	b.ReportMetric(float64(cpuTime()-start)/float64(n), "cpu-ns/op")
}

// syncJSON is what the hook does per call: decode the body, run the core, encode the answer.
func syncJSON(body []byte, env Env) ([]byte, error) {
	var req metacontroller.SyncRequest
	if err := metacontroller.Decode(body, &req); err != nil {
		return nil, err
	}
	return json.Marshal(Sync(&req, env))
}

// limitJSON is the same JSON work with no logic: decode the body the same way, encode a fixed
// answer held as a pass-through hook would hold it (children as decoded objects, status as a
// decoded object).
func limitJSON(body []byte, answer *metacontroller.SyncResponse) ([]byte, error) {
	var req metacontroller.SyncRequest
	if err := metacontroller.Decode(body, &req); err != nil {
		return nil, err
	}
	return json.Marshal(answer)
}

// BenchmarkSync measures the whole sync at each size.
func BenchmarkSync(b *testing.B) {
	env := testEnv(goldenClock)
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			body := size.body(b)
			out, err := syncJSON(body, env)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			loopCPU(b, func() {
				if _, err := syncJSON(body, env); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(len(body)), "request-bytes")
			b.ReportMetric(float64(len(out)), "answer-bytes")
		})
	}
}

// BenchmarkLimit measures the limit of BenchmarkSync at each size: Summon's own answer to the
// same request, encoded from decoded objects, beside the same decode.
func BenchmarkLimit(b *testing.B) {
	env := testEnv(goldenClock)
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			body := size.body(b)
			want, err := syncJSON(body, env)
			if err != nil {
				b.Fatal(err)
			}
			var answer metacontroller.SyncResponse
			if err := metacontroller.Decode(want, &answer); err != nil {
				b.Fatal(err)
			}
			out, err := limitJSON(body, &answer)
			if err != nil {
				b.Fatal(err)
			}
			if len(out) != len(want) {
				b.Fatalf("the limit encodes %d bytes, Summon %d: not the same answer", len(out), len(want))
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			loopCPU(b, func() {
				if _, err := limitJSON(body, &answer); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(len(body)), "request-bytes")
			b.ReportMetric(float64(len(out)), "answer-bytes")
		})
	}
}

// BenchmarkCore measures the pure core alone on a decoded request, at each size: where the
// difference between BenchmarkSync and BenchmarkLimit comes from.
func BenchmarkCore(b *testing.B) {
	env := testEnv(goldenClock)
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			var req metacontroller.SyncRequest
			if err := metacontroller.Decode(size.body(b), &req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			loopCPU(b, func() { Sync(&req, env) })
		})
	}
}

// TestBenchmarkSizesAreWhatTheyClaim keeps the harness honest: the large request really is about
// 60 children and 200 KB, and the limit's answer is Summon's.
func TestBenchmarkSizesAreWhatTheyClaim(t *testing.T) {
	env := testEnv(goldenClock)
	for _, size := range benchSizes {
		body := size.body(t)
		var req metacontroller.SyncRequest
		if err := metacontroller.Decode(body, &req); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, byName := range req.Children {
			n += len(byName)
		}
		t.Logf("%s: %d bytes, %d observed children", size.name, len(body), n)
		if size.name == "large" && (n < 55 || n > 65 || len(body) < 180_000 || len(body) > 280_000) {
			t.Errorf("the large request has %d children in %d bytes, not about 60 in 200 KB", n, len(body))
		}
		want, err := syncJSON(body, env)
		if err != nil {
			t.Fatal(err)
		}
		var answer metacontroller.SyncResponse
		if err := metacontroller.Decode(want, &answer); err != nil {
			t.Fatal(err)
		}
		got, err := limitJSON(body, &answer)
		if err != nil {
			t.Fatal(err)
		}
		// The same objects, and so the same bytes but for the order of the status's keys (a
		// struct's order in Summon's, sorted in the decoded one).
		var gotV, wantV any
		if err := json.Unmarshal(got, &gotV); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want, &wantV); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || !cmp.Equal(gotV, wantV) {
			t.Errorf("%s: the limit's answer differs from Summon's: %s", size.name, cmp.Diff(wantV, gotV))
		}
	}
}

// TestTheCoreAllocatesWellUnderItsLimit holds the core's allocations per sync under a share of
// what its limit allocates for the same request (decoding it and encoding the answer): 0.26 and
// 0.19 at the realistic and large sizes since last-applied texts are scanned, 0.32 and 0.35
// before that, when the children had come to share their strings (children.Converter), 0.60 and
// 0.43 when every sync decoded each workload's last-applied object whole (docs/performance.md).
// Allocation counts don't vary from run to run; the bound is a ratio with room, so that a new Go
// or k8s.io moves both sides and no benchmark time is asserted.
func TestTheCoreAllocatesWellUnderItsLimit(t *testing.T) {
	const share = 0.32
	env := testEnv(goldenClock)
	for _, size := range benchSizes {
		if size.name == "small" {
			continue // a fresh install decodes next to nothing: its limit is no yardstick
		}
		body := size.body(t)
		var req metacontroller.SyncRequest
		if err := metacontroller.Decode(body, &req); err != nil {
			t.Fatal(err)
		}
		answer := Sync(&req, env)
		core := testing.AllocsPerRun(10, func() { Sync(&req, env) })
		limit := testing.AllocsPerRun(10, func() {
			if _, err := limitJSON(body, answer); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: the core allocates %.0f times per sync, its limit %.0f (%.2f)", size.name, core, limit, core/limit)
		if core > share*limit {
			t.Errorf("%s: the core allocates %.0f times per sync, more than %.2f of its limit's %.0f: profile it (go test ./pkg/platform -run '^$' -bench BenchmarkCore -memprofile)", size.name, core, share, limit)
		}
	}
}
