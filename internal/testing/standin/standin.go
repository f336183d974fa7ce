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
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	kjson "sigs.k8s.io/json"

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

// sync is one round for one parent, in Metacontroller's order: finalizer, claim the children,
// related objects, the hook, the finalizer again if finalized, the children, the status.
func (c *Controller) sync(ctx context.Context, key string) error {
	obj, exists, err := c.parents.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return err
	}
	parent := obj.(*unstructured.Unstructured).DeepCopy()
	ns := parent.GetNamespace()
	client := c.dyn.Resource(c.parent.gvr).Namespace(ns)
	deleting := parent.GetDeletionTimestamp() != nil

	wantFinalizer := c.cc.Spec.Hooks.Finalize != nil
	hasFinalizer := slices.Contains(parent.GetFinalizers(), c.finalizer())
	switch {
	case wantFinalizer && !hasFinalizer && !deleting:
		parent.SetFinalizers(append(parent.GetFinalizers(), c.finalizer()))
		if parent, err = client.Update(ctx, parent, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("adding finalizer: %w", err)
		}
		hasFinalizer = true
	case !wantFinalizer && hasFinalizer:
		if parent, err = c.removeFinalizer(ctx, parent); err != nil {
			return err
		}
		hasFinalizer = false
	}
	if deleting && !hasFinalizer {
		// Finalized (or never ours): the garbage collector removes the children.
		return nil
	}

	observed, err := c.claim(parent)
	if err != nil {
		return err
	}
	related, err := c.relatedObjects(ctx, parent)
	if err != nil {
		return err
	}
	hookName, h := "sync", c.cc.Spec.Hooks.Sync
	if deleting && c.cc.Spec.Hooks.Finalize != nil {
		hookName, h = "finalize", c.cc.Spec.Hooks.Finalize
	}
	parentJSON, err := json.Marshal(parent.Object)
	if err != nil {
		return err
	}
	req := metacontroller.SyncRequest{Controller: c.ccJSON, Parent: parentJSON, Children: observed, Related: related, Finalizing: hookName == "finalize"}
	var resp metacontroller.SyncResponse
	if err := c.call(ctx, h, &req, &resp); err != nil {
		return fmt.Errorf("%s hook: %w", hookName, err)
	}
	if resp.ResyncAfterSeconds > 0 {
		c.queue.AddAfter(key, time.Duration(resp.ResyncAfterSeconds*float64(time.Second)))
	}
	if resp.Finalized && hasFinalizer {
		if parent, err = c.removeFinalizer(ctx, parent); err != nil {
			return err
		}
		hasFinalizer = false
	}

	desired, err := c.desiredChildren(parent, resp.Children)
	if err != nil {
		return err
	}
	var manageErr error
	if !deleting || hasFinalizer {
		manageErr = c.manage(ctx, parent, observed, desired)
	}
	statusErr := c.writeStatus(ctx, parent, resp.Status)
	c.log.Info("synced", "parent", key, "hook", hookName, "children", len(resp.Children), "finalized", resp.Finalized,
		"manageError", errText(manageErr), "statusError", errText(statusErr))
	return errors.Join(manageErr, statusErr)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (c *Controller) removeFinalizer(ctx context.Context, parent *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	parent.SetFinalizers(slices.DeleteFunc(parent.GetFinalizers(), func(f string) bool { return f == c.finalizer() }))
	out, err := c.dyn.Resource(c.parent.gvr).Namespace(parent.GetNamespace()).Update(ctx, parent, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("removing finalizer: %w", err)
	}
	return out, nil
}

// claim gathers the parent's children: the objects of each declared type in its namespace whose
// controller reference is the parent. The request has an entry for every type, even empty.
func (c *Controller) claim(parent *unstructured.Unstructured) (metacontroller.RelativeObjects, error) {
	out := metacontroller.RelativeObjects{}
	for _, t := range c.children {
		group := metacontroller.ObjectsByName{}
		objs, err := c.listers[t.group()].ByNamespace(parent.GetNamespace()).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			u := o.(*unstructured.Unstructured)
			if ref := metav1.GetControllerOfNoCopy(u); ref != nil && ref.UID == parent.GetUID() {
				group[u.GetNamespace()+"/"+u.GetName()] = u.DeepCopy().Object
			}
		}
		out[t.group()] = group
	}
	return out, nil
}

