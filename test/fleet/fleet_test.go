// Package fleet measures a fleet of SummonPlatforms on the real Metacontroller: N instances
// applied at once, the time until all have converged and until all are gone after a delete,
// beside a do-nothing hook that answers with the same children (noop_test.go); Metacontroller's
// API requests (counted by a proxy in front of kube-apiserver, proxy_test.go), the hooks' calls
// and the CPU of every process over each phase. It runs only when SUMMON_FLEET and
// METACONTROLLER_BIN are set (hack/fleet.sh); it is too heavy for CI, and it skips saying so.
// It asserts no time: it fails on errors, hook failures, a sync loop, or a generous deadline.
// docs/fleet.md holds the results.
package fleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/forklift-dev/summon/internal/testing/mctest"
	"github.com/forklift-dev/summon/internal/testing/testcluster"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(envNoop); addr != "" {
		if err := serveNoop(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	mctest.Cleanup()
	os.Exit(code)
}

// The harness's settings, from the environment (hack/fleet.sh passes them on).
const (
	// envSizes is the fleet sizes, e.g. "100,1000".
	envSizes = "SUMMON_FLEET"
	// envSettings is one or more Metacontroller settings separated by ";": words starting with
	// "--" are Metacontroller flags (after mctest.DefaultArgs: a later flag wins); "etag=off"
	// turns the CompositeController's ETag cache off; "etag-timeout=S" and "etag-cleanup=S" set
	// its cacheTimeoutSeconds and cacheCleanupSeconds. Default: defaultSetting.
	envSettings = "SUMMON_FLEET_SETTINGS"
	// envHooks is which hooks to run, of "summon" and "noop" (default both, Summon first).
	envHooks = "SUMMON_FLEET_HOOKS"
	// envQuiet is the quiet window after convergence in which a sync loop would show (default 30s).
	envQuiet = "SUMMON_FLEET_QUIET"
	// envOut, when set, is a file that gets one JSON line per run.
	envOut = "SUMMON_FLEET_OUT"
)

const defaultSetting = "--client-go-qps=1000 --client-go-burst=2000"

// expectedPhase is where an instance stops on a cluster that runs no pods: its migration Job is
// created and never runs, so Summon waits in Migrating; the do-nothing hook says the same.
const expectedPhase = string(v1beta1.PhaseMigrating)

// settled says whether a parent's status is the last one its hook gives on this cluster. Summon
// answers Migrating twice: "starting the migrations" with the Job it asks for, then "running the
// migrations (Job ...)" once the Job is observed; only the second is the end. The do-nothing hook
// answers one status from the start.
var settled = map[string]func(message string) bool{
	"summon": func(m string) bool { return strings.HasPrefix(m, "running the migrations") },
	"noop":   func(string) bool { return true },
}

// childrenPerInstance is how many children of each kind a converged instance has, for both hooks.
var childrenPerInstance = map[string]int{"Secret": 1, "Service": 4, "Ingress": 1, "Job": 1}

// giveUp is where a phase is abandoned; it says nothing about how fast anything is.
const giveUp = 30 * time.Minute

const namespace = "fleet"

var platformGVR = schema.GroupVersionResource{Group: "summon.forklift.dev", Version: "v1beta1", Resource: "summonplatforms"}

var childGVRs = map[string]schema.GroupVersionResource{
	"Secret":  {Version: "v1", Resource: "secrets"},
	"Service": {Version: "v1", Resource: "services"},
	"Ingress": {Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
	"Job":     {Group: "batch", Version: "v1", Resource: "jobs"},
}

func TestFleet(t *testing.T) {
	sizesEnv := os.Getenv(envSizes)
	if sizesEnv == "" {
		t.Skipf("%s is not set (e.g. %s=100,1000); the fleet runs with hack/fleet.sh, not in CI", envSizes, envSizes)
	}
	bin := testenv.Metacontroller(t)
	assets := testenv.KubeAssets(t)
	var sizes []int
	for _, s := range strings.Split(sizesEnv, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want sizes like 100,1000", envSizes, sizesEnv)
		}
		sizes = append(sizes, n)
	}
	settings := []string{defaultSetting}
	if s := os.Getenv(envSettings); s != "" {
		settings = strings.Split(s, ";")
	}
	hooks := []string{"summon", "noop"}
	if s := os.Getenv(envHooks); s != "" {
		hooks = strings.Split(s, ",")
	}
	quiet := 30 * time.Second
	if s := os.Getenv(envQuiet); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", envQuiet, err)
		}
		quiet = d
	}
	for _, n := range sizes {
		for _, setting := range settings {
			for _, hook := range hooks {
				name := fmt.Sprintf("N=%d/%s/%s", n, hook, strings.ReplaceAll(strings.TrimSpace(setting), " ", ","))
				t.Run(name, func(t *testing.T) {
					r := runFleet(t, fleetRun{n: n, hook: hook, setting: strings.TrimSpace(setting), quiet: quiet, bin: bin, assets: assets})
					t.Logf("result:\n%s", r)
					if out := os.Getenv(envOut); out != "" {
						appendJSON(t, out, r)
					}
				})
			}
		}
	}
}

