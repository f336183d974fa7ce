package fleet

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
)

// countingProxy stands between Metacontroller and kube-apiserver, on 127.0.0.1 and for
// Metacontroller's kubeconfig only, and counts every request it passes by verb, resource and
// answer: Metacontroller's API requests exactly, watches and discovery included, with nothing of
// the harness's own.
type countingProxy struct {
	mu sync.Mutex
	n  map[string]int
	// watches counts the watches opened per resource, to know when Metacontroller's informers run.
	watches map[string]int
	url     string
}

func startProxy(t *testing.T, cfg *rest.Config) *countingProxy {
	t.Helper()
	upstream, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The admin's client certificate is the proxy's; Metacontroller talks plain HTTP to it.
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{n: map[string]int{}, watches: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Host = upstream.Host
		},
		Transport: transport,
		// Watches stream; each event goes through at once.
		FlushInterval: -1,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verb, resource := classify(r)
		if verb == "WATCH" {
			p.mu.Lock()
			p.watches[resource]++
			p.mu.Unlock()
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(rec, r)
		p.mu.Lock()
		p.n[fmt.Sprintf("%s %s %d", verb, resource, rec.code)]++
		p.mu.Unlock()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// counts returns the requests so far, by "VERB resource code"; a watch counts when it ends.
func (p *countingProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.n)
}

func (p *countingProxy) watching(resource string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.watches[resource] > 0
}

// kubeconfig writes a kubeconfig that points at the proxy, with no credentials in it.
func (p *countingProxy) kubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "metacontroller.kubeconfig")
	b := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: fleet
  cluster:
    server: %s
contexts:
- name: fleet
  context: {cluster: fleet, user: metacontroller}
current-context: fleet
users:
- name: metacontroller
  user: {}
`, p.url)
	if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// statusRecorder keeps the status code of an answer; it passes Flush on for watches.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// classify names a request's verb (GET, LIST, WATCH, CREATE, UPDATE, PATCH, DELETE) and its
// resource (with "/status" for the subresource, "discovery" for the API's self-description).
func classify(r *http.Request) (verb, resource string) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:]
	default:
		segs = nil
	}
	if len(segs) >= 3 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	if len(segs) == 0 {
		return r.Method, "discovery"
	}
	resource = segs[0]
	named := len(segs) >= 2
	if len(segs) >= 3 {
		resource += "/" + segs[2]
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			verb = "WATCH"
		case named:
			verb = "GET"
		default:
			verb = "LIST"
		}
	case http.MethodPost:
		verb = "CREATE"
	case http.MethodPut:
		verb = "UPDATE"
	default:
		verb = r.Method
	}
	return verb, resource
}
