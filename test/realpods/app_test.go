package realpods

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/forklift-dev/summon/internal/testing/realnode"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// appMigrations are the notes migrations each version's code needs applied (docs/example-app.md).
var appMigrations = map[string][]string{
	"v1": {"0001_initial"},
	"v2": {"0001_initial", "0002_body"},
	"v3": {"0001_initial", "0002_body", "0003_drop_text"},
}

// probeAnswer is what the example app's /probe/ says: which version and pod answered, and the
// schema its code saw.
type probeAnswer struct {
	Version    string   `json:"version"`
	Pod        string   `json:"pod"`
	Fields     []string `json:"fields"`
	Columns    []string `json:"columns"`
	Migrations []string `json:"migrations"`
}

// checkProbe counts an answer by its version, and fails it when the version runs on a schema
// its migrations have not reached, or its model names a column the table lacks: the two ways a
// version could run before its migration.
func checkProbe(body []byte) (string, error) {
	var a probeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", fmt.Errorf("not the app's probe answer: %.80q", body)
	}
	need, ok := appMigrations[a.Version]
	if !ok {
		return "", fmt.Errorf("an answer from version %q, which was never deployed", a.Version)
	}
	for _, m := range need {
		if !slices.Contains(a.Migrations, m) {
			return "", fmt.Errorf("version %s answered before its migration %s (applied: %v)", a.Version, m, a.Migrations)
		}
	}
	for _, f := range a.Fields {
		if !slices.Contains(a.Columns, f) {
			return "", fmt.Errorf("version %s's model has %s, the table only %v", a.Version, f, a.Columns)
		}
	}
	return a.Version, nil
}

