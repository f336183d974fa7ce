package dashboard

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// testServer serves a view filled directly, as the informers would fill it.
func testServer(t testing.TB, ps ...Platform) (*server, *View) {
	t.Helper()
	v := newView(newStores())
	for _, p := range ps {
		v.putPlatform(p)
	}
	v.synced.Store(true)
	s := newServer(v, "", slog.New(slog.NewJSONHandler(io.Discard, nil)))
	s.now = func() time.Time { return now }
	s.hosts = []string{"example.com"} // httptest.NewRequest's Host
	return s, v
}

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func parse(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// walk calls fn for every element below n.
func walk(n *html.Node, fn func(*html.Node)) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode {
			fn(c)
		}
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return b.String()
}

func TestTheFleetPageListsTheRowsInTheirOrder(t *testing.T) {
	s, _ := testServer(t, fleet()...)
	rec := get(t, s.handler(), "/?namespace=summon-prod")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / = %d\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("content security policy %q", csp)
	}
	var rows []string
	walk(parse(t, rec.Body.String()), func(n *html.Node) {
		if v, ok := attr(n, "data-instance"); ok {
			rows = append(rows, v)
		}
	})
	want := []string{"summon-prod/acme", "summon-prod/zeta", "summon-prod/beta", "summon-prod/fresh"}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestPagesThatDontExistAnswer404(t *testing.T) {
	s, _ := testServer(t, fleet()...)
	for _, target := range []string{"/instances/summon-qa/nope", "/instances/summon-qa", "/nope"} {
		if rec := get(t, s.handler(), target); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", target, rec.Code)
		}
	}
	if rec := get(t, s.handler(), "/instances/summon-qa/car1-qa"); rec.Code != http.StatusOK {
		t.Errorf("GET an instance = %d\n%s", rec.Code, rec.Body)
	}
}

func TestUntilTheFleetIsLoadedPagesSayLoadingAndReadyzIs503(t *testing.T) {
	s, v := testServer(t, fleet()...)
	v.synced.Store(false)
	h := s.handler()
	for _, target := range []string{"/", "/readyz", "/live?page=/"} {
		if rec := get(t, h, target); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s while loading = %d, want 503", target, rec.Code)
		}
	}
	if body := get(t, h, "/").Body.String(); !strings.Contains(body, `http-equiv="refresh"`) {
		t.Errorf("the loading page doesn't reload itself:\n%s", body)
	}
	if rec := get(t, h, "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("GET /healthz while loading = %d, want 200", rec.Code)
	}
	v.synced.Store(true)
	if rec := get(t, h, "/readyz"); rec.Code != http.StatusOK {
		t.Errorf("GET /readyz once loaded = %d, want 200", rec.Code)
	}
}

// hostile are strings that break out of HTML text, of quoted and unquoted attributes, and of a
// URL: rendered as text, none of them may become markup.
var hostile = []string{
	`<script>document.title="pwned"</script>`,
	`"><img src=x onerror="document.title='pwned'">`,
	`' autofocus onfocus='document.title=1' x='`,
	`javascript:document.title='pwned'`,
}

func TestHostileStringsFromTheClusterAreRenderedAsText(t *testing.T) {
	payload := strings.Join(hostile, " ")
	p := testPlatform("summon-qa", "car1-qa", phase(v1beta1.PhaseError, payload),
		condition(v1beta1.ConditionReady, false, "SpecInvalid", payload, time.Minute))
	// The API server would refuse such a hostname (the CRD's pattern); the view is filled
	// directly here, so the page's own defence is what is tested.
	p.Spec.Hostname = `javascript:alert(1)//"><script>alert(1)</script>`
	p.Spec.Config = map[string]v1beta1.ConfigValue{"SITE_NAME": v1beta1.StringValue(payload)}
	p.Spec.Secrets = []string{payload}
	p.Status.External = &v1beta1.ExternalStatus{Bucket: payload}
	p.Status.MigratedVersion = payload
	s, v := testServer(t, p)
	v.stores.events.Add(event(v1beta1.Kind, "car1-qa", "Hostile", payload, time.Second))

	for _, target := range []string{"/", "/?q=" + url.QueryEscape(payload), "/instances/summon-qa/car1-qa"} {
		t.Run(target, func(t *testing.T) {
			body := get(t, s.handler(), target).Body.String()
			doc := parse(t, body)
			walk(doc, func(n *html.Node) {
				switch n.Data {
				case "script":
					if src, _ := attr(n, "src"); src != "/static/live.js" || text(n) != "" {
						t.Errorf("a script element that isn't the dashboard's: src=%q %q", src, text(n))
					}
				case "img":
					t.Errorf("an img element made it into the page")
				}
				for _, a := range n.Attr {
					if strings.HasPrefix(a.Key, "on") || a.Key == "autofocus" || a.Key == "x" {
						t.Errorf("<%s> has an attribute %s=%q that no template writes", n.Data, a.Key, a.Val)
					}
					if a.Key == "href" && strings.HasPrefix(strings.ToLower(a.Val), "javascript:") {
						t.Errorf("<%s href=%q>", n.Data, a.Val)
					}
				}
			})
			if target == "/instances/summon-qa/car1-qa" {
				if got := strings.Count(text(doc), hostile[0]); got < 5 {
					t.Errorf("the payload shows as text %d times, want it in the message, the condition, the config, the secret names, the bucket, the version and the event", got)
				}
			}
		})
	}
}

