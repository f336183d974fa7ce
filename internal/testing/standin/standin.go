// Package standin is a stand-in for Metacontroller (v4.17), for tests in CI, where Metacontroller
// can't be built (no registry serves it). It plays one CompositeController's loop against a real
// API server, as Metacontroller's documentation describes it: it watches the parents and their
// children through informers, calls the customize, sync and finalize webhooks with hooks-v2
// requests, applies the answer (Metacontroller's default dynamic apply, a three-way merge sent as
// an update, or server-side apply as field manager "metacontroller"), deletes the children the
// answer leaves out, writes the status through the status subresource with observedGeneration,
// and keeps Metacontroller's finalizer on parents while a finalize hook is declared. Everything
// else (Deployments rolling, Jobs running, garbage collection) is the real controllers' work.
//
// It is test support written from Metacontroller's documented behaviour, not Metacontroller: it
// doesn't adopt orphans or release children that stop matching the selector (the proofs never
// orphan a child), doesn't play the Recreate or Rolling* update methods or hooks v1, and caches
// nothing beyond the informers. When METACONTROLLER_BIN names a real Metacontroller, the same
// proofs run against it instead. It must never be shipped or run against a cluster other than a
// test's own.
package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// ApplyStrategy is how children are written: Metacontroller's --apply-strategy.
type ApplyStrategy string

const (
	// DynamicApply is Metacontroller's default: a three-way merge of the observed object, the
	// last-applied annotation and the desired object, sent as an update with the observed
	// resourceVersion, recording the new last-applied annotation.
	DynamicApply ApplyStrategy = "dynamic-apply"
	// ServerSideApply applies the desired object as field manager "metacontroller", forcing
	// conflicts.
	ServerSideApply ApplyStrategy = "server-side-apply"
)

// Metacontroller's names, as it writes them.
const (
	LastAppliedAnnotation = metacontroller.LastAppliedAnnotation
	FinalizerPrefix       = "metacontroller.io/compositecontroller-"
	SelectorLabel         = "controller-uid"
	FieldManager          = "metacontroller"
)

// Options configure a Controller.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// CompositeController is the controller to play, with webhook URLs (no Services).
	CompositeController *unstructured.Unstructured
	// Strategy defaults to DynamicApply.
	Strategy ApplyStrategy
	// Log receives one line per sync and per write (default: discarded).
	Log *slog.Logger
}

// Controller plays one CompositeController.
type Controller struct {
	cc       *compositeController
	ccJSON   json.RawMessage
	strategy ApplyStrategy
	log      *slog.Logger
	dyn      dynamic.Interface
	disco    discovery.DiscoveryInterface
	http     *http.Client

	parent   resourceType
	children []resourceType
	byGroup  map[string]resourceType

	factory  dynamicinformer.DynamicSharedInformerFactory
	parents  cache.SharedIndexInformer
	listers  map[string]cache.GenericLister // by child group key
	queue    workqueue.TypedRateLimitingInterface[string]
	stopping <-chan struct{}

	mu        sync.Mutex
	related   map[schema.GroupVersionResource]cache.GenericLister
	customize map[string]*metacontroller.CustomizeResponse // by parent UID and generation
}

// resourceType is one resource the controller handles.
type resourceType struct {
	gvr        schema.GroupVersionResource
	apiVersion string
	kind       string
	method     string
}

// group is the key of the resource's children in a hook request: "Kind.apiVersion".
func (r resourceType) group() string { return metacontroller.GroupKey(r.kind, r.apiVersion) }

// New reads the CompositeController and finds its resources through discovery. Call Run to start.
func New(o Options) (*Controller, error) {
	cc, err := parseCompositeController(o.CompositeController)
	if err != nil {
		return nil, err
	}
	if o.Strategy == "" {
		o.Strategy = DynamicApply
	}
	if o.Strategy != DynamicApply && o.Strategy != ServerSideApply {
		return nil, fmt.Errorf("unknown apply strategy %q", o.Strategy)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	ccJSON, err := json.Marshal(o.CompositeController.Object)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		cc: cc, ccJSON: ccJSON, strategy: o.Strategy, log: o.Log, dyn: dyn, disco: disco,
		http:      &http.Client{},
		byGroup:   map[string]resourceType{},
		listers:   map[string]cache.GenericLister{},
		related:   map[schema.GroupVersionResource]cache.GenericLister{},
		customize: map[string]*metacontroller.CustomizeResponse{},
	}
	if c.parent, err = resolve(disco, cc.Spec.ParentResource, ""); err != nil {
		return nil, err
	}
	for _, h := range []*hook{cc.Spec.Hooks.Customize, cc.Spec.Hooks.Sync, cc.Spec.Hooks.Finalize} {
		if err := c.resolveAuthorization(h); err != nil {
			return nil, err
		}
	}
	for _, child := range cc.Spec.ChildResources {
		t, err := resolve(disco, child.resourceRule, child.UpdateStrategy.Method)
		if err != nil {
			return nil, err
		}
		c.children = append(c.children, t)
		c.byGroup[t.group()] = t
	}
	return c, nil
}

