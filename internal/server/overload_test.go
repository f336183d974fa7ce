package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forklift-dev/summon/hooks/finalize"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// holdingFinalizer keeps every finalize call until released: calls that take long (a slow AWS)
// and hold their slot.
type holdingFinalizer struct {
	entered chan struct{}
	release chan struct{}
}

func (f holdingFinalizer) Finalize(ctx context.Context, req *metacontroller.SyncRequest) (*metacontroller.SyncResponse, error) {
	f.entered <- struct{}{}
	<-f.release
	return finalize.Teardown{Env: func() platform.Env { return platform.Env{} }}.Finalize(ctx, req)
}

// serveLoopback serves s on a free 127.0.0.1 port until the test ends and returns its base URL.
func serveLoopback(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

type answer struct {
	code       int
	retryAfter string
	err        error
}

func postAll(client *http.Client, url string, body []byte, n int) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				out[i] = answer{err: err}
				return
			}
			defer resp.Body.Close()
			_, err = io.Copy(io.Discard, resp.Body)
			out[i] = answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), err: err}
		})
	}
	wg.Wait()
	return out
}

func TestCallsBeyondTheLimitGet429AtOnceAndTheOthersFinish(t *testing.T) {
	const limit, extra = 2, 30
	hold := holdingFinalizer{entered: make(chan struct{}, limit), release: make(chan struct{})}
	s, _ := testServer(t, withFinalizer(hold), withConfig(func(c *Config) {
		c.MaxConcurrentHooks, c.OverloadRetryAfter = limit, 3*time.Second
	}))
	base := serveLoopback(t, s)
	// The timeout only says where the test gives up on an answer; any answer past it is a failure.
	client := &http.Client{Timeout: 30 * time.Second}
	body := readFile(t, freshInstall)

	held := make(chan []answer, 1)
	go func() { held <- postAll(client, base+"/finalize", body, limit) }()
	for range limit {
		<-hold.entered
	}

	for _, a := range postAll(client, base+"/sync", body, extra) {
		if a.err != nil {
			t.Fatalf("a call beyond the limit got no answer: %v", a.err)
		}
		if a.code != http.StatusTooManyRequests || a.retryAfter != "3" {
			t.Errorf("a call beyond the limit got %d with Retry-After %q, want 429 with 3", a.code, a.retryAfter)
		}
	}
	if m := metricsText(t, s); !strings.Contains(m, "summon_hook_in_flight 2") {
		t.Errorf("/metrics does not show the 2 calls in flight")
	}

	close(hold.release)
	for _, a := range <-held {
		if a.err != nil || a.code != http.StatusOK {
			t.Errorf("a call within the limit got %d, %v; want 200", a.code, a.err)
		}
	}
	// The slots are free again.
	if a := postAll(client, base+"/sync", body, 1)[0]; a.code != http.StatusOK {
		t.Errorf("after the load a sync got %d, want 200", a.code)
	}
}

func TestASyncStormOnLoopbackGetsNo5xxAndNoTimeout(t *testing.T) {
	s, _ := testServer(t, withConfig(func(c *Config) { c.MaxConcurrentHooks = 2 }))
	base := serveLoopback(t, s)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := readFile(t, "../../testdata/sync/steady-ready/request.json")

	counts := map[int]int{}
	for range 4 {
		for _, a := range postAll(client, base+"/sync", body, 64) {
			if a.err != nil {
				t.Fatalf("a call got no answer: %v", a.err)
			}
			counts[a.code]++
		}
	}
	for code, n := range counts {
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Errorf("%d calls got %d; under load every call is answered 200 or 429", n, code)
		}
	}
	if counts[http.StatusOK] == 0 {
		t.Error("no call was served at all")
	}
	t.Logf("answers: %v", counts)
}