func TestAHostnameIsAlwaysAnHTTPSLink(t *testing.T) {
	p := testPlatform("summon-qa", "car1-qa", hostname("car1-qa.example.com"))
	s, _ := testServer(t, p)
	var hrefs []string
	walk(parse(t, get(t, s.handler(), "/instances/summon-qa/car1-qa").Body.String()), func(n *html.Node) {
		if href, ok := attr(n, "href"); ok && n.Data == "a" && strings.Contains(href, "example.com") {
			hrefs = append(hrefs, href)
		}
	})
	if diff := cmp.Diff([]string{"https://car1-qa.example.com/"}, hrefs); diff != "" {
		t.Errorf("host links (-want +got):\n%s", diff)
	}
}

func TestMetricsCountRequestsByRouteAndLiveViewers(t *testing.T) {
	s, _ := testServer(t, fleet()...)
	h := s.handler()
	get(t, h, "/")
	get(t, h, "/instances/summon-qa/car1-qa")
	get(t, h, "/instances/summon-qa/nope")
	s.metrics.viewers.Inc()
	body := get(t, h, "/metrics").Body.String()
	for _, want := range []string{
		`summon_dashboard_requests_total{code="200",route="GET /{$}"} 1`,
		`summon_dashboard_requests_total{code="200",route="GET /instances/{namespace}/{name}"} 1`,
		`summon_dashboard_requests_total{code="404",route="GET /instances/{namespace}/{name}"} 1`,
		`summon_dashboard_request_duration_seconds_count{route="GET /{$}"} 1`,
		`summon_dashboard_live_viewers 1`,
		`summon_dashboard_platforms 6`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no line %q", want)
		}
	}
}

// sseReader reads server-sent events.
type sseReader struct{ r *bufio.Reader }

// next returns the next event's name and data, skipping comments.
func (s sseReader) next() (event, data string, err error) {
	var lines []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && event != "":
			return event, strings.Join(lines, "\n"), nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			lines = append(lines, strings.TrimPrefix(line, "data: "))
		}
	}
}

func liveStream(t *testing.T, base, page string) (sseReader, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/live?page="+url.QueryEscape(page), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /live = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return sseReader{bufio.NewReader(resp.Body)}, func() { cancel(); resp.Body.Close() }
}

func TestLiveUpdatesPushThePagesNewPartWhenTheViewChanges(t *testing.T) {
	s, v := testServer(t, testPlatform("summon-qa", "car1-qa", migrating(v2, v1, time.Minute)...))
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	events, stop := liveStream(t, srv.URL, "/instances/summon-qa/car1-qa")
	defer stop()

	name, data, err := events.next()
	if err != nil || name != "page" || !strings.Contains(data, `id="phase" class="phase phase-progress">Migrating<`) {
		t.Fatalf("first event %q (%v):\n%s", name, err, data)
	}
	// Something the page doesn't show changes: nothing is sent. Then the instance changes.
	v.putPlatform(testPlatform("summon-qa", "car2-qa"))
	v.putPlatform(testPlatform("summon-qa", "car1-qa", ready(v2, 0)...))
	name, data, err = events.next()
	if err != nil || name != "page" || !strings.Contains(data, `id="phase" class="phase phase-ready">Ready<`) {
		t.Fatalf("next event %q (%v):\n%s", name, err, data)
	}
	if strings.Contains(data, "<html") || strings.Contains(data, "<header") {
		t.Errorf("the event is not the live part alone:\n%s", data)
	}
	v.deletePlatform("summon-qa/car1-qa")
	if _, data, err = events.next(); err != nil || !strings.Contains(data, "There is no SummonPlatform car1-qa in namespace summon-qa") {
		t.Fatalf("after the delete (%v):\n%s", err, data)
	}
}

