package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// TestTheLimitServerAnswersEverySyncWithItsAnswerAndRefusesWhatTheHookRefuses: the load test's
// baseline does the hook's HTTP work (the body limit, decoding, the log line) without its logic.
func TestTheLimitServerAnswersEverySyncWithItsAnswerAndRefusesWhatTheHookRefuses(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sync", "steady-ready", "response.json"))
	if err != nil {
		t.Fatal(err)
	}
	var answer metacontroller.SyncResponse
	if err := metacontroller.Decode(raw, &answer); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(&answer)
	if err != nil {
		t.Fatal(err)
	}
	l := &logs{}
	cfg := Config{Listen: "127.0.0.1:0", MaxBodyBytes: 1 << 10, ShutdownTimeout: time.Minute}
	s, err := NewLimit(cfg, slog.New(slog.NewJSONHandler(l, nil)), &answer)
	if err != nil {
		t.Fatal(err)
	}

	rec := post(s, "/sync", []byte(`{"parent":{"metadata":{"name":"any"}},"children":{}}`))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("a sync got %d %.200s, want 200 and the fixed answer", rec.Code, rec.Body.String())
	}
	if got := rec.Header().Get("ETag"); got != "" {
		t.Errorf("the limit names its answer %s; it must do no ETag work", got)
	}
	if rec := post(s, "/sync", []byte(`{"parent":`)); rec.Code != http.StatusBadRequest {
		t.Errorf("a broken body got %d, want 400 as from the hook", rec.Code)
	}
	if rec := post(s, "/sync", bytes.Repeat([]byte(" "), 2<<10)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit got %d, want 413 as from the hook", rec.Code)
	}
	if n := len(l.hookCalls(t)); n != 3 {
		t.Errorf("%d hook call lines logged for 3 calls", n)
	}
}
