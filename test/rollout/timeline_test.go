package rollout

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/forklift-dev/summon/pkg/children"
)

// event is one watch event of a pod, a Job or a Deployment.
type event struct {
	rv  int64
	typ watch.EventType
	obj metav1.Object
}

// timeline records every pod, Job and Deployment event of a namespace, from three watches (restarted from the
// last resourceVersion if the API server ends one). The two streams are merged by
// resourceVersion, which kube-apiserver on etcd takes from etcd's one global revision counter, so
// the merged order is the order in which the writes happened.
type timeline struct {
	mu     sync.Mutex
	events []event
	errs   []error
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// record starts recording a namespace. Call it before the namespace holds anything.
func record(t *testing.T, cs kubernetes.Interface, ns string) *timeline {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &timeline{cancel: cancel}
	pods := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Pods(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Pods(ns).Watch(ctx, o)
		},
	}
	jobs := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.BatchV1().Jobs(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.BatchV1().Jobs(ns).Watch(ctx, o)
		},
	}
	deployments := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().Deployments(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().Deployments(ns).Watch(ctx, o)
		},
	}
	for _, lw := range []*cache.ListWatch{pods, jobs, deployments} {
		list, err := lw.ListWithContext(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rv := list.(metav1.ListInterface).GetResourceVersion()
		w, err := watchtools.NewRetryWatcherWithContext(ctx, rv, lw)
		if err != nil {
			t.Fatal(err)
		}
		tl.done.Go(func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					tl.add(ev)
				}
			}
		})
	}
	t.Cleanup(tl.stop)
	return tl
}

func (tl *timeline) add(ev watch.Event) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if ev.Type == watch.Error {
		tl.errs = append(tl.errs, fmt.Errorf("watch error: %v", ev.Object))
		return
	}
	o, ok := ev.Object.(metav1.Object)
	if !ok {
		return
	}
	rv, err := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
	if err != nil {
		tl.errs = append(tl.errs, fmt.Errorf("unreadable resourceVersion %q", o.GetResourceVersion()))
		return
	}
	tl.events = append(tl.events, event{rv: rv, typ: ev.Type, obj: o})
}

func (tl *timeline) stop() {
	tl.cancel()
	tl.done.Wait()
}

// snapshot is the events recorded so far, in the order they happened.
func (tl *timeline) snapshot(t *testing.T) []event {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, err := range tl.errs {
		t.Error(err)
	}
	out := slices.Clone(tl.events)
	slices.SortStableFunc(out, func(a, b event) int { return cmp.Compare(a.rv, b.rv) })
	return out
}

// state is the namespace's pods, Jobs and Deployments after some prefix of the events.
type state struct {
	pods        map[string]*corev1.Pod
	jobs        map[string]*batchv1.Job
	deployments map[string]*appsv1.Deployment
}

// invariant looks at the state after one event and says what is wrong, or "".
type invariant struct {
	name  string
	check func(s state, ev event) string
}

