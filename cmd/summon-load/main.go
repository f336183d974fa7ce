// Command summon-load is a small load generator for Summon's hook server, for measuring it on
// loopback (hack/loadtest.sh runs it; docs/performance.md has the results). It POSTs one request
// body, by default the steady-state sync request of testdata/sync/steady-ready, compacted as
// Metacontroller sends it, with a few concurrent workers, until a duration or a request count is
// reached, whichever comes first. Every answer must be a 200 that decodes as a sync response with
// a non-null children list; anything else counts as an error. It prints the throughput, the
// latency percentiles, the errors and the bytes sent and received, and exits 1 if any call failed.
//
// It only ever talks to a loopback address (127.0.0.0/8, ::1 or localhost): it is a benchmark
// for one machine, not a tool to load someone else's server.
//
//	go run ./cmd/summon-load -workers 4 -duration 20s -requests 200000
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:8080/sync", "hook URL to POST to; its host must be loopback (127.0.0.0/8, ::1 or localhost)")
	bodyFile := flag.String("body", "testdata/sync/steady-ready/request.json", "JSON request body to send (compacted before sending)")
	workers := flag.Int("workers", 4, "concurrent workers, each with its own keep-alive connection")
	duration := flag.Duration("duration", 10*time.Second, "stop starting new requests after this long")
	maxRequests := flag.Int("requests", 100000, "stop after this many requests in total")
	timeout := flag.Duration("timeout", 10*time.Second, "timeout of one request (Metacontroller's hook timeout by default)")
	flag.Parse()

	if err := run(*target, *bodyFile, *workers, *duration, *maxRequests, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "summon-load:", err)
		os.Exit(1)
	}
}

// result is what one worker saw.
type result struct {
	latencies      []time.Duration // of the successful calls
	errors         int
	firstError     error
	sent, received int64
}

func run(target, bodyFile string, workers int, duration time.Duration, maxRequests int, timeout time.Duration) error {
	if workers < 1 || duration <= 0 || maxRequests < 1 || timeout <= 0 {
		return errors.New("-workers, -duration, -requests and -timeout must all be positive")
	}
	if err := checkLoopback(target); err != nil {
		return err
	}
	raw, err := os.ReadFile(bodyFile)
	if err != nil {
		return err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return fmt.Errorf("%s is not JSON: %w", bodyFile, err)
	}
	body := compact.Bytes()

	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // never through a proxy: loopback only
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}).DialContext,
			MaxIdleConnsPerHost: workers,
			DisableCompression:  true,
		},
	}

	var issued atomic.Int64
	deadline := time.Now().Add(duration)
	results := make([]result, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			r := &results[w]
			for time.Now().Before(deadline) && issued.Add(1) <= int64(maxRequests) {
				t0 := time.Now()
				n, err := call(client, target, body)
				elapsed := time.Since(t0)
				r.sent += int64(len(body))
				r.received += n
				if err != nil {
					r.errors++
					if r.firstError == nil {
						r.firstError = err
					}
					continue
				}
				r.latencies = append(r.latencies, elapsed)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)

	var all []time.Duration
	var errCount int
	var firstErr error
	var sent, received int64
	for _, r := range results {
		all = append(all, r.latencies...)
		errCount += r.errors
		if firstErr == nil {
			firstErr = r.firstError
		}
		sent += r.sent
		received += r.received
	}
	slices.Sort(all)
	total := len(all) + errCount

	fmt.Printf("target      POST %s, %d workers, body %d bytes (%s compacted)\n", target, workers, len(body), bodyFile)
	fmt.Printf("requests    %d in %.2fs (%d ok, %d errors)\n", total, wall.Seconds(), len(all), errCount)
	fmt.Printf("throughput  %.0f requests/s\n", float64(total)/wall.Seconds())
	if len(all) > 0 {
		fmt.Printf("latency     p50 %s  p90 %s  p99 %s  max %s  (successful calls)\n",
			ms(percentile(all, 50)), ms(percentile(all, 90)), ms(percentile(all, 99)), ms(all[len(all)-1]))
	}
	fmt.Printf("bytes       sent %d (%.1f MB/s), received %d (%.1f MB/s, %d per answer)\n",
		sent, float64(sent)/1e6/wall.Seconds(), received, float64(received)/1e6/wall.Seconds(), perAnswer(received, total))
	if errCount > 0 {
		return fmt.Errorf("%d of %d calls failed; the first: %w", errCount, total, firstErr)
	}
	return nil
}

// call POSTs the body once and checks the answer: a 200 whose body decodes as a sync response
// with a non-null children list. It returns the bytes of the answer's body.
func call(client *http.Client, target string, body []byte) (int64, error) {
	resp, err := client.Post(target, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	n := int64(len(answer))
	if err != nil {
		return n, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("answered %s: %.200s", resp.Status, answer)
	}
	var sync struct {
		Status   json.RawMessage    `json:"status"`
		Children *[]json.RawMessage `json:"children"`
	}
	if err := json.Unmarshal(answer, &sync); err != nil {
		return n, fmt.Errorf("the answer is not a sync response: %w", err)
	}
	if sync.Children == nil {
		return n, errors.New("the answer's children list is missing or null")
	}
	return n, nil
}

// checkLoopback refuses a URL whose host is not a loopback address or "localhost".
func checkLoopback(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url %q: the scheme must be http or https", target)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %q: refusing a host that is not loopback (127.0.0.0/8, ::1 or localhost)", target)
}

// loopbackOnly is the dialer's last check: whatever "localhost" resolves to, the connection goes
// to a loopback address or nowhere.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
	}
	return nil
}

// percentile is the nearest-rank percentile p of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }

func perAnswer(received int64, total int) int64 {
	if total == 0 {
		return 0
	}
	return received / int64(total)
}
