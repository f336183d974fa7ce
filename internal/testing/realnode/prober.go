package realnode

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prober sends one request after another to a URL for as long as it runs, as a user of the app
// would through its Service, and counts every answer by its body and every failure by its kind.
// A failure is anything but a 200: a refused or reset connection, no answer within
// requestTimeout, an error status. An answer slower than slowAnswer is counted as answered, and
// logged apart.
type Prober struct {
	url      string
	interval time.Duration
	client   *http.Client
	opts     ProbeOptions

	mu       sync.Mutex
	requests int
	answers  map[string]int
	failures map[string]int
	failLog  []string
	slow     int
	slowLog  []string

	cancel context.CancelFunc
	done   chan struct{}
}

// ProbeOptions shape what a Prober sends and how it reads an answer.
type ProbeOptions struct {
	// Host is the Host header of each request (an app allows only its own hostnames); empty: the
	// URL's.
	Host string
	// Answer reads the body of a 200 into what the Prober counts it as; an error counts the
	// request as failed, the error being its kind. Nil: the body itself, trimmed.
	Answer func(body []byte) (string, error)
}

// requestTimeout is how long a request may wait for its answer. A request dropped in a rollout
// is refused, reset, or sent to a pod that is gone (its SYN is never answered, however long the
// client waits: every retransmission follows the first one's translation); none of them is
// helped by waiting. A slow answer is something else: on the shared 2-core machine the node's
// pods compete with up to three control planes, and CI once saw one request of 2,022 go
// unanswered for the 2 s this timeout was.
const requestTimeout = 10 * time.Second

// slowAnswer is the time beyond which an answer is logged as slow.
const slowAnswer = 2 * time.Second

// StartProber starts probing url, a request every interval (each with requestTimeout, and a new
// connection each time, as kube-proxy balances connections, not requests).
func StartProber(url string, interval time.Duration) *Prober {
	return StartProberWith(url, interval, ProbeOptions{})
}

// StartProberWith is StartProber with options.
func StartProberWith(url string, interval time.Duration, o ProbeOptions) *Prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{
		url: url, interval: interval, opts: o,
		client: &http.Client{
			Timeout:   requestTimeout,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
		answers: map[string]int{}, failures: map[string]int{},
		cancel: cancel, done: make(chan struct{}),
	}
	go p.run(ctx)
	return p
}

func (p *Prober) run(ctx context.Context) {
	defer close(p.done)
	for {
		start := time.Now()
		answer, failure := p.once(ctx)
		took := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		// When the request was sent and how long it took: a failure is read against what the
		// Service's endpoints were when it was sent, not when it gave up.
		line := fmt.Sprintf("%s +%dms", start.Format("15:04:05.000"), took.Milliseconds())
		if failure == "Client.Timeout exceeded" {
			line += " " + failure + " (" + unansweredSYNs(p.url) + ")"
		} else if failure != "" {
			line += " " + failure
		}
		p.mu.Lock()
		p.requests++
		switch {
		case failure != "":
			p.failures[failure]++
			if len(p.failLog) < 20 {
				p.failLog = append(p.failLog, line)
			}
		case took >= slowAnswer:
			p.answers[answer]++
			p.slow++
			if len(p.slowLog) < 20 {
				p.slowLog = append(p.slowLog, line)
			}
		default:
			p.answers[answer]++
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.interval):
		}
	}
}

