package cli

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/manifests"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// compositeControllersGVR is Metacontroller's CompositeController resource.
var compositeControllersGVR = schema.GroupVersionResource{Group: "metacontroller.k8s.io", Version: "v1alpha1", Resource: "compositecontrollers"}

// controllerName is the CompositeController of manifests/compositecontroller.yaml.
const controllerName = "summon"

// childResources are the childResources of a CompositeController.
type childResources struct {
	Spec struct {
		ChildResources []struct {
			APIVersion     string `json:"apiVersion"`
			Resource       string `json:"resource"`
			UpdateStrategy *struct {
				Method string `json:"method"`
			} `json:"updateStrategy"`
		} `json:"childResources"`
	} `json:"spec"`
}

// updateMethods says how Metacontroller updates each child group: the live CompositeController's
// updateStrategy where it can be read, else the one this summonctl installs. A child type without
// one is never updated (OnDelete), as Metacontroller defaults it.
func updateMethods(ctx context.Context, c *clients) map[string]string {
	var cc childResources
	live, err := c.dyn.Resource(compositeControllersGVR).Get(ctx, controllerName, metav1.GetOptions{})
	if err == nil {
		b, _ := live.MarshalJSON()
		err = yaml.Unmarshal(b, &cc)
	}
	if err != nil {
		_ = yaml.Unmarshal(manifests.CompositeController, &cc)
	}
	out := map[string]string{}
	for _, r := range cc.Spec.ChildResources {
		gv, err := schema.ParseGroupVersion(r.APIVersion)
		if err != nil {
			continue
		}
		gvk, err := c.mapper.KindFor(gv.WithResource(r.Resource))
		if err != nil {
			continue
		}
		method := "OnDelete"
		if r.UpdateStrategy != nil && r.UpdateStrategy.Method != "" {
			method = r.UpdateStrategy.Method
		}
		out[metacontroller.GroupKey(gvk.Kind, r.APIVersion)] = method
	}
	return out
}