type fleetRun struct {
	n       int
	hook    string
	setting string
	quiet   time.Duration
	bin     string
	assets  string
}

// phase is what one phase of a run cost.
type phase struct {
	Seconds float64 `json:"seconds"`
	// Requests are Metacontroller's API requests by "VERB resource code".
	Requests map[string]int `json:"requests"`
	// Calls are the hook's calls by "hook code".
	Calls map[string]int `json:"calls"`
	// CPU is each process's CPU seconds.
	CPU map[string]float64 `json:"cpu"`
}

// result is one run.
type result struct {
	N        int    `json:"n"`
	Hook     string `json:"hook"`
	Setting  string `json:"setting"`
	Date     string `json:"date"`
	Converge phase  `json:"converge"`
	Quiet    phase  `json:"quiet"`
	Delete   phase  `json:"delete"`
	// MetacontrollerErrors counts the error lines of Metacontroller's log; HookTimeouts those that
	// say a hook call timed out; Conflicts the API's 409 answers to Metacontroller.
	MetacontrollerErrors int      `json:"metacontrollerErrors"`
	HookTimeouts         int      `json:"hookTimeouts"`
	Conflicts            int      `json:"conflicts"`
	ErrorSamples         []string `json:"errorSamples,omitempty"`
}

func runFleet(t *testing.T, fr fleetRun) result {
	ctx := t.Context()
	// A cluster of its own for every run: the same empty etcd and the same cold caches for both
	// hooks. Only the garbage collector runs, and no pods: an instance stops where its
	// migration Job would start to run.
	c, err := testcluster.Start(ctx, testcluster.Options{KubeAssets: fr.assets, NoPods: true, Controllers: "garbagecollector"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster logs:\n%s", c.Tails(30))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	cfg := c.Config()
	// The harness's own client must never be what the fleet waits on.
	cfg.QPS, cfg.Burst = 2000, 4000
	kube := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	if err := mctest.InstallCRDs(ctx, cfg, true); err != nil {
		t.Fatal(err)
	}
	mctest.EnsureHookToken(t, kube)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	pids := c.PIDs()
	var hookURL string
	var calls hookCalls
	switch fr.hook {
	case "summon":
		h := mctest.StartHook(t, []string{"--log-level=warn"})
		hookURL, calls = h.URL(), summonCalls(h.URL())
		pids["hook"] = h.PID()
	case "noop":
		addr := "127.0.0.1:" + mctest.FreePort(t)
		h := startNoop(t, addr)
		hookURL, calls = "http://"+addr, noopCalls(addr)
		pids["hook"] = h.cmd.Process.Pid
	default:
		t.Fatalf("unknown hook %q (want summon or noop)", fr.hook)
	}
	if settled[fr.hook] == nil {
		t.Fatalf("no settled status for hook %q", fr.hook)
	}

	cc := mctest.CompositeController(t, hookURL)
	var args []string
	for _, w := range strings.Fields(fr.setting) {
		switch {
		case strings.HasPrefix(w, "--"):
			args = append(args, w)
		case w == "etag=off":
			_ = unstructured.SetNestedField(cc.Object, false, "spec", "hooks", "sync", "webhook", "etag", "enabled")
		case strings.HasPrefix(w, "etag-timeout="), strings.HasPrefix(w, "etag-cleanup="):
			k, v, _ := strings.Cut(w, "=")
			s, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("setting %q: %v", w, err)
			}
			field := map[string]string{"etag-timeout": "cacheTimeoutSeconds", "etag-cleanup": "cacheCleanupSeconds"}[k]
			_ = unstructured.SetNestedField(cc.Object, s, "spec", "hooks", "sync", "webhook", "etag", field)
		default:
			t.Fatalf("setting word %q: want --flag=value, etag=off, etag-timeout=S or etag-cleanup=S", w)
		}
	}
	proxy := startProxy(t, c.Config())
	logPath := filepath.Join(t.TempDir(), "metacontroller.log")
	mc := mctest.StartMetacontroller(t, dyn, fr.bin, proxy.kubeconfig(t), cc, logPath, args...)
	pids["metacontroller"] = mc.PID()

	// Metacontroller is ready once it watches the parents and every kind of child.
	waitUntil(t, c, 2*time.Minute, "Metacontroller to watch SummonPlatforms and their children", func() (bool, string) {
		for _, r := range []string{"summonplatforms", "secrets", "services", "ingresses", "jobs"} {
			if !proxy.watching(r) {
				return false, "not watching " + r
			}
		}
		return true, ""
	})

	w := startWatch(t, dyn)
	r := result{N: fr.n, Hook: fr.hook, Setting: fr.setting, Date: time.Now().UTC().Format(time.RFC3339)}
	measure := newMeter(t, pids, proxy, calls)

	// Apply: N SummonPlatforms at once, from 32 clients.
	names := make([]string, fr.n)
	for i := range names {
		names[i] = fmt.Sprintf("fleet-%04d", i)
	}
	start := measure.begin()
	parallel(t, names, func(name string) error {
		_, err := dyn.Resource(platformGVR).Namespace(namespace).Create(ctx, platform(name), metav1.CreateOptions{})
		return err
	})
	waitUntil(t, c, giveUp, "the fleet to converge", func() (bool, string) { return w.converged(fr.n, settled[fr.hook]) })
	r.Converge = measure.end(start)

	// A quiet window: a converged fleet with a resync period of minutes makes no write and
	// almost no sync; a sync loop keeps doing both.
	start = measure.begin()
	time.Sleep(fr.quiet)
	r.Quiet = measure.end(start)

	// Delete: all at once; gone is no parent and no child left.
	start = measure.begin()
	parallel(t, names, func(name string) error {
		err := dyn.Resource(platformGVR).Namespace(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	waitUntil(t, c, giveUp, "the fleet to be gone", w.gone)
	r.Delete = measure.end(start)

	r.MetacontrollerErrors, r.HookTimeouts, r.ErrorSamples = scanLog(t, logPath)
	for _, p := range []phase{r.Converge, r.Quiet, r.Delete} {
		for k, v := range p.Requests {
			if strings.HasSuffix(k, " 409") {
				r.Conflicts += v
			}
		}
	}

	// What makes a run fail: errors, timeouts or failed hook answers, or a sync loop.
	if r.HookTimeouts > 0 {
		t.Errorf("%d hook calls timed out (Metacontroller's log)", r.HookTimeouts)
	}
	if r.MetacontrollerErrors > 0 {
		t.Errorf("Metacontroller logged %d errors, e.g. %q", r.MetacontrollerErrors, r.ErrorSamples)
	}
	for _, p := range []phase{r.Converge, r.Quiet, r.Delete} {
		for k, v := range p.Calls {
			if code := k[strings.LastIndexByte(k, ' ')+1:]; code != "200" && code != "304" {
				t.Errorf("the hook answered %d calls %s", v, k)
			}
		}
	}
	if writes := writes(r.Quiet.Requests); writes > 0 {
		t.Errorf("sync loop: Metacontroller made %d writes in the quiet %s after convergence: %v", writes, fr.quiet, r.Quiet.Requests)
	}
	if syncs := r.Quiet.Calls["sync 200"] + r.Quiet.Calls["sync 304"]; syncs > fr.n {
		t.Errorf("sync loop: %d sync calls for %d instances in the quiet %s after convergence", syncs, fr.n, fr.quiet)
	}
	return r
}

// platform is a fleet instance: a version, a hostname and the defaults; nothing outside the
// cluster and no input Secret, so the hook makes no external call.
func platform(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"version":  "108913-9f1c2d4-fleet",
			"image":    "registry.example.com/summon-platform",
			"hostname": name + ".fleet.example.com",
		},
	}}
}

// parallel calls f for every name from 32 goroutines.
func parallel(t *testing.T, names []string, f func(string) error) {
	t.Helper()
	work := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := f(name); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d calls failed, e.g. %v", len(errs), errs[0])
	}
}

