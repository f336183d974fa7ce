// Package crds installs and uninstalls CustomResourceDefinitions for tests and waits until the API
// server serves them (or no longer does), discovery included: every test that installs a CRD
// goes through here.
package crds

import (
	"context"
	"fmt"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// crdWait bounds how long a CRD may take to be served, or to go: a loaded API server takes
// seconds, never this long.
const crdWait = 60 * time.Second

// Install creates each CRD (one that exists already is left as it is) and returns once the API
// server serves every one of them: Established, and listed by discovery for each served version.
//
// Established alone is not enough. It says the API server's CRD handler is ready, while discovery
// (what a client's REST mapper reads to turn a kind into a resource) is updated a moment later; on
// a loaded machine a client asking in between gets `no matches for kind`. That was a CI failure on
// a fresh clone (2026-12-05), so every test that installs a CRD goes through here.
func Install(ctx context.Context, cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, crd := range crds {
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
		}
	}
	for _, crd := range crds {
		if err := waitCRD(ctx, cfg, crd, true); err != nil {
			return err
		}
	}
	return nil
}

// Uninstall deletes each CRD, if it is there, and returns once discovery no longer lists any
// of its resources, so that a later Install starts from a clean slate.
func Uninstall(ctx context.Context, cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, crd := range crds {
		if err := cs.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting CRD %s: %w", crd.Name, err)
		}
	}
	for _, crd := range crds {
		if err := waitCRD(ctx, cfg, crd, false); err != nil {
			return err
		}
	}
	return nil
}

// waitCRD polls until the CRD is served (served true) or gone (served false), as the API server
// and its discovery both say.
func waitCRD(ctx context.Context, cfg *rest.Config, crd *apiextensionsv1.CustomResourceDefinition, served bool) error {
	ctx, cancel := context.WithTimeout(ctx, crdWait)
	defer cancel()
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	var last string
	for {
		var ok bool
		ok, last = crdState(ctx, cs, dc, crd, served)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			want := "served"
			if !served {
				want = "gone"
			}
			return fmt.Errorf("CRD %s is not %s after %s: %s", crd.Name, want, crdWait, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// crdState says whether the CRD is in the wanted state, and if not, what was seen instead.
func crdState(ctx context.Context, cs apiextensionsclient.Interface, dc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition, served bool) (bool, string) {
	got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
	switch {
	case served && err != nil:
		return false, fmt.Sprintf("get: %v", err)
	case served && !Established(got):
		return false, fmt.Sprintf("not Established (conditions %+v)", got.Status.Conditions)
	case !served && err == nil:
		return false, "still stored"
	case !served && !apierrors.IsNotFound(err):
		return false, fmt.Sprintf("get: %v", err)
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}
		list, err := dc.ServerResourcesForGroupVersion(gv.String())
		listed := err == nil && slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool {
			return r.Name == crd.Spec.Names.Plural && r.Kind == crd.Spec.Names.Kind
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("discovery of %s: %v", gv, err)
		}
		if listed != served {
			return false, fmt.Sprintf("discovery of %s lists %s: %t", gv, crd.Spec.Names.Plural, listed)
		}
	}
	return true, ""
}

// Established reports the CRD's Established condition.
func Established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}