// relatedObjects asks the customize hook (once per parent generation) which objects the sync hook
// needs besides the children, and reads them from informers started on first use.
func (c *Controller) relatedObjects(ctx context.Context, parent *unstructured.Unstructured) (metacontroller.RelativeObjects, error) {
	h := c.cc.Spec.Hooks.Customize
	if h == nil {
		return metacontroller.RelativeObjects{}, nil
	}
	cacheKey := string(parent.GetUID()) + "/" + strconv.FormatInt(parent.GetGeneration(), 10)
	c.mu.Lock()
	rules := c.customize[cacheKey]
	c.mu.Unlock()
	if rules == nil {
		parentJSON, err := json.Marshal(parent.Object)
		if err != nil {
			return nil, err
		}
		var resp metacontroller.CustomizeResponse
		if err := c.call(ctx, h, &metacontroller.CustomizeRequest{Controller: c.ccJSON, Parent: parentJSON}, &resp); err != nil {
			return nil, fmt.Errorf("customize hook: %w", err)
		}
		rules = &resp
		c.mu.Lock()
		c.customize[cacheKey] = rules
		c.mu.Unlock()
	}
	out := metacontroller.RelativeObjects{}
	for _, rule := range rules.RelatedResources {
		gv, err := schema.ParseGroupVersion(rule.APIVersion)
		if err != nil {
			return nil, err
		}
		lister, kind, err := c.relatedLister(ctx, gv.WithResource(rule.Resource))
		if err != nil {
			return nil, err
		}
		group := out[metacontroller.GroupKey(kind, rule.APIVersion)]
		if group == nil {
			group = metacontroller.ObjectsByName{}
			out[metacontroller.GroupKey(kind, rule.APIVersion)] = group
		}
		ns := rule.Namespace
		if ns == "" {
			ns = parent.GetNamespace()
		}
		objs, err := lister.ByNamespace(ns).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			u := o.(*unstructured.Unstructured)
			if len(rule.Names) == 0 || slices.Contains(rule.Names, u.GetName()) {
				group[u.GetNamespace()+"/"+u.GetName()] = u.DeepCopy().Object
			}
		}
	}
	return out, nil
}

func (c *Controller) relatedLister(ctx context.Context, gvr schema.GroupVersionResource) (cache.GenericLister, string, error) {
	c.mu.Lock()
	lister, ok := c.related[gvr]
	c.mu.Unlock()
	if !ok {
		inf := c.factory.ForResource(gvr)
		if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueNamespace,
			UpdateFunc: func(_, cur any) { c.enqueueNamespace(cur) },
			DeleteFunc: c.enqueueNamespace,
		}); err != nil {
			return nil, "", err
		}
		c.factory.Start(c.stopping)
		if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
			return nil, "", fmt.Errorf("the informer of %s did not sync", gvr)
		}
		lister = inf.Lister()
		c.mu.Lock()
		c.related[gvr] = lister
		c.mu.Unlock()
	}
	t, err := resolve(c.disco, resourceRule{APIVersion: gvr.GroupVersion().String(), Resource: gvr.Resource}, "")
	if err != nil {
		return nil, "", err
	}
	return lister, t.kind, nil
}

// resolveAuthorization reads the token of a hook's authorization.secretRef, once: Metacontroller
// (v4.17) too reads it when the CompositeController is created or changed, not on every call.
func (c *Controller) resolveAuthorization(h *hook) error {
	if h == nil || h.Webhook.Authorization == nil {
		return nil
	}
	a := h.Webhook.Authorization
	ref := a.SecretRef
	secret, err := c.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ref.Namespace).
		Get(context.Background(), ref.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the authorization Secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	encoded, _, _ := unstructured.NestedString(secret.Object, "data", ref.Key)
	token, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(token) == 0 {
		return fmt.Errorf("the authorization Secret %s/%s has no key %s", ref.Namespace, ref.Name, ref.Key)
	}
	scheme := a.Type
	if scheme == "" {
		scheme = "Bearer"
	}
	h.authHeader = scheme + " " + string(token)
	return nil
}

// retryLater is a hook's 429: call again after a while, change nothing meanwhile.
type retryLater struct{ after time.Duration }

func (r *retryLater) Error() string { return "hook asked to be called again after " + r.after.String() }

// call POSTs a hook request and decodes the answer strictly, as Metacontroller does for hooks v2.
// A 429 is a retryLater; any other status but 200 is an error: nothing changes, and the parent is
// synced again with backoff.
func (c *Controller) call(ctx context.Context, h *hook, req, resp any) error {
	timeout, _ := h.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	if h.authHeader != "" {
		hr.Header.Set("Authorization", h.authHeader)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusTooManyRequests:
		after, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		return &retryLater{after: time.Duration(max(after, 1)) * time.Second}
	default:
		return fmt.Errorf("answered %d: %s", res.StatusCode, bytes.TrimSpace(b))
	}
	strict, err := kjson.UnmarshalStrict(b, resp)
	if err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("decoding the answer strictly: %w", errors.Join(strict...))
	}
	return nil
}

