package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Every page is one of these templates, each with the layout: "body" is the page, "live" its part
// that live updates replace.
var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{"lower": strings.ToLower, "stamp": stamp}
	out := map[string]*template.Template{}
	for _, name := range []string{"fleet", "instance", "missing"} {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// contentSecurityPolicy lets a page load only the dashboard's own stylesheet and script and
// talk only to the dashboard. Escaping is the defence against a hostile string from the cluster;
// this is the second one.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Live updates: a viewer gets at most one render per liveInterval however fast the cluster
// changes, and one every liveRefresh anyway, so that the ages on the page move and proxies see
// traffic on an idle connection.
const (
	liveInterval = time.Second
	liveRefresh  = 30 * time.Second
)

// server answers the dashboard's HTTP requests from a View.
type server struct {
	view    *View
	log     *slog.Logger
	metrics *metrics
	scope   string
	now     func() time.Time

	// stopping closes when the HTTP server shuts down: live connections never end by
	// themselves, so they end then.
	stopping chan struct{}
	stopOnce sync.Once

	// hosts are the host names, beside localhost and IP addresses, that requests may name in
	// their Host header (hostAllowed).
	hosts []string
	// maxViewers caps the live connections (0: no cap); liveViewers counts them.
	maxViewers  int
	liveViewers atomic.Int64
}

func newServer(v *View, namespace string, log *slog.Logger) *server {
	scope := "all namespaces"
	if namespace != "" {
		scope = "namespace " + namespace
	}
	return &server{view: v, log: log, metrics: newMetrics(v), scope: scope, now: time.Now, stopping: make(chan struct{})}
}

func (s *server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /instances/{namespace}/{name}", s.page)
	mux.HandleFunc("GET /live", s.live)
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err)
	}
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.view.synced.Load() {
			http.Error(w, "not ready: still reading the fleet from the API server", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", s.metrics.handler())
	return s.checkHost(s.instrument(mux))
}

// checkHost refuses (421) a request whose Host is not one the dashboard serves. A page on any
// site can point a name of its own at 127.0.0.1 (DNS rebinding) and then read, as same-origin,
// what summonctl dashboard serves on a laptop; the browser sends that name as the Host.
func (s *server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, s.hosts) {
			http.Error(w, "this dashboard does not serve the host "+strconv.Quote(r.Host)+
				": open it as localhost, or start it with --allowed-host naming the host", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed says whether a Host header names the dashboard: an IP address (a rebinding attack
// needs a name of the attacker's; the kubelet's probes and kubectl port-forward use addresses and
// localhost), localhost, or one of the given names. The port is not checked.
func hostAllowed(hostport string, names []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" {
		return true
	}
	for _, n := range names {
		if strings.EqualFold(strings.TrimSuffix(n, "."), host) {
			return true
		}
	}
	return false
}

// instrument sets the security headers of every answer, then counts the request and writes its
// one log line, named by its route rather than its path so that neither grows without bound.
func (s *server) instrument(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		live := route == "GET /live"
		s.metrics.observe(route, rec.code, elapsed, live)
		level := slog.LevelInfo
		if rec.code >= http.StatusInternalServerError {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "request",
			slog.String("route", route), slog.String("path", r.URL.Path), slog.Int("code", rec.code), slog.Float64("seconds", elapsed.Seconds()))
	})
}

// statusRecorder keeps the status code; Unwrap lets http.ResponseController flush the live
// updates through it.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// layout is what every page's layout needs besides the page's own model.
type layout struct {
	Title string
	Scope string
	// Loading says that the informers have not listed the cluster yet: the page says so and
	// reloads.
	Loading bool
	Model   any
}

// resolved is a page and its model, for a full page or its live part.
type resolved struct {
	page  string
	title string
	code  int
	model any
}

// resolve finds the page for an address the way the routes do, and builds its model from the
// view. The live updates resolve the address the page was loaded from.
func (s *server) resolve(u *url.URL) resolved {
	if u.Path == "/" {
		q := parseFleetQuery(u.Query())
		return resolved{page: "fleet", title: "Fleet", code: http.StatusOK, model: fleetPage(s.view.Platforms(), q, s.now())}
	}
	if rest, ok := strings.CutPrefix(u.Path, "/instances/"); ok {
		if namespace, name, ok := strings.Cut(rest, "/"); ok && namespace != "" && name != "" && !strings.Contains(name, "/") {
			if d, found := s.view.instance(namespace, name); found {
				return resolved{page: "instance", title: namespace + "/" + name, code: http.StatusOK, model: instancePage(d, s.now())}
			}
			return resolved{page: "missing", title: namespace + "/" + name, code: http.StatusNotFound, model: missingModel{Namespace: namespace, Name: name}}
		}
	}
	return resolved{page: "missing", title: "Not found", code: http.StatusNotFound, model: missingModel{}}
}

// missingModel is the page of an instance that doesn't exist (or no longer does).
type missingModel struct{ Namespace, Name string }

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	if !s.view.synced.Load() {
		w.Header().Set("Retry-After", "2")
		s.write(w, http.StatusServiceUnavailable, "missing", layout{Title: "Loading", Scope: s.scope, Loading: true, Model: missingModel{}})
		return
	}
	p := s.resolve(r.URL)
	s.write(w, p.code, p.page, layout{Title: p.title, Scope: s.scope, Model: p.model})
}

