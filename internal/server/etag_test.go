package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

func syncWith(s *Server, body []byte, ifNoneMatch string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/sync", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestAnUnchangedRequestIsAnswered304WithoutRunningTheCore(t *testing.T) {
	s, _ := testServer(t)
	steady := readFile(t, "../../testdata/sync/steady-ready/request.json")
	first := syncWith(s, steady, "")
	tag := first.Header().Get("ETag")
	if first.Code != http.StatusOK || tag == "" || !strings.HasPrefix(tag, `"`) {
		t.Fatalf("the first sync got %d with ETag %q, want 200 with a quoted ETag", first.Code, tag)
	}
	again := syncWith(s, steady, tag)
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 || again.Header().Get("ETag") != tag {
		t.Fatalf("the same request with If-None-Match got %d, %d bytes, ETag %q; want 304, no body, the same ETag",
			again.Code, again.Body.Len(), again.Header().Get("ETag"))
	}
	if m := metricsText(t, s); !strings.Contains(m, `summon_syncs_total{phase="Ready"} 1`) ||
		!strings.Contains(m, `summon_hook_requests_total{code="304",hook="sync"} 1`) {
		t.Error("the 304 ran the core, or is not counted")
	}

	// Anything that changes the request changes the tag: a child's status, the parent's status,
	// a stale If-None-Match.
	changed := bytes.Replace(steady, []byte(`"readyReplicas": 1`), []byte(`"readyReplicas": 0`), 1)
	if bytes.Equal(changed, steady) {
		t.Fatal("the steady request has no readyReplicas to change")
	}
	if got := syncWith(s, changed, tag); got.Code != http.StatusOK || got.Header().Get("ETag") == tag {
		t.Errorf("a request with a pod less Ready got %d with ETag %q; want 200 with another ETag", got.Code, got.Header().Get("ETag"))
	}
	if got := syncWith(s, steady, `"not-this-one"`); got.Code != http.StatusOK {
		t.Errorf("a stale If-None-Match got %d, want 200", got.Code)
	}
}

func TestAnotherBuildOrConfigurationNamesAnswersDifferently(t *testing.T) {
	body := readFile(t, "../../testdata/sync/steady-ready/request.json")
	key := t.TempDir() + "/key"
	other := t.TempDir() + "/key"
	writeFile(t, key, []byte(strings.Repeat("k", 32)))
	writeFile(t, other, []byte(strings.Repeat("o", 32)))
	tags := map[string]string{}
	for name, cfg := range map[string]Config{
		"the default":            {Listen: "127.0.0.1:0", CredentialKeyFile: key, DefaultImage: "registry.example.com/a"},
		"another default image":  {Listen: "127.0.0.1:0", CredentialKeyFile: key, DefaultImage: "registry.example.com/b"},
		"another credential key": {Listen: "127.0.0.1:0", CredentialKeyFile: other, DefaultImage: "registry.example.com/a"},
	} {
		cfg.MaxBodyBytes, cfg.ShutdownTimeout, cfg.LogLevel = 8<<20, time.Second, "info"
		s, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		tags[name] = syncWith(s, body, "").Header().Get("ETag")
	}
	seen := map[string]string{}
	for name, tag := range tags {
		if tag == "" {
			t.Fatalf("%s: no ETag", name)
		}
		if prev, ok := seen[tag]; ok {
			t.Errorf("%s and %s name the same request's answer alike: a hook changed so would serve stale answers", prev, name)
		}
		seen[tag] = name
	}
}

func TestAnswersThatCameOfCallsOutsideAreNotCached(t *testing.T) {
	live := newLiveSystems(t)
	down := live.config(t)
	closed := testenv.ClosedAddr(t)
	down.RabbitMQURL = "http://summon-admin:password@" + closed
	servers := map[string]string{}
	servers["up"], _ = liveServer(t, live.config(t), slog.LevelInfo)
	servers["down"], _ = liveServer(t, down, slog.LevelInfo)
	p := &v1beta1.SummonPlatform{}
	p.Name, p.Namespace, p.UID = "etag", "tenant-etag", "3c0f8a6e-1d2b-4e5f-8a9b-0c1d2e3f4a5b"
	p.Spec.Version = "108912-6e2f8b7-release-2019-8"
	c := sim.NewCluster(p)
	step := func(server string) (etag string, resp *metacontroller.SyncResponse) {
		t.Helper()
		body, err := json.Marshal(c.Request())
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.Post(servers[server]+"/sync", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("sync: %d %s", r.StatusCode, b)
		}
		resp = &metacontroller.SyncResponse{}
		if err := metacontroller.Decode(b, resp); err != nil {
			t.Fatal(err)
		}
		c.Apply(resp)
		return r.Header.Get("ETag"), resp
	}
	// A fresh instance: the hook ensures its bucket, IAM user, vhost and user; the answer holds
	// the fresh IAM key, which no later request can reproduce.
	if tag, _ := step("up"); tag != "" {
		t.Errorf("the sync that called out is named %s; it must not be cached", tag)
	}
	// Ensured for this generation: no call, an answer of the request alone.
	if tag, _ := step("up"); tag == "" {
		t.Error("a sync that made no call has no ETag")
	}
	// A new generation against a RabbitMQ that is down: an Error that asks to be called back.
	c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptrTo(int32(2)) })
	tag, resp := step("down")
	if resp.ResyncAfterSeconds == 0 {
		t.Fatalf("RabbitMQ down gave no resync: %+v", resp.Status)
	}
	if tag != "" {
		t.Errorf("the answer to a failing call outside is named %s; it must not be cached", tag)
	}
}

func ptrTo[T any](v T) *T { return &v }