// desiredChildren groups the answer's children as the request groups the observed ones, puts
// them in the parent's namespace, and adds the generated selector's label.
func (c *Controller) desiredChildren(parent *unstructured.Unstructured, objs []metacontroller.Object) (metacontroller.RelativeObjects, error) {
	out := metacontroller.RelativeObjects{}
	for _, o := range objs {
		u := &unstructured.Unstructured{Object: o}
		if u.GetNamespace() == "" {
			u.SetNamespace(parent.GetNamespace())
		}
		if u.GetNamespace() != parent.GetNamespace() {
			return nil, fmt.Errorf("desired child %s %s is in namespace %s, not its parent's", u.GetKind(), u.GetName(), u.GetNamespace())
		}
		group := metacontroller.GroupKey(u.GetKind(), u.GetAPIVersion())
		if _, ok := c.byGroup[group]; !ok {
			return nil, fmt.Errorf("desired child %s %s is of a type the CompositeController doesn't declare (%s)", u.GetKind(), u.GetName(), group)
		}
		l := u.GetLabels()
		if c.cc.generateSelector() {
			if l == nil {
				l = map[string]string{}
			}
			if _, ok := l[SelectorLabel]; !ok {
				l[SelectorLabel] = string(parent.GetUID())
				u.SetLabels(l)
			}
		}
		if c.cc.generateSelector() && l[SelectorLabel] != string(parent.GetUID()) {
			return nil, fmt.Errorf("labels on desired child %s %s don't match the parent's selector", u.GetKind(), u.GetName())
		}
		if out[group] == nil {
			out[group] = metacontroller.ObjectsByName{}
		}
		out[group][u.GetNamespace()+"/"+u.GetName()] = u.Object
	}
	return out, nil
}

// manage deletes the observed children the answer left out and creates or updates the desired
// ones. It goes on past a failed write so that one bad child doesn't block the others.
func (c *Controller) manage(ctx context.Context, parent *unstructured.Unstructured, observed, desired metacontroller.RelativeObjects) error {
	var errs []error
	for _, t := range c.children {
		for _, key := range slices.Sorted(maps.Keys(observed[t.group()])) {
			obj := &unstructured.Unstructured{Object: observed[t.group()][key]}
			if obj.GetDeletionTimestamp() != nil || desired[t.group()][key] != nil {
				continue
			}
			uid := obj.GetUID()
			err := c.dyn.Resource(t.gvr).Namespace(obj.GetNamespace()).Delete(ctx, obj.GetName(), metav1.DeleteOptions{
				Preconditions:     &metav1.Preconditions{UID: &uid},
				PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			})
			c.logWrite("delete", t, obj, err)
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("deleting %s %s: %w", t.kind, obj.GetName(), err))
			}
		}
	}
	for _, t := range c.children {
		for _, key := range slices.Sorted(maps.Keys(desired[t.group()])) {
			want := &unstructured.Unstructured{Object: desired[t.group()][key]}
			var have *unstructured.Unstructured
			if o := observed[t.group()][key]; o != nil {
				have = &unstructured.Unstructured{Object: o}
			}
			apply := c.dynamicApply
			if c.strategy == ServerSideApply {
				apply = c.serverSideApply
			}
			if err := apply(ctx, t, parent, have, want); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) logWrite(op string, t resourceType, obj *unstructured.Unstructured, err error) {
	c.log.Info("write", "op", op, "kind", t.kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "error", errText(err))
}

// controllerRef is Metacontroller's owner reference: the parent, as the controller, blocking its
// deletion until the child is gone (foreground deletion).
func controllerRef(parent *unstructured.Unstructured) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: parent.GetAPIVersion(), Kind: parent.GetKind(), Name: parent.GetName(), UID: parent.GetUID(),
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}

func claimOwnership(obj, parent *unstructured.Unstructured) {
	refs := obj.GetOwnerReferences()
	for _, r := range refs {
		if r.UID == parent.GetUID() {
			return
		}
	}
	obj.SetOwnerReferences(append(refs, controllerRef(parent)))
}

// systemMetadata are the metadata fields the API server owns; an apply never changes them.
var systemMetadata = []string{"selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
	"deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"}

