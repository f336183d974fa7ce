// Command summon-load is a small load generator for Summon's hook server, for measuring it on
// loopback (hack/bench.sh runs it; docs/performance.md has the results). It POSTs one request
// body, by default the steady-state sync request of testdata/sync/steady-ready, compacted as
// Metacontroller sends it, with a few concurrent workers, until a duration or a request count is
// reached, whichever comes first. Every answer must be a 200 that decodes as a sync response with
// a non-null children list; anything else counts as an error. It prints the throughput, the
// latency percentiles, the errors and the bytes sent and received, and exits 1 if any call failed.
//
// With -etag it first makes one call to learn the answer's ETag, then sends it back in
// If-None-Match, as Metacontroller's ETag cache does in steady state: every answer must then be a
// 304. With -metrics (the server's /metrics) it reads the server's CPU time and allocations before
// and after the load and reports them per call; with -pid, the server's peak resident memory. Its
// last line, "result ...", holds the figures as key=value pairs for hack/bench.sh.
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
	"strconv"
	"strings"
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
	var o options
	flag.BoolVar(&o.etag, "etag", false, "send the answer's ETag back in If-None-Match; every answer must then be a 304")
	flag.StringVar(&o.metrics, "metrics", "", "the server's /metrics URL (loopback): report its CPU time and allocations per call")
	flag.IntVar(&o.pid, "pid", 0, "the server's process ID: report its peak resident memory (VmHWM)")
	flag.StringVar(&o.label, "label", "", "a name for this run in the result line")
	flag.Parse()

	if err := run(*target, *bodyFile, *workers, *duration, *maxRequests, *timeout, o); err != nil {
		fmt.Fprintln(os.Stderr, "summon-load:", err)
		os.Exit(1)
	}
}

// options are the measurements beside the load.
type options struct {
	etag    bool
	metrics string
	pid     int
	label   string
}

// result is what one worker saw.
type result struct {
	latencies      []time.Duration // of the successful calls
	errors         int
	firstError     error
	sent, received int64
}

func run(target, bodyFile string, workers int, duration time.Duration, maxRequests int, timeout time.Duration, o options) error {
	if workers < 1 || duration <= 0 || maxRequests < 1 || timeout <= 0 {
		return errors.New("-workers, -duration, -requests and -timeout must all be positive")
	}
	if err := checkLoopback(target); err != nil {
		return err
	}
	if o.metrics != "" {
		if err := checkLoopback(o.metrics); err != nil {
			return err
		}
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

	c := caller{client: client, target: target, body: body}
	if o.etag {
		tag, err := c.learnETag()
		if err != nil {
			return err
		}
		c.ifNoneMatch = tag
	}
	var before serverStats
	if o.metrics != "" {
		if before, err = scrape(client, o.metrics); err != nil {
			return err
		}
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
				n, err := c.call()
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
	var after serverStats
	if o.metrics != "" {
		if after, err = scrape(client, o.metrics); err != nil {
			return err
		}
	}

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
	res := resultLine{label: o.label, workers: workers, calls: total, rps: float64(total) / wall.Seconds()}
	if len(all) > 0 {
		res.p50, res.p99 = percentile(all, 50), percentile(all, 99)
	}
	if o.metrics != "" && total > 0 {
		d := after.minus(before)
		res.serverStats = &d
		fmt.Printf("server      %.3f ms of CPU, %.0f allocations and %.0f bytes allocated per call\n",
			d.cpuSeconds*1000/float64(total), d.mallocs/float64(total), d.allocBytes/float64(total))
	}
	if o.pid != 0 {
		hwm, err := peakRSS(o.pid)
		if err != nil {
			return err
		}
		res.peakRSS = hwm
		fmt.Printf("server      peak resident memory %.1f MiB\n", float64(hwm)/(1<<20))
	}
	fmt.Println(res.String())
	if errCount > 0 {
		return fmt.Errorf("%d of %d calls failed; the first: %w", errCount, total, firstErr)
	}
	return nil
}

// resultLine is the run's figures as one line of key=value pairs.
type resultLine struct {
	label       string
	workers     int
	calls       int
	rps         float64
	p50, p99    time.Duration
	serverStats *serverStats
	peakRSS     int64
}

func (r resultLine) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "result label=%s workers=%d calls=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f", cmpOr(r.label, "-"), r.workers, r.calls, r.rps,
		float64(r.p50)/float64(time.Millisecond), float64(r.p99)/float64(time.Millisecond))
	if s := r.serverStats; s != nil && r.calls > 0 {
		n := float64(r.calls)
		fmt.Fprintf(&b, " cpu_ms_per_call=%.4f allocs_per_call=%.0f bytes_per_call=%.0f", s.cpuSeconds*1000/n, s.mallocs/n, s.allocBytes/n)
	}
	if r.peakRSS > 0 {
		fmt.Fprintf(&b, " peak_rss_mib=%.1f", float64(r.peakRSS)/(1<<20))
	}
	return b.String()
}

func cmpOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// serverStats are the server's own counters, from its /metrics.
type serverStats struct {
	cpuSeconds, mallocs, allocBytes float64
}

func (s serverStats) minus(o serverStats) serverStats {
	return serverStats{s.cpuSeconds - o.cpuSeconds, s.mallocs - o.mallocs, s.allocBytes - o.allocBytes}
}

// scrape reads the process's CPU time and the Go runtime's allocation counters from a
// Prometheus text page.
func scrape(client *http.Client, metricsURL string) (serverStats, error) {
	resp, err := client.Get(metricsURL)
	if err != nil {
		return serverStats{}, err
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return serverStats{}, fmt.Errorf("reading %s: %s %v", metricsURL, resp.Status, err)
	}
	want := map[string]*float64{}
	var s serverStats
	want["process_cpu_seconds_total"] = &s.cpuSeconds
	want["go_memstats_mallocs_total"] = &s.mallocs
	want["go_memstats_alloc_bytes_total"] = &s.allocBytes
	found := 0
	for line := range strings.SplitSeq(string(page), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if p := want[name]; ok && p != nil {
			if *p, err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
				return serverStats{}, fmt.Errorf("%s: %s: %w", metricsURL, name, err)
			}
			found++
		}
	}
	if found != len(want) {
		return serverStats{}, fmt.Errorf("%s lacks one of process_cpu_seconds_total, go_memstats_mallocs_total, go_memstats_alloc_bytes_total", metricsURL)
	}
	return s, nil
}

// peakRSS is a process's peak resident memory (VmHWM in /proc/PID/status), in bytes.
func peakRSS(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("-pid: %w", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("-pid: VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("-pid: no VmHWM for process %d", pid)
}

// caller makes the calls of one run.
type caller struct {
	client      *http.Client
	target      string
	body        []byte
	ifNoneMatch string // "" asks for the whole answer every time
}

// learnETag makes one call and returns the ETag of its answer.
func (c caller) learnETag() (string, error) {
	resp, err := c.post()
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	tag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || tag == "" {
		return "", fmt.Errorf("-etag: the first answer is %s with ETag %q; the server names no answer", resp.Status, tag)
	}
	return tag, nil
}

func (c caller) post() (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, c.target, bytes.NewReader(c.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.ifNoneMatch != "" {
		req.Header.Set("If-None-Match", c.ifNoneMatch)
	}
	return c.client.Do(req)
}

// call POSTs the body once and checks the answer: a 200 whose body decodes as a sync response
// with a non-null children list, or with If-None-Match a 304 with no body. It returns the bytes
// of the answer's body.
func (c caller) call() (int64, error) {
	resp, err := c.post()
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	n := int64(len(answer))
	if err != nil {
		return n, fmt.Errorf("reading the answer: %w", err)
	}
	if c.ifNoneMatch != "" {
		if resp.StatusCode != http.StatusNotModified || n != 0 {
			return n, fmt.Errorf("answered %s with %d bytes to If-None-Match %s, not 304 Not Modified", resp.Status, n, c.ifNoneMatch)
		}
		return 0, nil
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