// replay applies the events one by one and checks every invariant after each, failing the test
// with the first few violations of each.
func replay(t *testing.T, events []event, invs ...invariant) {
	t.Helper()
	s := state{pods: map[string]*corev1.Pod{}, jobs: map[string]*batchv1.Job{}, deployments: map[string]*appsv1.Deployment{}}
	violations := map[string][]string{}
	for _, ev := range events {
		switch o := ev.obj.(type) {
		case *corev1.Pod:
			if ev.typ == watch.Deleted {
				delete(s.pods, o.Name)
			} else {
				s.pods[o.Name] = o
			}
		case *batchv1.Job:
			if ev.typ == watch.Deleted {
				delete(s.jobs, o.Name)
			} else {
				s.jobs[o.Name] = o
			}
		case *appsv1.Deployment:
			if ev.typ == watch.Deleted {
				delete(s.deployments, o.Name)
			} else {
				s.deployments[o.Name] = o
			}
		}
		for _, inv := range invs {
			if msg := inv.check(s, ev); msg != "" {
				violations[inv.name] = append(violations[inv.name], fmt.Sprintf("after %s %s %s (rv %d): %s",
					ev.typ, kindOf(ev.obj), ev.obj.GetName(), ev.rv, msg))
			}
		}
	}
	for _, inv := range invs {
		v := violations[inv.name]
		if len(v) == 0 {
			continue
		}
		if len(v) > 5 {
			v = append(v[:5], fmt.Sprintf("... and %d more", len(v)-5))
		}
		t.Errorf("%s: violated on %d events:\n  %s", inv.name, len(violations[inv.name]), joinLines(v))
	}
	t.Logf("checked %d invariants on each of %d watch events", len(invs), len(events))
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

func kindOf(o metav1.Object) string {
	switch o.(type) {
	case *corev1.Pod:
		return "Pod"
	case *batchv1.Job:
		return "Job"
	case *appsv1.Deployment:
		return "Deployment"
	}
	return fmt.Sprintf("%T", o)
}

func component(o metav1.Object) string { return o.GetLabels()[children.LabelComponent] }
func version(o metav1.Object) string   { return o.GetLabels()[children.LabelVersion] }

// serving says whether a pod counts as serving: Ready and not terminating (a terminating pod is
// taken out of its Service's endpoints).
func serving(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func servingWeb(s state) (n int, byVersion map[string]int) {
	byVersion = map[string]int{}
	for _, p := range s.pods {
		if component(p) == string(children.Web) && serving(p) {
			n++
			byVersion[version(p)]++
		}
	}
	return n, byVersion
}

// neverFewerServingWeb: once want web pods have served together, never fewer do.
func neverFewerServingWeb(want int) invariant {
	reached := false
	return invariant{
		name: fmt.Sprintf("never fewer than %d web pods Ready", want),
		check: func(s state, _ event) string {
			n, by := servingWeb(s)
			if n >= want {
				reached = true
			}
			if reached && n < want {
				return fmt.Sprintf("%d web pods Ready (by version: %v)", n, by)
			}
			return ""
		},
	}
}

// jobSucceeded says whether a Job has finished successfully.
func jobSucceeded(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobComplete) }

func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// migratedBeforeRun: no app pod runs a version before a migration Job of that version has
// succeeded. Once seen succeeded a version stays migrated, even after its Job is dropped.
func migratedBeforeRun() invariant {
	migrated := map[string]bool{}
	return invariant{
		name: "no app pod on a version before its migration Job succeeded",
		check: func(s state, ev event) string {
			for _, j := range s.jobs {
				if component(j) == string(children.Migrations) && jobSucceeded(j) {
					migrated[version(j)] = true
				}
			}
			p, ok := ev.obj.(*corev1.Pod)
			if !ok || ev.typ != watch.Added || !isApp(p) {
				return ""
			}
			if !migrated[version(p)] {
				return fmt.Sprintf("pod %s (%s) runs version %s, which no succeeded migration Job has migrated", p.Name, component(p), version(p))
			}
			return ""
		},
	}
}

func isApp(o metav1.Object) bool {
	for _, c := range children.AppComponents {
		if component(o) == string(c) {
			return true
		}
	}
	return false
}

// oldServesWhileMigrating: once want web pods have served, while a migration Job runs, the web
// pods that serve run another (older) version, and at least want of them serve. (A fresh
// install's first migration has no old version to serve.)
func oldServesWhileMigrating(want int) invariant {
	reached := false
	return invariant{
		name: fmt.Sprintf("the old version serves with %d web pods while a migration runs", want),
		check: func(s state, _ event) string {
			if n, _ := servingWeb(s); n >= want {
				reached = true
			}
			if !reached {
				return ""
			}
			for _, j := range s.jobs {
				if component(j) != string(children.Migrations) || jobSucceeded(j) || jobCondition(j, batchv1.JobFailed) {
					continue
				}
				n, by := servingWeb(s)
				old := n - by[version(j)]
				if by[version(j)] > 0 || old < want {
					return fmt.Sprintf("Job %s migrates %s while web pods Ready by version are %v", j.Name, version(j), by)
				}
			}
			return ""
		},
	}
}

// oneBeat: never two beat pods, terminating ones included (a terminating beat may still run).
func oneBeat() invariant {
	return invariant{
		name: "never two beat pods",
		check: func(s state, _ event) string {
			var beats []string
			for _, p := range s.pods {
				if component(p) == string(children.CeleryBeat) {
					beats = append(beats, fmt.Sprintf("%s (%s, terminating=%v)", p.Name, version(p), p.DeletionTimestamp != nil))
				}
			}
			if len(beats) > 1 {
				slices.Sort(beats)
				return fmt.Sprintf("%d beat pods: %v", len(beats), beats)
			}
			return ""
		},
	}
}

// count counts events that match.
func count(events []event, match func(event) bool) int {
	n := 0
	for _, e := range events {
		if match(e) {
			n++
		}
	}
	return n
}