// TestTheExampleAppUpgradesWithoutAFailedRequest is the talk's promise on real pods: the example
// app (examples/app, Django under gunicorn, Debian's packages) is installed by Summon's real hook
// server under Metacontroller's loop (the stand-in, or the real one with METACONTROLLER_BIN),
// against a real PostgreSQL, and then taken v1 → v2-broken → v2 → v3. Through the whole run a
// client sends /probe/ through the web Service: each request writes and reads a row through that
// version's model and reports the schema it saw. Not one request may fail, no answer may come
// from a version whose migrations are not applied, v1 must keep answering while v2's migration
// runs, and the broken release must leave v1 serving. Beside the clients, every watch event of
// the namespace's pods and Jobs is recorded: no app pod may be created before its version's
// migration Job succeeded.
func TestTheExampleAppUpgradesWithoutAFailedRequest(t *testing.T) {
	n := realnode.Get(t)
	// Web and static serve; the workers and Daphne have their own proof
	// (TestBeatAndTheWebsocketAcrossUpgrades).
	app := deployApp(t, n, appOptions{postgresPort: "55433", replicas: map[string]int64{"web": 2, "static": 1}})
	ctx, cs, ns, name, host := t.Context(), app.cs, app.ns, app.name, app.host
	waitPhase, setVersion := app.waitPhase, app.setVersion

	timeline := watchPods(t, cs, ns, name)
	realnode.RecordTimeline(t, cs, ns)
	begin := time.Now()
	waitPhase("v1 Ready", readyOn("v1"))
	t.Logf("installed: v1 Ready in %s", time.Since(begin).Round(time.Second))

	svc, err := cs.CoreV1().Services(ns).Get(ctx, children.NamesFor(name).Of(children.Web), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two clients: one writes and reads through the model (/probe/), the other asks / (no
	// database), which answers faster and so counts more requests.
	prober := realnode.StartProberWith("http://"+svc.Spec.ClusterIP+"/probe/", 20*time.Millisecond, realnode.ProbeOptions{Host: host, Answer: checkProbe})
	index := realnode.StartProberWith("http://"+svc.Spec.ClusterIP+"/", 20*time.Millisecond, realnode.ProbeOptions{Host: host, Answer: versionOf})
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "a first answer through the web Service", func(context.Context) (bool, string) {
		c, i := prober.Count(), index.Count()
		return c.Requests > c.Failed && i.Requests > i.Failed, c.String() + "; " + i.String()
	}, n.Err)
	warmup, indexWarmup := prober.Count(), index.Count()

	// A broken release: its migration fails, nothing of it stays, v1 keeps serving.
	setVersion("v2-broken")
	st := waitPhase("v2-broken's migration to fail", func(st v1beta1.Status) bool { return st.Phase == v1beta1.PhaseError })
	t.Logf("v2-broken: %s: %s; prober %s", st.Phase, st.Message, prober.Count())
	if st.DeployedVersion != "v1" || st.MigratedVersion != "v1" {
		t.Errorf("after v2-broken's failed migration: deployed %q, migrated %q; want v1", st.DeployedVersion, st.MigratedVersion)
	}
	answered := prober.Count().Answers["v1"]
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "v1 still answering after the failed migration", func(context.Context) (bool, string) {
		c := prober.Count()
		return c.Answers["v1"] > answered+20, c.String()
	}, n.Err)

	for _, v := range []string{"v2", "v3"} {
		before := prober.Count()
		previous := map[string]string{"v2": "v1", "v3": "v2"}[v]
		setVersion(v)
		waitPhase(v+"'s migration to run", func(st v1beta1.Status) bool { return st.Phase == v1beta1.PhaseMigrating || st.MigratedVersion == v })
		migrating := prober.Count()
		waitPhase(v+" migrated", func(st v1beta1.Status) bool { return st.MigratedVersion == v })
		migrated := prober.Count()
		if migrated.Answers[previous] <= migrating.Answers[previous] && migrated.Requests > migrating.Requests+10 {
			t.Errorf("%s did not answer while %s's migration ran: %s then %s", previous, v, migrating, migrated)
		}
		begin := time.Now()
		waitPhase(v+" Ready", readyOn(v))
		t.Logf("%s: migrated and rolled out in %s; prober %s (before the bump: %s)", v, time.Since(begin).Round(time.Second), prober.Count(), before)
	}
	// The last pods of v2 are gone once Ready: a few more requests land on v3 alone.
	last := prober.Count().Answers["v3"]
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "v3 answering", func(context.Context) (bool, string) {
		c := prober.Count()
		return c.Answers["v3"] > last+20, c.String()
	}, n.Err)

	got, gotIndex := prober.Stop(), index.Stop()
	for _, c := range []struct {
		path        string
		got, warmup realnode.Count
	}{{"/probe/", got, warmup}, {"/", gotIndex, indexWarmup}} {
		failed := c.got.Failed - c.warmup.Failed
		t.Logf("%s: %s (%d failed before the first answer, not counted)", c.path, c.got, c.warmup.Failed)
		if f := c.got.Firsts(); f != "" {
			t.Logf("%s, counted or not: %s", c.path, f)
		}
		if failed != 0 {
			t.Errorf("%s: %d of %d requests failed through v1 → v2-broken → v2 → v3; first failures: %v", c.path, failed, c.got.Requests-c.warmup.Requests, c.got.FirstFailures)
		}
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		if got.Answers[v] == 0 {
			t.Errorf("no answer from %s: %v", v, got.Answers)
		}
	}
	timeline.mu.Lock()
	t.Logf("watched %d app pods; migrations succeeded: %v", len(timeline.pods), timeline.migrated)
	timeline.mu.Unlock()
	if v := timeline.violations(); len(v) > 0 {
		t.Errorf("%d app pods ran before their version's migration:\n%s", len(v), strings.Join(v, "\n"))
	}
}

// versionOf counts an answer of the app's / by the version that gave it; one from a version
// that never migrated (v2-broken) fails.
func versionOf(body []byte) (string, error) {
	var a probeAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.Version == "" {
		return "", fmt.Errorf("not the app's answer: %.80q", body)
	}
	if _, ok := appMigrations[a.Version]; !ok {
		return "", fmt.Errorf("an answer from version %q, which was never deployed", a.Version)
	}
	return a.Version, nil
}

// podTimeline records, from watch events, when each app pod was created and when each version's
// migration Job succeeded.
type podTimeline struct {
	mu       sync.Mutex
	pods     map[string]podSeen
	migrated map[string]time.Time
	// logs is what each app pod's container wrote, followed from its start: a pod that failed a
	// request is often gone (rolled out) by the time the test reports it.
	logs map[string]*strings.Builder
}

type podSeen struct {
	version, component string
	created            time.Time
}

