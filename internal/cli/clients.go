package cli

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// platformsGVR is the SummonPlatform resource.
var platformsGVR = schema.GroupVersionResource{Group: v1beta1.Group, Version: v1beta1.Version, Resource: v1beta1.Resource}

// clients reach the cluster with the user's own credentials, as kubectl does.
type clients struct {
	rest      *rest.Config
	dyn       dynamic.Interface
	kube      kubernetes.Interface
	mapper    meta.RESTMapper
	namespace string
}

// clients builds the clients from the kubeconfig flags.
func (g *globals) clients() (*clients, error) {
	cfg, err := g.kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	ns, _, err := g.kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := g.kube.ToRESTMapper()
	if err != nil {
		return nil, err
	}
	return &clients{rest: cfg, dyn: dyn, kube: kube, mapper: mapper, namespace: ns}, nil
}

// platforms is the SummonPlatform client of a namespace ("" for all).
func (c *clients) platforms(namespace string) dynamic.ResourceInterface {
	return c.dyn.Resource(platformsGVR).Namespace(namespace)
}

// getPlatform reads one SummonPlatform, with an error that says what to do when there is none.
func (c *clients) getPlatform(ctx context.Context, g *globals, namespace, name string) (*unstructured.Unstructured, error) {
	p, err := c.platforms(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("no SummonPlatform %q in namespace %q; list them with %s status -n %s", name, namespace, g.name, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading SummonPlatform %s/%s: %w", namespace, name, err)
	}
	return p, nil
}

// groupResource is the resource of a child group ("Deployment.apps/v1").
func (c *clients) groupResource(group string) (schema.GroupVersionResource, error) {
	kind, apiVersion, _ := strings.Cut(group, ".")
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	m, err := c.mapper.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if err != nil {
		return schema.GroupVersionResource{}, fmt.Errorf("finding the resource of %s: %w", group, err)
	}
	return m.Resource, nil
}

// observedChildren lists the children Metacontroller claims for a parent, as it claims them:
// in the parent's namespace, labelled with its controller-uid, and either controlled by it or
// by nothing (an orphan it adopts).
func (c *clients) observedChildren(ctx context.Context, parent *unstructured.Unstructured, groups []string) ([]map[string]any, error) {
	var out []map[string]any
	selector := metacontroller.ControllerUIDLabel + "=" + string(parent.GetUID())
	for _, group := range groups {
		gvr, err := c.groupResource(group)
		if err != nil {
			return nil, err
		}
		list, err := c.dyn.Resource(gvr).Namespace(parent.GetNamespace()).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("listing the %s of %s: %w", gvr.Resource, parent.GetName(), err)
		}
		for i := range list.Items {
			item := &list.Items[i]
			if ref := metav1.GetControllerOfNoCopy(item); ref != nil && ref.UID != parent.GetUID() {
				continue
			}
			out = append(out, item.Object)
		}
	}
	return out, nil
}

// relatedSecrets reads the input Secrets a parent names; a missing one is left out, as
// Metacontroller leaves it out of the request.
func (c *clients) relatedSecrets(ctx context.Context, parent map[string]any) ([]map[string]any, error) {
	names, err := inputNames(parent)
	if err != nil {
		return nil, err
	}
	ns := metaString(parent, "namespace")
	var out []map[string]any
	for _, n := range names {
		s, err := c.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ns).Get(ctx, n, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading input Secret %s/%s: %w", ns, n, err)
		}
		out = append(out, s.Object)
	}
	return out, nil
}