// watch keeps the fleet's parents and children in informers' caches, so that the harness learns
// of convergence without listing a thousand objects every moment.
type watch struct {
	parents  cache.Store
	children map[string]cache.Store
}

func startWatch(t *testing.T, dyn dynamic.Interface) *watch {
	t.Helper()
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, namespace, nil)
	w := &watch{parents: f.ForResource(platformGVR).Informer().GetStore(), children: map[string]cache.Store{}}
	for kind, gvr := range childGVRs {
		w.children[kind] = f.ForResource(gvr).Informer().GetStore()
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	f.Start(stop)
	for gvr, ok := range f.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("the harness's informer of %s did not sync", gvr)
		}
	}
	return w
}

// converged says whether all n parents exist, each has status.observedGeneration equal to its
// metadata.generation (Metacontroller wrote the hook's status for the current spec), the expected
// phase and a settled status, and every one has all of its children (by owner reference, per
// kind).
func (w *watch) converged(n int, settled func(message string) bool) (bool, string) {
	parents := w.parents.List()
	if len(parents) < n {
		return false, fmt.Sprintf("%d of %d parents exist", len(parents), n)
	}
	owned := map[types.UID]map[string]int{}
	for kind, s := range w.children {
		for _, o := range s.List() {
			for _, ref := range o.(*unstructured.Unstructured).GetOwnerReferences() {
				if ref.Kind == v1beta1.Kind {
					if owned[ref.UID] == nil {
						owned[ref.UID] = map[string]int{}
					}
					owned[ref.UID][kind]++
				}
			}
		}
	}
	behind, wrongPhase, missing := 0, map[string]int{}, 0
	for _, o := range parents {
		p := o.(*unstructured.Unstructured)
		og, _, _ := unstructured.NestedInt64(p.Object, "status", "observedGeneration")
		if og != p.GetGeneration() {
			behind++
			continue
		}
		ph, _, _ := unstructured.NestedString(p.Object, "status", "phase")
		msg, _, _ := unstructured.NestedString(p.Object, "status", "message")
		if ph != expectedPhase || !settled(msg) {
			wrongPhase[ph+" "+msg]++
		}
		for kind, want := range childrenPerInstance {
			if owned[p.GetUID()][kind] != want {
				missing++
				break
			}
		}
	}
	if behind > 0 || len(wrongPhase) > 0 || missing > 0 {
		return false, fmt.Sprintf("%d parents: %d without a status of their generation, not yet %s: %v, %d missing children", len(parents), behind, expectedPhase, wrongPhase, missing)
	}
	return true, ""
}

