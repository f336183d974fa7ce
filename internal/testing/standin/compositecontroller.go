package standin

import (
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// compositeController is the part of a Metacontroller CompositeController (v1alpha1) the stand-in
// reads.
type compositeController struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		ParentResource   resourceRule    `json:"parentResource"`
		ChildResources   []childResource `json:"childResources"`
		ResyncPeriod     *int64          `json:"resyncPeriodSeconds"`
		GenerateSelector *bool           `json:"generateSelector"`
		Hooks            struct {
			Customize *hook `json:"customize"`
			Sync      *hook `json:"sync"`
			Finalize  *hook `json:"finalize"`
		} `json:"hooks"`
	} `json:"spec"`
}

type resourceRule struct {
	APIVersion string `json:"apiVersion"`
	Resource   string `json:"resource"`
}

type childResource struct {
	resourceRule
	UpdateStrategy struct {
		Method string `json:"method"`
	} `json:"updateStrategy"`
}

type hook struct {
	Version string `json:"version"`
	Webhook struct {
		URL           string `json:"url"`
		Timeout       string `json:"timeout"`
		Authorization *struct {
			Type      string `json:"type"`
			SecretRef struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
				Key       string `json:"key"`
			} `json:"secretRef"`
		} `json:"authorization"`
	} `json:"webhook"`
	// authHeader is the Authorization header the hook is called with, read from the Secret when
	// the controller starts (as Metacontroller reads it when the CompositeController is created).
	authHeader string
}

// Update methods of a child resource (Metacontroller's ChildUpdateMethod).
const (
	methodOnDelete = "OnDelete"
	methodInPlace  = "InPlace"
)

// defaultHookTimeout is Metacontroller's when a webhook sets none.
const defaultHookTimeout = 10 * time.Second

func (h *hook) timeout() (time.Duration, error) {
	if h.Webhook.Timeout == "" {
		return defaultHookTimeout, nil
	}
	return time.ParseDuration(h.Webhook.Timeout)
}

// parseCompositeController reads a CompositeController and refuses what the stand-in doesn't do:
// a hook reached through a Service (the stand-in runs outside the cluster; give it a url), hooks
// version v1, and the Recreate and Rolling* update methods (Summon's CompositeController uses
// none of them; the Rolling* ones call the sync hook with hypothetical states).
func parseCompositeController(obj *unstructured.Unstructured) (*compositeController, error) {
	b, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	var cc compositeController
	if err := json.Unmarshal(b, &cc); err != nil {
		return nil, fmt.Errorf("reading the CompositeController: %w", err)
	}
	if cc.Spec.ParentResource.Resource == "" || cc.Spec.ParentResource.APIVersion == "" {
		return nil, fmt.Errorf("CompositeController %s has no spec.parentResource", cc.Metadata.Name)
	}
	if cc.Spec.Hooks.Sync == nil {
		return nil, fmt.Errorf("CompositeController %s has no sync hook", cc.Metadata.Name)
	}
	for name, h := range map[string]*hook{"customize": cc.Spec.Hooks.Customize, "sync": cc.Spec.Hooks.Sync, "finalize": cc.Spec.Hooks.Finalize} {
		if h == nil {
			continue
		}
		if h.Webhook.URL == "" {
			return nil, fmt.Errorf("the %s hook has no webhook.url; the stand-in runs outside the cluster and can't reach a Service", name)
		}
		if h.Version != "v2" {
			return nil, fmt.Errorf("the %s hook is version %q; the stand-in speaks only v2", name, h.Version)
		}
		if _, err := h.timeout(); err != nil {
			return nil, fmt.Errorf("the %s hook's timeout: %w", name, err)
		}
	}
	for _, c := range cc.Spec.ChildResources {
		switch c.UpdateStrategy.Method {
		case "", methodOnDelete, methodInPlace:
		default:
			return nil, fmt.Errorf("child resource %s %s: update method %q is not one the stand-in plays", c.APIVersion, c.Resource, c.UpdateStrategy.Method)
		}
	}
	return &cc, nil
}

func (cc *compositeController) generateSelector() bool {
	return cc.Spec.GenerateSelector != nil && *cc.Spec.GenerateSelector
}
