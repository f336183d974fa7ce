package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/forklift-dev/summon/pkg/platform"
)

// heldRequest is an instance whose app workloads an earlier release built: held while no wave is
// open for this build's revision.
const heldRequest = "../../testdata/sync/builders-held/request.json"

// rolloutServer is the hook as the golden cases run it (their image default and credential key),
// with a rollout file at path.
func rolloutServer(t *testing.T, path string) (*Server, error) {
	t.Helper()
	key := t.TempDir() + "/key"
	writeFile(t, key, []byte("summon-test-master-key-0123456789abcdef"))
	cfg := Config{
		Listen: "127.0.0.1:0", MaxBodyBytes: 8 << 20, ShutdownTimeout: time.Second, LogLevel: "info",
		CredentialKeyFile: key, DefaultImage: "registry.example.com/summon-platform", RolloutFile: path,
	}
	return New(cfg, slog.New(slog.DiscardHandler))
}

// heldOf syncs the held instance and says whether the answer holds it, with the answer's ETag.
func heldOf(t *testing.T, s *Server, ifNoneMatch string) (code int, held bool, etag string) {
	t.Helper()
	rec := syncWith(s, readFile(t, heldRequest), ifNoneMatch)
	if rec.Code != http.StatusOK {
		return rec.Code, false, rec.Header().Get("ETag")
	}
	var resp struct {
		Status struct {
			Builders struct {
				Held bool `json:"held"`
			} `json:"builders"`
		} `json:"status"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	return rec.Code, resp.Status.Builders.Held, rec.Header().Get("ETag")
}

func TestAWaveWrittenWhileTheHookRunsOpensWithoutARestartAndMovesTheETag(t *testing.T) {
	path := t.TempDir() + "/rollout.yaml"
	s, err := rolloutServer(t, path)
	if err != nil {
		t.Fatal(err)
	}
	s.rollout.checkEvery = 0 // every call looks at the file: a change is seen at once

	_, held, closedTag := heldOf(t, s, "")
	if !held || closedTag == "" {
		t.Fatalf("with no rollout file the instance is held %v, ETag %q; want held, with an ETag", held, closedTag)
	}

	writeFile(t, path, []byte("# opened by summonctl waves open\nrevision: "+platform.BuilderRevision+"\npercent: 100\n"))
	code, held, openTag := heldOf(t, s, closedTag)
	if code != http.StatusOK || held {
		t.Fatalf("after the wave opened, the same request with the old ETag got %d, held %v; want a fresh 200 that releases it", code, held)
	}
	if openTag == closedTag {
		t.Error("the answers with and without the wave have the same ETag: Metacontroller's cache would serve a stale one")
	}

	writeFile(t, path, []byte("revision: "+platform.BuilderRevision+"\npercent: 250\n"))
	if _, held, _ := heldOf(t, s, ""); held {
		t.Error("an invalid wave closed the wave in force; the last good one must stay")
	}

	writeFile(t, path, []byte("revision: some-other-revision\npercent: 100\n"))
	if _, held, _ := heldOf(t, s, ""); !held {
		t.Error("a wave for another revision released this build's builders")
	}

	writeFile(t, path, []byte("revision: "+platform.BuilderRevision+"\nurgent: true\n"))
	if _, held, _ := heldOf(t, s, ""); held {
		t.Error("an urgent wave held the instance")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := heldOf(t, s, ""); !held {
		t.Error("with the rollout file gone the instance is released; a missing file is no wave")
	}
}

func TestAnInvalidRolloutFileStopsTheStart(t *testing.T) {
	cases := map[string]string{
		"a percent over 100":       "revision: abc\npercent: 101\n",
		"a misspelt field":         "revision: abc\npercnt: 25\n",
		"no revision":              "percent: 25\n",
		"a selector that can't be": "revision: abc\nselector: 'tier in ('\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := t.TempDir() + "/rollout.yaml"
			writeFile(t, path, []byte(content))
			_, err := rolloutServer(t, path)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("New = %v, want an error naming %s", err, path)
			}
		})
	}
}

func TestConfigServesTheBuilderRevisionAndTheWaveInForce(t *testing.T) {
	path := t.TempDir() + "/rollout.yaml"
	writeFile(t, path, []byte("revision: "+platform.BuilderRevision+"\npercent: 25\nselector: tier=canary\n"))
	s, err := rolloutServer(t, path)
	if err != nil {
		t.Fatal(err)
	}
	rec := get(s, "/config")
	var p platform.HookProfile
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	want := platform.Wave{Revision: platform.BuilderRevision, Percent: 25, Selector: "tier=canary"}
	if p.BuilderRevision != platform.BuilderRevision || p.Rollout != want {
		t.Errorf("GET /config serves revision %q and wave %+v; want %q and %+v", p.BuilderRevision, p.Rollout, platform.BuilderRevision, want)
	}
}