func (s *server) write(w http.ResponseWriter, code int, page string, data layout) {
	var buf bytes.Buffer
	if err := pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("rendering a page", "page", page, "error", err.Error())
		http.Error(w, "the page could not be rendered; the dashboard's log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders the live part of the page at u.
func (s *server) fragment(u *url.URL) ([]byte, error) {
	p := s.resolve(u)
	var buf bytes.Buffer
	if err := pages[p.page].ExecuteTemplate(&buf, "live", p.model); err != nil {
		return nil, fmt.Errorf("rendering the live part of %s: %w", p.page, err)
	}
	return buf.Bytes(), nil
}

// live streams the live part of one page as server-sent events: once at once, then whenever it
// changes. Every render comes from the view; no viewer ever causes a call to the API server.
func (s *server) live(w http.ResponseWriter, r *http.Request) {
	page, err := url.Parse(r.URL.Query().Get("page"))
	if err != nil || page.Scheme != "" || page.Host != "" || !strings.HasPrefix(page.Path, "/") {
		http.Error(w, "live updates need ?page= with the path of a dashboard page", http.StatusBadRequest)
		return
	}
	if !s.view.synced.Load() {
		// EventSource reconnects by itself after an error.
		http.Error(w, "not ready: still reading the fleet from the API server", http.StatusServiceUnavailable)
		return
	}
	if n := s.liveViewers.Add(1); s.maxViewers > 0 && n > int64(s.maxViewers) {
		s.liveViewers.Add(-1)
		// Each viewer holds a connection and a goroutine for as long as its page is open; past the
		// cap a page still loads, without live updates. EventSource retries after an error.
		w.Header().Set("Retry-After", "30")
		http.Error(w, fmt.Sprintf("too many live viewers (the dashboard's --max-viewers is %d): reload the page later", s.maxViewers),
			http.StatusServiceUnavailable)
		return
	}
	defer s.liveViewers.Add(-1)
	rc := http.NewResponseController(w)
	// The server's write timeout is for pages; this answer lasts as long as the page is open.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		s.log.Warn("live updates: can't lift the write deadline", "error", err.Error())
	}
	changes, unsubscribe := s.view.changes.subscribe()
	defer unsubscribe()
	s.metrics.viewers.Inc()
	defer s.metrics.viewers.Dec()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// ingress-nginx would otherwise buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var last []byte
	send := func(keepAlive bool) bool {
		frag, err := s.fragment(page)
		if err != nil {
			s.log.Error("live updates", "error", err.Error())
			return false
		}
		var msg []byte
		switch {
		case !bytes.Equal(frag, last):
			msg, last = sseEvent("page", frag), frag
		case keepAlive:
			msg = []byte(": still here\n\n")
		default:
			return true
		}
		if _, err := w.Write(msg); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil || !send(false) {
		return
	}
	refresh := time.NewTicker(liveRefresh)
	defer refresh.Stop()
	for {
		keepAlive := false
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		case <-changes:
		case <-refresh.C:
			keepAlive = true
		}
		if !send(keepAlive) {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		case <-time.After(liveInterval):
		}
	}
}

// sseEvent frames data as one server-sent event. Every line, however it ends, gets its own
// "data:" field, so nothing in the data can start a field of its own.
func sseEvent(event string, data []byte) []byte {
	text := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(data))
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for _, line := range strings.Split(text, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return []byte(b.String())
}
