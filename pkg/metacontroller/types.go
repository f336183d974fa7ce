// Package metacontroller re-declares the parts of Metacontroller's hook API (v4.17, hooks version
// v2) that Summon speaks: the CompositeController sync, finalize and customize requests and
// responses. Metacontroller's own Go module cannot be imported (its module path is just
// "metacontroller"), and Summon needs only the wire shapes. It performs no I/O.
package metacontroller

import (
	"encoding/json"

	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// Object is one Kubernetes object as JSON decodes it. Summon keeps observed children unstructured:
// it must be able to return any of them exactly as it found them, whatever their type.
type Object = map[string]any

// ObjectsByName is one group of observed objects. Hooks version v2 keys it by "namespace/name"
// for namespaced objects and by "name" for cluster-scoped ones.
type ObjectsByName map[string]Object

// RelativeObjects groups observed objects by "Kind.apiVersion", e.g. "Deployment.apps/v1" or
// "Secret.v1". Metacontroller sends an entry for every declared type, even an empty one.
type RelativeObjects map[string]ObjectsByName

// SyncRequest is the body Metacontroller POSTs to the sync and finalize hooks.
type SyncRequest struct {
	Controller json.RawMessage `json:"controller,omitempty"`
	Parent     json.RawMessage `json:"parent"`
	Children   RelativeObjects `json:"children"`
	Related    RelativeObjects `json:"related,omitempty"`
	Finalizing bool            `json:"finalizing,omitempty"`
}

// SyncResponse is the body the hooks answer with. Metacontroller decodes it strictly, so it has
// exactly these fields. Status replaces the parent's whole status; any observed child missing
// from Children is deleted, so Children is never null.
type SyncResponse struct {
	Status             any      `json:"status"`
	Children           []Object `json:"children"`
	ResyncAfterSeconds float64  `json:"resyncAfterSeconds,omitempty"`
	Finalized          bool     `json:"finalized,omitempty"`
}

// CustomizeRequest is the body of the customize hook, which asks which related objects (beyond
// the children) the sync hook needs to see.
type CustomizeRequest struct {
	Controller json.RawMessage `json:"controller,omitempty"`
	Parent     json.RawMessage `json:"parent"`
}

// CustomizeResponse lists the related objects to send with each sync request.
type CustomizeResponse struct {
	RelatedResources []RelatedResourceRule `json:"relatedResources"`
}

// RelatedResourceRule selects related objects by name in one namespace.
type RelatedResourceRule struct {
	APIVersion string   `json:"apiVersion"`
	Resource   string   `json:"resource"`
	Namespace  string   `json:"namespace,omitempty"`
	Names      []string `json:"names,omitempty"`
}

// GroupKey is the key of a group in RelativeObjects: "Kind.apiVersion".
func GroupKey(kind, apiVersion string) string { return kind + "." + apiVersion }

// Decode reads a hook request or response body. Numbers come out as int64 when they are whole
// and float64 otherwise, as Kubernetes' own unstructured objects hold them: a replica count
// stays an integer, and the typed converters read observed children without a JSON round trip.
func Decode(body []byte, into any) error { return utiljson.Unmarshal(body, into) }

// SetAnnotation sets one annotation of an object held as a map, making its metadata and
// annotations maps where they are missing.
func SetAnnotation(obj Object, key, value string) {
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		meta["annotations"] = ann
	}
	ann[key] = value
}