// gone says whether no parent and none of their children are left.
func (w *watch) gone() (bool, string) {
	left := map[string]int{}
	if n := len(w.parents.List()); n > 0 {
		left["SummonPlatform"] = n
	}
	for kind, s := range w.children {
		for _, o := range s.List() {
			for _, ref := range o.(*unstructured.Unstructured).GetOwnerReferences() {
				if ref.Kind == v1beta1.Kind {
					left[kind]++
					break
				}
			}
		}
	}
	if len(left) > 0 {
		return false, fmt.Sprintf("left: %v", left)
	}
	return true, ""
}

// meter takes the readings at the start and the end of a phase.
type meter struct {
	t     *testing.T
	pids  map[string]int
	proxy *countingProxy
	calls hookCalls
}

type reading struct {
	at       time.Time
	requests map[string]int
	calls    map[string]int
	cpu      map[string]time.Duration
}

func newMeter(t *testing.T, pids map[string]int, proxy *countingProxy, calls hookCalls) *meter {
	return &meter{t: t, pids: pids, proxy: proxy, calls: calls}
}

func (m *meter) read() reading {
	m.t.Helper()
	calls, err := m.calls()
	if err != nil {
		m.t.Fatalf("reading the hook's calls: %v", err)
	}
	cpu, err := testcluster.CPUTimes(m.pids)
	if err != nil {
		m.t.Fatal(err)
	}
	return reading{at: time.Now(), requests: m.proxy.counts(), calls: calls, cpu: cpu}
}

