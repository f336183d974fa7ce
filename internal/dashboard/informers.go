package dashboard

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

var platformsResource = schema.GroupVersionResource{Group: v1beta1.Group, Version: v1beta1.Version, Resource: v1beta1.Resource}

// managedBySummon selects the objects Summon builds: every child and every pod of an instance
// carries it, so the informers hold none of the cluster's other workloads. Events carry no
// labels and are watched whole.
var managedBySummon = children.LabelManagedBy + "=summon"

// watches are the informers that feed a View.
type watches struct {
	typed, events informers.SharedInformerFactory
	platforms     dynamicinformer.DynamicSharedInformerFactory
	view          *View
}

// newWatches builds the watches for the namespace ("" is every namespace) and the view they
// feed. Nothing is watched until start.
func newWatches(cfg *rest.Config, namespace string) (*watches, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	in := &watches{
		typed: informers.NewSharedInformerFactoryWithOptions(cs, 0,
			informers.WithNamespace(namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = managedBySummon }),
			informers.WithTransform(trim)),
		events:    informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace), informers.WithTransform(trim)),
		platforms: dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, namespace, nil),
	}
	children := []cache.SharedIndexInformer{
		in.typed.Apps().V1().Deployments().Informer(),
		in.typed.Apps().V1().StatefulSets().Informer(),
		in.typed.Batch().V1().Jobs().Informer(),
		in.typed.Core().V1().Pods().Informer(),
	}
	for _, inf := range children {
		if err := inf.AddIndexers(childIndexers); err != nil {
			return nil, fmt.Errorf("indexing the informers: %w", err)
		}
	}
	// A factory's informers index by namespace already, which is the one index of events.
	events := in.events.Core().V1().Events().Informer()
	in.view = newView(stores{
		deployments:  children[0].GetIndexer(),
		statefulSets: children[1].GetIndexer(),
		jobs:         children[2].GetIndexer(),
		pods:         children[3].GetIndexer(),
		events:       events.GetIndexer(),
	})
	changed := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { in.view.changes.notify() },
		UpdateFunc: func(any, any) { in.view.changes.notify() },
		DeleteFunc: func(any) { in.view.changes.notify() },
	}
	for _, inf := range append(children, events) {
		if _, err := inf.AddEventHandler(changed); err != nil {
			return nil, fmt.Errorf("watching: %w", err)
		}
	}
	platforms := in.platforms.ForResource(platformsResource).Informer()
	if err := platforms.SetTransform(trim); err != nil {
		return nil, fmt.Errorf("watching SummonPlatforms: %w", err)
	}
	_, err = platforms.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { in.putPlatform(obj) },
		UpdateFunc: func(_, obj any) { in.putPlatform(obj) },
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				in.view.deletePlatform(key)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watching SummonPlatforms: %w", err)
	}
	return in, nil
}

func (in *watches) putPlatform(obj any) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		in.view.putPlatform(platformFrom(u))
	}
}

// start runs the watches until ctx is done and marks the view synced once every informer has
// listed what exists.
func (in *watches) start(ctx context.Context) (synced <-chan bool) {
	in.typed.Start(ctx.Done())
	in.events.Start(ctx.Done())
	in.platforms.Start(ctx.Done())
	done := make(chan bool, 1)
	go func() {
		ok := true
		for _, s := range in.platforms.WaitForCacheSync(ctx.Done()) {
			ok = ok && s
		}
		for _, f := range []informers.SharedInformerFactory{in.typed, in.events} {
			for _, s := range f.WaitForCacheSync(ctx.Done()) {
				ok = ok && s
			}
		}
		if ok {
			in.view.synced.Store(true)
			in.view.changes.notify()
		}
		done <- ok
	}()
	return done
}

// checkAccess lists each watched resource once before anything is watched, so that missing
// permissions or a missing CRD are one clear error instead of an informer that retries forever.
func checkAccess(ctx context.Context, cfg *rest.Config, namespace string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building a Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building a Kubernetes client: %w", err)
	}
	one := metav1.ListOptions{Limit: 1}
	checks := []struct {
		resource string
		list     func() error
	}{
		{"summonplatforms", func() error {
			_, err := dyn.Resource(platformsResource).Namespace(namespace).List(ctx, one)
			return err
		}},
		{"deployments", func() error { _, err := cs.AppsV1().Deployments(namespace).List(ctx, one); return err }},
		{"statefulsets", func() error { _, err := cs.AppsV1().StatefulSets(namespace).List(ctx, one); return err }},
		{"jobs", func() error { _, err := cs.BatchV1().Jobs(namespace).List(ctx, one); return err }},
		{"pods", func() error { _, err := cs.CoreV1().Pods(namespace).List(ctx, one); return err }},
		{"events", func() error { _, err := cs.CoreV1().Events(namespace).List(ctx, one); return err }},
	}
	where := "every namespace"
	if namespace != "" {
		where = fmt.Sprintf("namespace %q", namespace)
	}
	var errs []error
	for _, c := range checks {
		err := c.list()
		switch {
		case err == nil:
		case c.resource == "summonplatforms" && (apierrors.IsNotFound(err) || meta.IsNoMatchError(err)):
			errs = append(errs, errors.New("the API server has no SummonPlatform resource: install Summon's CRD first (kubectl apply -f manifests/crd.yaml)"))
		case apierrors.IsForbidden(err):
			errs = append(errs, fmt.Errorf("not allowed to list %s in %s", c.resource, where))
		default:
			errs = append(errs, fmt.Errorf("listing %s in %s: %w", c.resource, where, err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	hint := "the dashboard needs get, list and watch on summonplatforms, deployments, statefulsets, jobs, pods and events " +
		"(manifests/dashboard/clusterrole.yaml grants exactly that)"
	if namespace == "" {
		hint += ", or choose one namespace that you can read"
	}
	return fmt.Errorf("%w; %s", errors.Join(errs...), hint)
}

// trim drops what the pages never read from an object before the informer stores it: the
// managed fields and the last-applied copies that kubectl and Metacontroller keep (most of an
// object's bytes), and a pod's spec. The informer hands it a freshly decoded object of its own.
func trim(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if ann := m.GetAnnotations(); len(ann) > 0 {
			delete(ann, corev1.LastAppliedConfigAnnotation)
			delete(ann, children.LastAppliedAnnotation)
			m.SetAnnotations(ann)
		}
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		pod.Spec = corev1.PodSpec{}
	}
	return obj, nil
}
