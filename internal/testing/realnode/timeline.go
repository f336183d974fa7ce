package realnode

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Timeline records, as they reach a watch, the moments of a namespace that decide whether a
// request sent through a Service finds a pod that answers: each pod becoming Ready, being told to
// stop, its container ending; and each change of an EndpointSlice (the endpoints kube-proxy is
// about to route to). A failed request is read against it: a timeout a few seconds after a pod
// was deleted, and before its endpoint left the slice, is a late endpoint update; one with no
// such neighbour is something else.
type Timeline struct {
	mu     sync.Mutex
	lines  []string
	stopCh chan struct{}
	once   sync.Once
}

// RecordTimeline records namespace ns for as long as t runs, and prints the record if t fails.
func RecordTimeline(t testing.TB, cs kubernetes.Interface, ns string) {
	t.Helper()
	tl, err := watchTimeline(cs, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tl.Stop()
		if t.Failed() {
			t.Logf("what the watch of namespace %s saw (pods, endpoints):\n%s", ns, tl)
		}
	})
}

// watchTimeline starts recording namespace ns. Stop it when done.
func watchTimeline(cs kubernetes.Interface, ns string) (*Timeline, error) {
	tl := &Timeline{stopCh: make(chan struct{})}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	pods := f.Core().V1().Pods().Informer()
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				tl.add("pod %s created", p.Name)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Pod)
			p, ok2 := newObj.(*corev1.Pod)
			if !ok1 || !ok2 {
				return
			}
			if o.Status.PodIP != p.Status.PodIP {
				tl.add("pod %s has IP %s", p.Name, p.Status.PodIP)
			}
			if podReady(o) != podReady(p) {
				tl.add("pod %s Ready=%t", p.Name, podReady(p))
			}
			if o.DeletionTimestamp == nil && p.DeletionTimestamp != nil {
				tl.add("pod %s deleted (grace %ds)", p.Name, ptr.Deref(p.DeletionGracePeriodSeconds, 0))
			}
			if !terminated(o) && terminated(p) {
				tl.add("pod %s: container terminated", p.Name)
			}
		},
		DeleteFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				tl.add("pod %s gone", p.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	slices := f.Discovery().V1().EndpointSlices().Informer()
	onSlice := func(obj any) {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			tl.add("endpointslice %s: %s", s.Name, describeEndpoints(s))
		}
	}
	if _, err := slices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onSlice,
		UpdateFunc: func(_, obj any) { onSlice(obj) },
		DeleteFunc: func(obj any) {
			if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
				tl.add("endpointslice %s deleted", s.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	f.Start(tl.stopCh)
	return tl, nil
}

func (tl *Timeline) add(format string, args ...any) {
	line := time.Now().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.lines = append(tl.lines, line)
}

// Stop stops recording.
func (tl *Timeline) Stop() { tl.once.Do(func() { close(tl.stopCh) }) }

// String is the whole record, a line per moment.
func (tl *Timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.lines, "\n")
}

// describeEndpoints lists a slice's endpoints by pod, each with the conditions kube-proxy reads:
// "web-1 ready", "web-2 terminating,serving".
func describeEndpoints(s *discoveryv1.EndpointSlice) string {
	var parts []string
	for _, e := range s.Endpoints {
		name := strings.Join(e.Addresses, ",")
		if e.TargetRef != nil {
			name = e.TargetRef.Name
		}
		var conds []string
		if ptr.Deref(e.Conditions.Ready, false) {
			conds = append(conds, "ready")
		}
		if ptr.Deref(e.Conditions.Terminating, false) {
			conds = append(conds, "terminating")
		}
		if ptr.Deref(e.Conditions.Serving, false) && !ptr.Deref(e.Conditions.Ready, false) {
			conds = append(conds, "serving")
		}
		if len(conds) == 0 {
			conds = append(conds, "not ready")
		}
		parts = append(parts, name+" "+strings.Join(conds, ","))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no endpoints"
	}
	return strings.Join(parts, "; ")
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func terminated(p *corev1.Pod) bool {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Terminated != nil {
			return true
		}
	}
	return false
}
