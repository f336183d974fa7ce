package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/hooks/finalize"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

const freshInstall = "../../examples/requests/fresh-install.json"

// logs collects the server's JSON log lines.
type logs struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// text is everything logged so far.
func (l *logs) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func jsonLine(line map[string]any) (string, error) {
	b, err := json.Marshal(line)
	return string(b), err
}

// hookCalls are the log lines about hook calls.
func (l *logs) hookCalls(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("a log line is not JSON: %q", sc.Text())
		}
		if line["msg"] == "hook call" {
			out = append(out, line)
		}
	}
	return out
}

type option func(*Config, *finalize.Finalizer)

func withMaxBody(n int64) option {
	return func(c *Config, _ *finalize.Finalizer) { c.MaxBodyBytes = n }
}

func withFinalizer(f finalize.Finalizer) option {
	return func(_ *Config, into *finalize.Finalizer) { *into = f }
}

func withConfig(edit func(*Config)) option {
	return func(c *Config, _ *finalize.Finalizer) { edit(c) }
}

// testServer is a server with the test credential key and a fixed clock.
func testServer(t testing.TB, opts ...option) (*Server, *logs) {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", MaxBodyBytes: 8 << 20, ShutdownTimeout: time.Minute}
	var fin finalize.Finalizer
	for _, o := range opts {
		o(&cfg, &fin)
	}
	key, err := credentials.NewDeriver([]byte("summon-test-master-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	env := func() platform.Env {
		return platform.Env{
			Now:         time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
			Defaults:    v1beta1.HookDefaults{Image: "registry.example.com/summon-platform"},
			Credentials: key,
		}
	}
	if fin == nil {
		fin = finalize.Teardown{Env: env}
	}
	l := &logs{}
	s := newServer(cfg, slog.New(slog.NewJSONHandler(l, nil)), env, nil, fin)
	if err := s.guard(); err != nil {
		t.Fatal(err)
	}
	return s, l
}

func post(s *Server, path string, body []byte) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json") // as Metacontroller sends it
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func get(s *Server, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// v2Response is Metacontroller's v2 sync/finalize response; decoding into it with unknown fields
// disallowed is what Metacontroller's strict mode does.
type v2Response struct {
	Status             map[string]any   `json:"status"`
	Children           []map[string]any `json:"children"`
	ResyncAfterSeconds float64          `json:"resyncAfterSeconds"`
	Finalized          bool             `json:"finalized"`
}

func decodeStrict(t *testing.T, body []byte) v2Response {
	t.Helper()
	var r v2Response
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("Metacontroller could not decode the answer strictly: %v\n%s", err, body)
	}
	return r
}

func TestSyncOfAFreshInstallAnswersWithOnlyV2FieldsAndAChildrenList(t *testing.T) {
	s, _ := testServer(t)
	rec := post(s, "/sync", readFile(t, freshInstall))
	if rec.Code != http.StatusOK {
		t.Fatalf("code = %d, want 200: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	v2 := []string{"children", "finalized", "resyncAfterSeconds", "status"}
	for k := range top {
		if !slices.Contains(v2, k) {
			t.Errorf("top-level field %q is not a v2 response field; Metacontroller refuses the whole answer", k)
		}
	}
	for _, k := range []string{"status", "children"} {
		if _, ok := top[k]; !ok {
			t.Errorf("no %q in the answer: a missing status wipes it, missing children delete them all", k)
		}
	}
	if string(top["children"]) == "null" {
		t.Fatal("children is null: Metacontroller would delete every child")
	}
	r := decodeStrict(t, rec.Body.Bytes())
	if r.Status["phase"] != string(v1beta1.PhaseInitializing) {
		t.Errorf("phase = %v, want Initializing (message %v)", r.Status["phase"], r.Status["message"])
	}
	if len(r.Children) == 0 {
		t.Error("a fresh install asks for no child")
	}
	if slices.ContainsFunc(r.Children, func(c map[string]any) bool { return c == nil }) {
		t.Error("a null child would crash Metacontroller")
	}
}

func TestEveryHookCallIsLoggedNamingItsParent(t *testing.T) {
	s, l := testServer(t)
	post(s, "/sync", readFile(t, freshInstall))
	post(s, "/finalize", readFile(t, freshInstall))
	post(s, "/customize", []byte(`{"parent":{"metadata":{"name":"car1-qa","namespace":"summon-qa","generation":1},"spec":{"version":"v1"}}}`))

	calls := l.hookCalls(t)
	if len(calls) != 3 {
		t.Fatalf("%d hook call lines, want 3", len(calls))
	}
	want := map[string]any{"namespace": "summon-qa", "name": "car1-qa", "generation": float64(1)}
	for _, c := range calls {
		if diff := cmp.Diff(want, c["parent"]); diff != "" {
			t.Errorf("hook %v: parent (-want +got):\n%s", c["hook"], diff)
		}
	}
	if calls[0]["phase"] != "Initializing" {
		t.Errorf("the sync line has phase %v, want Initializing", calls[0]["phase"])
	}
}

func TestRequestsThatCantBeReadAreRefusedAndChangeNothing(t *testing.T) {
	tests := map[string]struct {
		path     string
		body     string
		wantCode int
		wantMsg  string
	}{
		"garbage gets 400": {
			path: "/sync", body: "this is not JSON", wantCode: http.StatusBadRequest, wantMsg: "not a Metacontroller hook request",
		},
		"an empty body gets 400": {
			path: "/sync", body: "", wantCode: http.StatusBadRequest, wantMsg: "the request body is empty",
		},
		"children of the wrong shape get 400": {
			path: "/sync", body: `{"parent":{},"children":[1,2]}`, wantCode: http.StatusBadRequest, wantMsg: "not a Metacontroller hook request",
		},
		"a second JSON value after the request gets 400": {
			path: "/sync", body: `{"parent":{}} {"parent":{}}`, wantCode: http.StatusBadRequest, wantMsg: "not a Metacontroller hook request",
		},
		"a body over the limit gets 413": {
			path: "/sync", body: `{"parent":{"metadata":{"name":"` + strings.Repeat("x", 2048) + `"}}}`,
			wantCode: http.StatusRequestEntityTooLarge, wantMsg: "larger than the hook's limit of 1024 bytes: raise --max-body-bytes",
		},
		"garbage to finalize gets 400": {
			path: "/finalize", body: "{", wantCode: http.StatusBadRequest, wantMsg: "not a Metacontroller hook request",
		},
		"a body over the limit to customize gets 413": {
			path: "/customize", body: strings.Repeat(" ", 2048) + "{}", wantCode: http.StatusRequestEntityTooLarge, wantMsg: "--max-body-bytes",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, l := testServer(t, withMaxBody(1024))
			rec := post(s, tc.path, []byte(tc.body))
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
			}
			var answer struct{ Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Fatalf("the answer is not a JSON message: %q", rec.Body)
			}
			if !strings.Contains(answer.Message, tc.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", answer.Message, tc.wantMsg)
			}
			if m := metricsText(t, s); strings.Contains(m, `summon_syncs_total{phase="Initializing"} 1`) {
				t.Error("a refused request reached the core")
			}
			calls := l.hookCalls(t)
			if len(calls) != 1 || calls[0]["level"] != "WARN" || calls[0]["error"] == nil {
				t.Errorf("want one WARN hook call line with the error, got %v", calls)
			}
		})
	}
}

func TestCustomizeRelatesTheInputSecrets(t *testing.T) {
	tests := map[string]struct {
		spec string
		want string
	}{
		"input secrets and the database URL secret in one rule": {
			spec: `{"version":"v1","secrets":["car1-qa-inputs"],"database":{"urlSecret":{"name":"car1-qa-db","key":"url"}}}`,
			want: `{"relatedResources":[{"apiVersion":"v1","resource":"secrets","namespace":"summon-qa","names":["car1-qa-inputs","car1-qa-db"]}]}`,
		},
		"no input secret gives an empty list": {
			spec: `{"version":"v1"}`,
			want: `{"relatedResources":[]}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := testServer(t)
			body := `{"controller":{},"parent":{"apiVersion":"summon.forklift.dev/v1beta1","kind":"SummonPlatform",` +
				`"metadata":{"name":"car1-qa","namespace":"summon-qa","uid":"u1","generation":3},"spec":` + tc.spec + `}}`
			rec := post(s, "/customize", []byte(body))
			if rec.Code != http.StatusOK {
				t.Fatalf("code = %d: %s", rec.Code, rec.Body)
			}
			if diff := cmp.Diff(tc.want, strings.TrimSpace(rec.Body.String())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCustomizeRefusesAParentWithoutANamespace(t *testing.T) {
	s, _ := testServer(t)
	rec := post(s, "/customize", []byte(`{"parent":{"metadata":{"name":"car1-qa"},"spec":{"version":"v1","secrets":["a"]}}}`))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "no metadata.namespace") {
		t.Errorf("got %d %s, want 400 naming the missing namespace", rec.Code, rec.Body)
	}
}

func TestFinalizeWithNothingOutsideAnswersFinalizedKeepingEveryChild(t *testing.T) {
	s, _ := testServer(t)
	lastApplied := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"car1-qa-web","namespace":"summon-qa"},"spec":{"ports":[{"port":80}]}}`
	req := map[string]any{
		"parent": map[string]any{
			"metadata": map[string]any{"name": "car1-qa", "namespace": "summon-qa", "deletionTimestamp": "2026-11-27T10:00:00Z"},
			"spec":     map[string]any{"version": "v1"},
			"status":   map[string]any{"phase": "Ready", "migratedVersion": "v1", "observedGeneration": 4},
		},
		"children": map[string]any{
			"Service.v1": map[string]any{"summon-qa/car1-qa-web": map[string]any{
				"apiVersion": "v1", "kind": "Service",
				"metadata": map[string]any{"name": "car1-qa-web", "namespace": "summon-qa", "uid": "s1", "resourceVersion": "7",
					"annotations": map[string]any{"metacontroller.k8s.io/last-applied-configuration": lastApplied}},
				"spec": map[string]any{"ports": []any{map[string]any{"port": 80}}, "clusterIP": "10.0.0.7"},
			}},
			"Secret.v1": map[string]any{"summon-qa/car1-qa-config": map[string]any{
				"apiVersion": "v1", "kind": "Secret",
				"metadata": map[string]any{"name": "car1-qa-config", "namespace": "summon-qa", "uid": "s2", "resourceVersion": "8"},
				"type":     "Opaque",
			}},
			"Job.batch/v1": map[string]any{},
		},
		"finalizing": true,
	}
	body, _ := json.Marshal(req)
	rec := post(s, "/finalize", body)
	if rec.Code != http.StatusOK {
		t.Fatalf("code = %d: %s", rec.Code, rec.Body)
	}
	got := decodeStrict(t, rec.Body.Bytes())
	deleted := "deleted: access outside the cluster is revoked and the data was handled per deletionPolicy"
	want := v2Response{
		// The status is the parent's, minus what Metacontroller writes itself, plus what the
		// deletion came to.
		Status: map[string]any{"phase": "Ready", "migratedVersion": "v1", "message": deleted, "conditions": []any{map[string]any{
			"type": "Ready", "status": "False", "reason": "Deleting", "message": deleted, "lastTransitionTime": "2026-11-27T09:00:00Z",
		}}},
		Children: []map[string]any{
			{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "car1-qa-config", "namespace": "summon-qa"}, "type": "Opaque"},
			{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "car1-qa-web", "namespace": "summon-qa"},
				"spec": map[string]any{"ports": []any{map[string]any{"port": float64(80)}}}},
		},
		Finalized: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestIntegersInObservedChildrenComeBackExactly(t *testing.T) {
	s, _ := testServer(t)
	// 2^53+1 has no float64: a decode through float64 would answer 9007199254740992, and
	// Metacontroller would see a change to write on every call.
	body := `{"parent":{"metadata":{"name":"car1-qa","namespace":"summon-qa"}},"children":{"Secret.v1":{"summon-qa/s":` +
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"summon-qa"},"n":9007199254740993}}}}`
	rec := post(s, "/finalize", []byte(body))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"n":9007199254740993`) {
		t.Errorf("got %d %s, want the integer exactly as sent", rec.Code, rec.Body)
	}
}