func (p *Prober) once(ctx context.Context) (answer, failure string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return "", err.Error()
	}
	if p.opts.Host != "" {
		req.Host = p.opts.Host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "", classify(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "reading the body: " + classify(err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	if p.opts.Answer != nil {
		a, err := p.opts.Answer(b)
		if err != nil {
			return "", err.Error()
		}
		return a, ""
	}
	return strings.TrimSpace(string(b)), ""
}

// classify names a failure by its kind, without the addresses and ports that differ each time.
func classify(err error) string {
	s := err.Error()
	for _, kind := range []string{"connection refused", "connection reset by peer", "Client.Timeout exceeded", "EOF", "no route to host", "i/o timeout"} {
		if strings.Contains(s, kind) {
			return kind
		}
	}
	return s
}

// Count is what a Prober saw.
type Count struct {
	Requests      int
	Failed        int
	Answers       map[string]int // by body
	Failures      map[string]int // by kind
	FirstFailures []string
	// Slow counts the answers that took slowAnswer or more; FirstSlow says when the first ones
	// were sent and how long each took.
	Slow      int
	FirstSlow []string
}

func (c Count) String() string {
	return fmt.Sprintf("%d requests, %d failed %v, %d slow, answers %v", c.Requests, c.Failed, c.Failures, c.Slow, sortedCounts(c.Answers))
}

// Firsts lists the first failures and the first slow answers, each with when it was sent and how
// long it took; "" when there were none.
func (c Count) Firsts() string {
	var parts []string
	if len(c.FirstFailures) > 0 {
		parts = append(parts, fmt.Sprintf("first failures: %v", c.FirstFailures))
	}
	if len(c.FirstSlow) > 0 {
		parts = append(parts, fmt.Sprintf("first slow answers (answered, not failed): %v", c.FirstSlow))
	}
	return strings.Join(parts, "; ")
}

func sortedCounts(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// Count returns what the prober has seen so far.
func (p *Prober) Count() Count {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := Count{
		Requests: p.requests, Answers: map[string]int{}, Failures: map[string]int{},
		FirstFailures: append([]string(nil), p.failLog...), Slow: p.slow, FirstSlow: append([]string(nil), p.slowLog...),
	}
	for k, v := range p.answers {
		c.Answers[k] = v
	}
	for k, v := range p.failures {
		c.Failures[k] = v
		c.Failed += v
	}
	return c
}

// Stop stops probing and returns the count.
func (p *Prober) Stop() Count {
	p.cancel()
	<-p.done
	return p.Count()
}

// unansweredSYNs says where the kernel sent the connections to rawURL's address that never got an
// answer, from the connection tracking table of the network namespace the prober runs in (the
// node's).
func unansweredSYNs(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err.Error()
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	table, err := os.ReadFile("/proc/net/nf_conntrack")
	if err != nil {
		return "no connection tracking table: " + err.Error()
	}
	return unansweredIn(string(table), u.Hostname(), port)
}

// unansweredIn reads a /proc/net/nf_conntrack table for the recent SYNs to host:port that got no
// answer, and where each was sent: a timed-out request whose SYN went to a pod's address found no
// one there (a pod already gone, still in the rules); one whose SYN kept the Service's address was
// not translated at all (no rule for the Service at that moment); none at all means the
// connection was made and the server did not answer in time.
func unansweredIn(table, host, port string) string {
	var found []string
	for _, line := range strings.Split(table, "\n") {
		orig, reply, ok := strings.Cut(line, "[UNREPLIED]")
		if !ok || tupleField(orig, "dst") != host || tupleField(orig, "dport") != port {
			continue
		}
		// An unanswered SYN is kept 120 s, refreshed by each retransmission (1 s after the first):
		// fewer than 115 s left is an older request's.
		if f := strings.Fields(orig); len(f) < 5 {
			continue
		} else if left, err := strconv.Atoi(f[4]); err != nil || left < 115 {
			continue
		}
		to := net.JoinHostPort(tupleField(reply, "src"), tupleField(reply, "sport"))
		if tupleField(reply, "src") == host {
			to += ", not translated"
		}
		found = append(found, "SYN from port "+tupleField(orig, "sport")+" sent to "+to+", unanswered")
	}
	if len(found) == 0 {
		return "no unanswered SYN to " + net.JoinHostPort(host, port) + ": the connection was made"
	}
	return strings.Join(found, "; ")
}

// tupleField is the value of the first key=value field named key in one half of a
// /proc/net/nf_conntrack line.
func tupleField(tuple, key string) string {
	for _, f := range strings.Fields(tuple) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}
