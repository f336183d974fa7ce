package standin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

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