// panicking is a Finalizer with a bug.
type panicking struct{}

func (panicking) Finalize(context.Context, *metacontroller.SyncRequest) (*metacontroller.SyncResponse, error) {
	panic("a bug in the finalizer")
}

// failing is a Finalizer whose teardown can't finish now.
type failing struct{}

func (failing) Finalize(context.Context, *metacontroller.SyncRequest) (*metacontroller.SyncResponse, error) {
	return nil, errors.New("deleting bucket \"car1\": access denied")
}

func TestAFailingHookAnswers500AndTheServerGoesOn(t *testing.T) {
	tests := map[string]struct {
		finalizer finalize.Finalizer
		wantMsg   string
		wantLog   string
	}{
		"a panic is recovered": {
			finalizer: panicking{}, wantMsg: "a panic", wantLog: "a bug in the finalizer",
		},
		"an error is answered": {
			finalizer: failing{}, wantMsg: "finalizing: deleting bucket", wantLog: "access denied",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, l := testServer(t, withFinalizer(tc.finalizer))
			rec := post(s, "/finalize", readFile(t, freshInstall))
			if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), tc.wantMsg) {
				t.Errorf("got %d %s, want 500 containing %q", rec.Code, rec.Body, tc.wantMsg)
			}
			calls := l.hookCalls(t)
			if len(calls) != 1 {
				t.Fatalf("%d hook call lines, want 1", len(calls))
			}
			line, _ := json.Marshal(calls[0])
			if calls[0]["level"] != "ERROR" || !strings.Contains(string(line), tc.wantLog) || !strings.Contains(string(line), `"name":"car1-qa"`) {
				t.Errorf("the log line must be an ERROR naming the parent and saying %q: %s", tc.wantLog, line)
			}
			if rec := post(s, "/sync", readFile(t, freshInstall)); rec.Code != http.StatusOK {
				t.Errorf("after the failure a sync got %d", rec.Code)
			}
		})
	}
}