// watchPods records every app pod and migration Job of the instance from the watch events of
// its namespace, until the test ends.
func watchPods(t *testing.T, cs kubernetes.Interface, ns, instance string) *podTimeline {
	tl := &podTimeline{pods: map[string]podSeen{}, migrated: map[string]time.Time{}, logs: map[string]*strings.Builder{}}
	ctx, cancel := context.WithCancel(context.Background())
	var following sync.WaitGroup
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = children.LabelInstance + "=" + instance }))
	record := func(obj any) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		switch o := obj.(type) {
		case *corev1.Pod:
			c := o.Labels[children.LabelComponent]
			if c != string(children.Migrations) {
				tl.pods[o.Name] = podSeen{version: o.Labels[children.LabelVersion], component: c, created: o.CreationTimestamp.Time}
				if _, ok := tl.logs[o.Name]; !ok && started(o) {
					log := &strings.Builder{}
					tl.logs[o.Name] = log
					following.Add(1)
					go func() { defer following.Done(); tl.follow(ctx, cs, o, log) }()
				}
			}
		case *batchv1.Job:
			if o.Labels[children.LabelComponent] == string(children.Migrations) && o.Status.CompletionTime != nil && o.Status.Succeeded > 0 {
				tl.migrated[o.Labels[children.LabelVersion]] = o.Status.CompletionTime.Time
			}
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: record, UpdateFunc: func(_, obj any) { record(obj) }}
	if _, err := f.Core().V1().Pods().Informer().AddEventHandler(h); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Batch().V1().Jobs().Informer().AddEventHandler(h); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() {
		close(stop)
		f.Shutdown()
		cancel()
		following.Wait()
		if t.Failed() {
			t.Logf("what the app pods wrote (errors and what follows them):\n%s", tl.errorLines())
		}
	})
	f.WaitForCacheSync(stop)
	return tl
}

// started reports whether a pod's first container has started, so that it has logs to follow.
func started(p *corev1.Pod) bool {
	cs := p.Status.ContainerStatuses
	return len(cs) > 0 && (cs[0].State.Running != nil || cs[0].State.Terminated != nil)
}

// follow copies a pod's log into log until the container stops or ctx ends.
func (tl *podTimeline) follow(ctx context.Context, cs kubernetes.Interface, p *corev1.Pod, log *strings.Builder) {
	stream, err := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		tl.mu.Lock()
		fmt.Fprintf(log, "(following the log: %v)\n", err)
		tl.mu.Unlock()
		return
	}
	defer stream.Close()
	buf := make([]byte, 4096)
	for {
		n, err := stream.Read(buf)
		tl.mu.Lock()
		log.Write(buf[:n])
		tl.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// errorLines are, pod by pod, the log lines from its first error on (a traceback follows its
// first line), at most 40 a pod.
func (tl *podTimeline) errorLines() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out strings.Builder
	for _, name := range slices.Sorted(maps.Keys(tl.logs)) {
		lines := strings.Split(tl.logs[name].String(), "\n")
		from := slices.IndexFunc(lines, func(l string) bool {
			return strings.Contains(l, "Error") || strings.Contains(l, "Traceback") || strings.Contains(l, "following the log")
		})
		if from < 0 {
			continue
		}
		lines = lines[from:min(len(lines), from+40)]
		fmt.Fprintf(&out, "%s:\n  %s\n", name, strings.Join(lines, "\n  "))
	}
	if out.Len() == 0 {
		return "(no error in any app pod's log)"
	}
	return out.String()
}

// violations are the app pods created before their version's migration Job succeeded (the API
// server's times have a resolution of a second: a pod of the same second passes), or for a
// version whose migration never did.
func (tl *podTimeline) violations() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []string
	for name, p := range tl.pods {
		done, ok := tl.migrated[p.version]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("pod %s (%s) runs %s, whose migration never succeeded", name, p.component, p.version))
		case p.created.Before(done.Truncate(time.Second)):
			out = append(out, fmt.Sprintf("pod %s (%s) of %s created at %s, before its migration succeeded at %s", name, p.component, p.version, p.created.Format(time.TimeOnly), done.Format(time.TimeOnly)))
		}
	}
	slices.Sort(out)
	return out
}