// dynamicApply is Metacontroller's default apply. A new child is created with the last-applied
// annotation and the controller reference. An existing one gets the three-way merge that
// pkg/metacontroller.Apply models (summonctl diff uses the same model), sent as an update with the observed resourceVersion (a conflict is left for the next round), but only when
// its update method is InPlace and the merge changes something; a child that is being deleted is
// left alone.
func (c *Controller) dynamicApply(ctx context.Context, t resourceType, parent, have, want *unstructured.Unstructured) error {
	client := c.dyn.Resource(t.gvr).Namespace(want.GetNamespace())
	applied := want.DeepCopy()
	removeLastApplied(applied)
	appliedJSON, err := json.Marshal(applied.Object)
	if err != nil {
		return err
	}
	if have == nil {
		obj := applied.DeepCopy()
		setAnnotation(obj, LastAppliedAnnotation, string(appliedJSON))
		claimOwnership(obj, parent)
		_, err := client.Create(ctx, obj, metav1.CreateOptions{})
		c.logWrite("create", t, obj, err)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", t.kind, obj.GetName(), err)
		}
		return nil
	}
	out, err := metacontroller.Apply(have.Object, applied.Object)
	if err != nil {
		return fmt.Errorf("%s %s: %w", t.kind, have.GetName(), err)
	}
	merged := &unstructured.Unstructured{Object: out}
	if jsonEqual(merged.Object, have.Object) || have.GetDeletionTimestamp() != nil || t.method != methodInPlace {
		return nil
	}
	_, err = client.Update(ctx, merged, metav1.UpdateOptions{})
	c.logWrite("update", t, merged, err)
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating %s %s: %w", t.kind, merged.GetName(), err)
	}
	return nil
}

// serverSideApply applies the desired child as field manager "metacontroller", forcing conflicts.
// An existing child is applied only when its method is InPlace; Metacontroller first removes the
// dynamic apply's last-applied annotation, which would otherwise stay behind as a field nobody
// manages.
func (c *Controller) serverSideApply(ctx context.Context, t resourceType, parent, have, want *unstructured.Unstructured) error {
	client := c.dyn.Resource(t.gvr).Namespace(want.GetNamespace())
	if have != nil && (have.GetDeletionTimestamp() != nil || t.method != methodInPlace) {
		return nil
	}
	obj := want.DeepCopy()
	claimOwnership(obj, parent)
	for _, f := range systemMetadata {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(obj.Object, "status")
	removeLastApplied(obj)
	if have != nil {
		if _, ok := have.GetAnnotations()[LastAppliedAnnotation]; ok {
			path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(LastAppliedAnnotation, "~", "~0"), "/", "~1")
			_, err := client.Patch(ctx, have.GetName(), types.JSONPatchType, []byte(`[{"op":"remove","path":"`+path+`"}]`), metav1.PatchOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("removing %s from %s %s: %w", LastAppliedAnnotation, t.kind, have.GetName(), err)
			}
		}
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	_, err = client.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)})
	c.logWrite("apply", t, obj, err)
	if err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("applying %s %s: %w", t.kind, obj.GetName(), err)
	}
	return nil
}

// writeStatus replaces the parent's status with the hook's, plus observedGeneration, through the
// status subresource, unless it is already so. A conflict or a parent that is gone is left for
// the next round, which the write that caused it triggers.
func (c *Controller) writeStatus(ctx context.Context, parent *unstructured.Unstructured, status any) error {
	st, _ := status.(map[string]any)
	if st == nil {
		st = map[string]any{}
	}
	st["observedGeneration"] = parent.GetGeneration()
	if jsonEqual(parent.Object["status"], st) {
		return nil
	}
	parent = parent.DeepCopy()
	parent.Object["status"] = st
	_, err := c.dyn.Resource(c.parent.gvr).Namespace(parent.GetNamespace()).UpdateStatus(ctx, parent, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("writing the status: %w", err)
	}
	return nil
}

func removeLastApplied(obj *unstructured.Unstructured) {
	ann := obj.GetAnnotations()
	if _, ok := ann[LastAppliedAnnotation]; !ok {
		return
	}
	delete(ann, LastAppliedAnnotation)
	if len(ann) == 0 {
		ann = nil
	}
	obj.SetAnnotations(ann)
}

func setAnnotation(obj *unstructured.Unstructured, k, v string) {
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[k] = v
	obj.SetAnnotations(ann)
}

// jsonEqual compares two JSON values as JSON: an int64 from the API server equals the same whole
// number decoded from a hook's answer.
func jsonEqual(a, b any) bool {
	return reflect.DeepEqual(normalise(a), normalise(b))
}

func normalise(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := utiljson.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}