func metricsText(t *testing.T, s *Server) string {
	t.Helper()
	rec := get(s, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func TestMetricsCountHookCallsAndSyncPhases(t *testing.T) {
	s, _ := testServer(t)
	post(s, "/sync", readFile(t, freshInstall))
	post(s, "/sync", []byte("garbage"))
	m := metricsText(t, s)
	for _, want := range []string{
		`summon_hook_duration_seconds_bucket{hook="sync",le="5e-05"}`,
		`summon_hook_duration_seconds_bucket{hook="sync",le="10"}`,
		`summon_hook_duration_seconds_count{hook="sync"} 2`,
		`summon_hook_requests_total{code="200",hook="sync"} 1`,
		`summon_hook_requests_total{code="400",hook="sync"} 1`,
		`summon_syncs_total{phase="Initializing"} 1`,
		`summon_syncs_total{phase="Error"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

func TestHealthzAnswersAndReadyzWaitsForServing(t *testing.T) {
	s, _ := testServer(t)
	if rec := get(s, "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", rec.Code)
	}
	if rec := get(s, "/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before serving = %d, want 503", rec.Code)
	}
}

// slowFinalizer holds a finalize call until released, to stand for a hook call in flight.
type slowFinalizer struct {
	entered chan struct{}
	release chan struct{}
	then    finalize.Finalizer
}

func (f slowFinalizer) Finalize(ctx context.Context, req *metacontroller.SyncRequest) (*metacontroller.SyncResponse, error) {
	close(f.entered)
	<-f.release
	return f.then.Finalize(ctx, req)
}

func TestShutdownTurnsReadyzTo503AndLetsTheCallInFlightFinish(t *testing.T) {
	slow := slowFinalizer{entered: make(chan struct{}), release: make(chan struct{}), then: finalize.Teardown{Env: func() platform.Env { return platform.Env{} }}}
	s, _ := testServer(t, withFinalizer(slow))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	if resp, err := client.Get(base + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz while serving: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	type answer struct {
		code int
		body []byte
		err  error
	}
	inFlight := make(chan answer, 1)
	go func() {
		resp, err := client.Post(base+"/finalize", "application/json", bytes.NewReader(readFile(t, freshInstall)))
		if err != nil {
			inFlight <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- answer{code: resp.StatusCode, body: b, err: err}
	}()
	<-slow.entered

	stop() // SIGTERM
	for get(s, "/readyz").Code != http.StatusServiceUnavailable {
		runtime.Gosched()
	}
	select {
	case err := <-served:
		t.Fatalf("the server stopped with a call in flight: %v", err)
	default:
	}

	close(slow.release)
	a := <-inFlight
	if a.err != nil || a.code != http.StatusOK {
		t.Fatalf("the call in flight got %d %v: %s", a.code, a.err, a.body)
	}
	if !decodeStrict(t, a.body).Finalized {
		t.Error("the call in flight did not finish its answer")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Error("the server still accepts connections after shutting down")
	}
}
