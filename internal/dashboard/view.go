package dashboard

import (
	"fmt"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"

	"github.com/forklift-dev/summon/pkg/children"
)

// byInstance indexes an instance's children and pods by "namespace/instance", from the label
// every object Summon builds carries.
const byInstance = "instance"

func instanceIndex(obj any) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("indexing by instance: %w", err)
	}
	instance := m.GetLabels()[children.LabelInstance]
	if instance == "" {
		return nil, nil
	}
	return []string{m.GetNamespace() + "/" + instance}, nil
}

// childIndexers index Deployments, StatefulSets, Jobs and Pods; Events, which carry no instance
// label, are indexed by namespace (as an informer factory's informers are already).
var (
	childIndexers = cache.Indexers{byInstance: instanceIndex}
	eventIndexers = cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
)

// stores hold the objects the informers watch besides the SummonPlatforms.
type stores struct {
	deployments, statefulSets, jobs, pods, events cache.Indexer
}

// newStores makes stores that nothing fills but their owner: the tests fill them directly.
func newStores() stores {
	return stores{
		deployments:  cache.NewIndexer(cache.MetaNamespaceKeyFunc, childIndexers),
		statefulSets: cache.NewIndexer(cache.MetaNamespaceKeyFunc, childIndexers),
		jobs:         cache.NewIndexer(cache.MetaNamespaceKeyFunc, childIndexers),
		pods:         cache.NewIndexer(cache.MetaNamespaceKeyFunc, childIndexers),
		events:       cache.NewIndexer(cache.MetaNamespaceKeyFunc, eventIndexers),
	}
}

// View is the dashboard's memory of the cluster: every SummonPlatform, read once, and the stores
// of what the pages show beside them. Pages are built from it alone.
type View struct {
	mu        sync.RWMutex
	platforms map[string]Platform
	stores    stores
	synced    atomic.Bool
	changes   changes
}

func newView(s stores) *View {
	return &View{platforms: map[string]Platform{}, stores: s}
}

// putPlatform adds or replaces one SummonPlatform.
func (v *View) putPlatform(p Platform) {
	v.mu.Lock()
	v.platforms[p.Key()] = p
	v.mu.Unlock()
	v.changes.notify()
}

// deletePlatform forgets one SummonPlatform.
func (v *View) deletePlatform(key string) {
	v.mu.Lock()
	delete(v.platforms, key)
	v.mu.Unlock()
	v.changes.notify()
}

// Platforms returns every SummonPlatform, in no order.
func (v *View) Platforms() []Platform {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Platform, 0, len(v.platforms))
	for _, p := range v.platforms {
		out = append(out, p)
	}
	return out
}

func (v *View) count() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.platforms)
}

// instanceData is everything the instance page shows of one SummonPlatform. The objects are the
// stores' own: read them, never change them.
type instanceData struct {
	Platform     Platform
	Deployments  []*appsv1.Deployment
	StatefulSets []*appsv1.StatefulSet
	Jobs         []*batchv1.Job
	Pods         []*corev1.Pod
	// Events are every event of the namespace; the instance page picks the instance's own.
	Events []*corev1.Event
}

// instance gathers one SummonPlatform and its objects; ok is false when there is no such
// SummonPlatform.
func (v *View) instance(namespace, name string) (d instanceData, ok bool) {
	key := namespace + "/" + name
	v.mu.RLock()
	d.Platform, ok = v.platforms[key]
	v.mu.RUnlock()
	if !ok {
		return d, false
	}
	d.Deployments = byIndex[*appsv1.Deployment](v.stores.deployments, byInstance, key)
	d.StatefulSets = byIndex[*appsv1.StatefulSet](v.stores.statefulSets, byInstance, key)
	d.Jobs = byIndex[*batchv1.Job](v.stores.jobs, byInstance, key)
	d.Pods = byIndex[*corev1.Pod](v.stores.pods, byInstance, key)
	d.Events = byIndex[*corev1.Event](v.stores.events, cache.NamespaceIndex, namespace)
	return d, true
}

func byIndex[T any](s cache.Indexer, index, value string) []T {
	objs, err := s.ByIndex(index, value)
	if err != nil {
		// Only an index that was never registered fails, which is a bug in this package.
		panic(fmt.Sprintf("reading index %s: %v", index, err))
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// changes tells the live pages that the view changed. A subscriber's channel holds at most one
// signal: changes that come while a page is being rendered fold into the next render.
type changes struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (c *changes) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[chan struct{}]struct{}{}
	}
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

func (c *changes) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
