package fleet

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envNoop, set to a loopback address, makes this test binary serve the do-nothing hook there
// instead of running tests (TestMain): the hook is a process of its own, so that its CPU is
// measured apart from the harness's.
const envNoop = "SUMMON_FLEET_NOOP_LISTEN"

// The do-nothing hook answers every sync with the kinds and the number of children that Summon's
// hook answers for a fleet instance once it waits for its migrations (a config Secret, four
// Services, an Ingress, a migration Job), named after the parent, and a fixed status in the same
// phase; its finalize says finalized at once and keeps the children, as Summon's does (the
// garbage collector removes them). Its customize asks for nothing, as Summon's does for a spec
// without input Secrets. It reads nothing of the request but the parent's name.
func serveNoop(addr string) error {
	var mu sync.Mutex
	calls := map[string]int{}
	count := func(hook string) {
		mu.Lock()
		calls[hook]++
		mu.Unlock()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /customize", func(w http.ResponseWriter, r *http.Request) {
		count("customize")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"relatedResources":[]}`))
	})
	answer := func(hook string, finalized bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			count(hook)
			var req struct {
				Parent struct {
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				} `json:"parent"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"status":    map[string]any{"phase": expectedPhase, "message": "do-nothing hook"},
				"children":  noopChildren(req.Parent.Metadata.Name),
				"finalized": finalized,
			})
		}
	}
	mux.HandleFunc("POST /sync", answer("sync", false))
	mux.HandleFunc("POST /finalize", answer("finalize", true))
	mux.HandleFunc("GET /calls", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(calls)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// noopChildren are the do-nothing hook's fixed children of the parent name.
func noopChildren(name string) []map[string]any {
	meta := func(n string) map[string]any { return map[string]any{"name": n} }
	service := func(component string, port int) map[string]any {
		return map[string]any{
			"apiVersion": "v1", "kind": "Service", "metadata": meta(name + "-" + component),
			"spec": map[string]any{
				"selector": map[string]any{"app.kubernetes.io/instance": name, "app.kubernetes.io/component": component},
				"ports":    []any{map[string]any{"name": "http", "port": port, "targetPort": port}},
			},
		}
	}
	return []map[string]any{
		{
			"apiVersion": "v1", "kind": "Secret", "metadata": meta(name + "-config"),
			// data, not stringData: the API server stores stringData as data, and Metacontroller
			// would then update the Secret on every sync to put stringData back.
			"type": "Opaque", "data": map[string]any{"settings.json": base64.StdEncoding.EncodeToString([]byte(`{"DEBUG":false}`))},
		},
		service("web", 8000), service("daphne", 8001), service("static", 8080), service("celerybeat", 8002),
		{
			"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta(name),
			"spec": map[string]any{"rules": []any{map[string]any{
				"host": name + ".fleet.example.com",
				"http": map[string]any{"paths": []any{map[string]any{
					"path": "/", "pathType": "Prefix",
					"backend": map[string]any{"service": map[string]any{"name": name + "-web", "port": map[string]any{"number": 8000}}},
				}}},
			}}},
		},
		{
			"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(name + "-migrate-fleet"),
			"spec": map[string]any{
				"backoffLimit": 1,
				"template": map[string]any{"spec": map[string]any{
					"restartPolicy": "Never",
					"containers": []any{map[string]any{
						"name": "migrate", "image": "registry.example.com/summon-platform:fleet",
						"command": []any{"python", "manage.py", "migrate"},
					}},
				}},
			},
		},
	}
}

// noopHook is the do-nothing hook's process.
type noopHook struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// startNoop runs this test binary as the do-nothing hook on a free loopback port.
func startNoop(t *testing.T, addr string) *noopHook {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envNoop+"="+addr)
	log, err := os.Create(t.TempDir() + "/noop.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the do-nothing hook: %v", err)
	}
	h := &noopHook{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(h.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-h.done
		}
	})
	waitListening(t, addr)
	return h
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 30s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hookCalls reads a hook's calls so far, by hook and answer ("sync 200", "sync 304").
type hookCalls func() (map[string]int, error)

func noopCalls(addr string) hookCalls {
	return func() (map[string]int, error) {
		resp, err := http.Get("http://" + addr + "/calls")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var calls map[string]int
		if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
			return nil, err
		}
		out := map[string]int{}
		for hook, n := range calls {
			out[hook+" 200"] = n
		}
		return out, nil
	}
}

// summonCalls reads Summon's summon_hook_requests_total from its /metrics.
func summonCalls(url string) hookCalls {
	return func() (map[string]int, error) {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		out := map[string]int{}
		for _, line := range strings.Split(string(b), "\n") {
			// summon_hook_requests_total{code="200",hook="sync"} 12
			rest, ok := strings.CutPrefix(line, "summon_hook_requests_total{")
			if !ok {
				continue
			}
			labels, value, ok := strings.Cut(rest, "} ")
			if !ok {
				continue
			}
			var code, hook string
			for _, kv := range strings.Split(labels, ",") {
				k, v, _ := strings.Cut(kv, "=")
				v = strings.Trim(v, `"`)
				switch k {
				case "code":
					code = v
				case "hook":
					hook = v
				}
			}
			var n float64
			if _, err := fmt.Sscan(value, &n); err != nil {
				return nil, fmt.Errorf("reading %q: %w", line, err)
			}
			out[hook+" "+code] = int(n)
		}
		return out, nil
	}
}