func TestLiveUpdatesOnlyServeTheDashboardsOwnPages(t *testing.T) {
	s, _ := testServer(t)
	for _, page := range []string{"", "http://example.com/", "//example.com/", "relative"} {
		if rec := get(t, s.handler(), "/live?page="+url.QueryEscape(page)); rec.Code != http.StatusBadRequest {
			t.Errorf("GET /live?page=%s = %d, want 400", page, rec.Code)
		}
	}
}

func TestAnEventsDataCannotStartAFieldOfItsOwn(t *testing.T) {
	got := string(sseEvent("page", []byte("a\r\nevent: evil\rdata: x\nb")))
	want := "event: page\ndata: a\ndata: event: evil\ndata: data: x\ndata: b\n\n"
	if got != want {
		t.Errorf("sseEvent = %q, want %q", got, want)
	}
}

func TestShutdownEndsTheLiveConnections(t *testing.T) {
	s, _ := testServer(t, fleet()...)
	srv := httptest.NewUnstartedServer(s.handler())
	srv.Config.RegisterOnShutdown(s.stop)
	srv.Start()
	defer srv.Close()
	events, stop := liveStream(t, srv.URL, "/")
	defer stop()
	if _, _, err := events.next(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a live viewer: %v", err)
	}
	if _, _, err := events.next(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("the live stream after shutdown: %v, want its end", err)
	}
}

// A page on another site can point a name of its own at 127.0.0.1 (DNS rebinding) and read the
// dashboard as same-origin: the browser then sends that name as the Host, which is refused.
func TestTheDashboardAnswersOnlyForItsOwnHosts(t *testing.T) {
	s, _ := testServer(t)
	s.hosts = []string{"summon-dashboard.summon-system.svc"}
	s.stop() // /live streams until the server stops; stopped, it answers and ends
	tests := map[string]struct {
		host    string
		refused bool
	}{
		"localhost with a port": {host: "localhost:8090"},
		"127.0.0.1":             {host: "127.0.0.1:8090"},
		"[::1]":                 {host: "[::1]:8090"},
		"a pod IP, as the kubelet's probe sends it":   {host: "10.244.1.7:8090"},
		"an allowed name, in another case":            {host: "Summon-Dashboard.summon-system.svc:80"},
		"a rebinding attacker's name":                 {host: "evil.example:8090", refused: true},
		"a name that starts like localhost":           {host: "localhost.evil.example", refused: true},
		"a name that only starts like an allowed one": {host: "summon-dashboard.summon-system.svc.evil.example", refused: true},
		"no Host at all":                              {host: "", refused: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/", "/live", "/metrics"} {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Host = tc.host
				rec := httptest.NewRecorder()
				s.handler().ServeHTTP(rec, req)
				if refused := rec.Code == http.StatusMisdirectedRequest; refused != tc.refused {
					t.Errorf("%s with Host %q answered %d; refused = %v, want %v", path, tc.host, rec.Code, refused, tc.refused)
				}
			}
		})
	}
}

// Each live viewer holds a connection for as long as its page is open: past the cap, /live
// answers 503 at once, and a freed place is taken again.
func TestLiveViewersAreCapped(t *testing.T) {
	s, _ := testServer(t)
	s.maxViewers = 2
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	defer s.stop()
	open := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/live?page=/", nil)
		if err != nil {
			t.Fatal(err)
		}
		return srv.Client().Do(req)
	}
	var held []*http.Response
	for range 2 {
		resp, err := open()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("viewer %d answered %d", len(held)+1, resp.StatusCode)
		}
		held = append(held, resp)
	}
	resp, err := open()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the third viewer answered %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	held[0].Body.Close()
	// The server sees the closed connection when it next writes or reads; wait for that.
	for s.liveViewers.Load() >= 2 {
		select {
		case <-t.Context().Done():
			t.Fatal("the closed viewer was never let go")
		case <-time.After(10 * time.Millisecond):
		}
	}
	resp, err = open()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after a viewer left, a new one answered %d", resp.StatusCode)
	}
	held[1].Body.Close()
}
