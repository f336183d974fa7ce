package platform

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// steadyRequest is a realistic sync request: a Ready instance with its 12 children, each carrying
// managedFields and Metacontroller's last-applied annotation, as the API server returns them.
func steadyRequest(b *testing.B) []byte {
	raw, err := os.ReadFile(filepath.Join(goldenDir, "steady-ready", "request.json"))
	if err != nil {
		b.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		b.Fatal(err)
	}
	return compact.Bytes()
}

// BenchmarkSync measures the pure core alone on a decoded request.
//
//	go test ./pkg/platform -run '^$' -bench . -benchmem
func BenchmarkSync(b *testing.B) {
	body := steadyRequest(b)
	var req metacontroller.SyncRequest
	if err := metacontroller.Decode(body, &req); err != nil {
		b.Fatal(err)
	}
	env := testEnv(goldenClock)
	b.ReportMetric(float64(len(body)), "request-bytes")
	b.ReportAllocs()
	for b.Loop() {
		Sync(&req, env)
	}
}

// BenchmarkSyncJSON measures what the hook does per call: decode the body, sync, encode.
func BenchmarkSyncJSON(b *testing.B) {
	body := steadyRequest(b)
	env := testEnv(goldenClock)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req metacontroller.SyncRequest
		if err := metacontroller.Decode(body, &req); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(Sync(&req, env)); err != nil {
			b.Fatal(err)
		}
	}
}