func (m *meter) begin() reading { return m.read() }

func (m *meter) end(start reading) phase {
	end := m.read()
	p := phase{Seconds: end.at.Sub(start.at).Seconds(), Requests: diff(start.requests, end.requests), Calls: diff(start.calls, end.calls), CPU: map[string]float64{}}
	for name, d := range end.cpu {
		p.CPU[name] = (d - start.cpu[name]).Seconds()
	}
	return p
}

func diff(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// writes counts the requests that change something.
func writes(requests map[string]int) int {
	n := 0
	for k, v := range requests {
		verb, _, _ := strings.Cut(k, " ")
		if verb == "CREATE" || verb == "UPDATE" || verb == "PATCH" || verb == "DELETE" {
			n += v
		}
	}
	return n
}

// scanLog counts the error lines of Metacontroller's log and those among them that say a hook
// call timed out.
func scanLog(t *testing.T, path string) (errs, timeouts int, samples []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var entry struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || (entry.Level != "error" && entry.Level != "ERROR") {
			if !strings.Contains(line, "level=error") && !strings.HasPrefix(line, "E") {
				continue
			}
		}
		errs++
		if strings.Contains(line, "Client.Timeout") || strings.Contains(line, "context deadline exceeded") || strings.Contains(line, "timeout") {
			timeouts++
		}
		if len(samples) < 3 {
			samples = append(samples, line)
		}
	}
	return errs, timeouts, samples
}

// waitUntil polls check until it says done, failing after timeout with the last state it reported
// or at once when a process of the cluster exited.
func waitUntil(t *testing.T, c *testcluster.Cluster, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := check()
		if done {
			return
		}
		if err := c.Err(); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func appendJSON(t *testing.T, path string, r result) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

// String is the run in a few lines: times, per-instance requests and calls, CPU.
func (r result) String() string {
	var b strings.Builder
	n := float64(r.N)
	for _, p := range []struct {
		name string
		p    phase
	}{{"converge", r.Converge}, {"quiet", r.Quiet}, {"delete", r.Delete}} {
		total := 0
		for _, v := range p.p.Requests {
			total += v
		}
		fmt.Fprintf(&b, "%-8s %7.2fs  requests/instance %.2f (writes %.2f)  hook calls %v\n", p.name, p.p.Seconds, float64(total)/n, float64(writes(p.p.Requests))/n, p.p.Calls)
		names := make([]string, 0, len(p.p.CPU))
		for k := range p.p.CPU {
			names = append(names, k)
		}
		slices.Sort(names)
		fmt.Fprintf(&b, "         CPU s:")
		for _, k := range names {
			fmt.Fprintf(&b, " %s %.2f", k, p.p.CPU[k])
		}
		fmt.Fprintf(&b, "\n         requests: %v\n", p.p.Requests)
	}
	fmt.Fprintf(&b, "Metacontroller errors %d, hook timeouts %d, 409s %d", r.MetacontrollerErrors, r.HookTimeouts, r.Conflicts)
	return b.String()
}