// resolve finds a resource's kind through discovery.
func resolve(disco discovery.DiscoveryInterface, r resourceRule, method string) (resourceType, error) {
	gv, err := schema.ParseGroupVersion(r.APIVersion)
	if err != nil {
		return resourceType{}, err
	}
	list, err := disco.ServerResourcesForGroupVersion(r.APIVersion)
	if err != nil {
		return resourceType{}, fmt.Errorf("discovering %s: %w", r.APIVersion, err)
	}
	for _, res := range list.APIResources {
		if res.Name == r.Resource {
			return resourceType{gvr: gv.WithResource(r.Resource), apiVersion: r.APIVersion, kind: res.Kind, method: method}, nil
		}
	}
	return resourceType{}, fmt.Errorf("the API server serves no %s in %s", r.Resource, r.APIVersion)
}

// Run watches and syncs until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	c.stopping = ctx.Done()
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "standin-" + c.cc.Metadata.Name})
	defer c.queue.ShutDown()
	c.factory = dynamicinformer.NewDynamicSharedInformerFactory(c.dyn, 0)

	// The periodic resync applies to parents only, as in Metacontroller: a parent informer of its
	// own carries it.
	var resync time.Duration
	if p := c.cc.Spec.ResyncPeriod; p != nil && *p > 0 {
		resync = time.Duration(*p) * time.Second
	}
	c.parents = dynamicinformer.NewFilteredDynamicInformer(c.dyn, c.parent.gvr, metav1.NamespaceAll, resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
	if _, err := c.parents.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueParent,
		UpdateFunc: func(_, cur any) { c.enqueueParent(cur) },
		DeleteFunc: c.enqueueParent,
	}); err != nil {
		return err
	}
	go c.parents.RunWithContext(ctx)
	for _, t := range c.children {
		inf := c.factory.ForResource(t.gvr)
		c.listers[t.group()] = inf.Lister()
		if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: c.enqueueOwner,
			UpdateFunc: func(old, cur any) {
				// A relist or resync of a child changes nothing; the parent's resync covers it.
				if old.(metav1.Object).GetResourceVersion() != cur.(metav1.Object).GetResourceVersion() {
					c.enqueueOwner(cur)
				}
			},
			DeleteFunc: c.enqueueOwner,
		}); err != nil {
			return err
		}
	}
	c.factory.Start(ctx.Done())
	for gvr, ok := range c.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("the informer of %s did not sync", gvr)
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.parents.HasSynced) {
		return fmt.Errorf("the informer of %s did not sync", c.parent.gvr)
	}
	c.log.Info("stand-in running", "controller", c.cc.Metadata.Name, "strategy", string(c.strategy))

	var workers sync.WaitGroup
	for range 2 {
		workers.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	workers.Wait()
	c.factory.Shutdown()
	return nil
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	var later *retryLater
	switch {
	case err == nil:
		c.queue.Forget(key)
	case errors.As(err, &later):
		// 429: a clean "call me later"; nothing changed.
		c.log.Info("hook asked to be called later", "parent", key, "after", later.after.String())
		c.queue.Forget(key)
		c.queue.AddAfter(key, later.after)
	default:
		c.log.Warn("sync failed; retrying with backoff", "parent", key, "error", err.Error())
		c.queue.AddRateLimited(key)
	}
	return true
}

func (c *Controller) enqueueParent(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

// enqueueOwner syncs the parent that controls a child.
func (c *Controller) enqueueOwner(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	ref := metav1.GetControllerOfNoCopy(o)
	if ref == nil || ref.Kind != c.parent.kind {
		return
	}
	if gv, err := schema.ParseGroupVersion(ref.APIVersion); err != nil || gv.Group != c.parent.gvr.Group {
		return
	}
	c.queue.Add(o.GetNamespace() + "/" + ref.Name)
}

// enqueueNamespace syncs every parent of a namespace: a related object changed there.
func (c *Controller) enqueueNamespace(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	for _, p := range c.parents.GetStore().List() {
		if pm := p.(metav1.Object); pm.GetNamespace() == o.GetNamespace() {
			c.enqueueParent(p)
		}
	}
}

func (c *Controller) finalizer() string { return FinalizerPrefix + c.cc.Metadata.Name }
