package children

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// LastAppliedAnnotation is where Metacontroller keeps the object the hook last returned.
const LastAppliedAnnotation = "metacontroller.k8s.io/last-applied-configuration"

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// presenceMatters lists the keys whose empty object means something (emptyDir: {} asks for a
// volume). Every other empty object is noise.
var presenceMatters = map[string]bool{"emptyDir": true}

// ToObject turns a typed object into the minimal JSON Metacontroller should apply: no status, no
// nulls, no empty objects or lists. Typed k8s.io/api structs serialise creationTimestamp: null,
// status: {} and the like; Metacontroller compares desired and observed with reflect.DeepEqual, so
// each of those would be a write on every sync.
//
// The result is ToObjectByConverter's, built without its cost (convert.go); what the fast path
// does not take goes to ToObjectByConverter itself.
func ToObject(typed any) (metacontroller.Object, error) { return toObject(typed, nil) }

// toObject is ToObject, sharing the boxed strings when there are some (Converter).
func toObject(typed any, strings map[string]any) (metacontroller.Object, error) {
	if obj, err := fastObject(typed, strings); err == nil {
		return obj, nil
	}
	return ToObjectByConverter(typed)
}

// A Converter is ToObject for the children of one answer: the maps it builds share one boxed copy
// of each string value. Each string stored in a map is boxed into an interface value, one
// allocation each, and an instance's children repeat the same labels, names and images (a Ready
// instance's answer boxes 336 strings, 85 of them distinct). An interface value can't be changed,
// so sharing it changes nothing for whoever edits the maps. Use one per answer, not one per
// process: nothing of one tenant's answer (its Secret's data included) should outlive it. The
// zero Converter is ready to use.
type Converter struct {
	strings map[string]any
}

// ToObject is ToObject, sharing c's boxed strings.
func (c *Converter) ToObject(typed any) (metacontroller.Object, error) {
	if c.strings == nil {
		// A Ready instance's answer has 85 distinct strings: room for them without growing.
		c.strings = make(map[string]any, 96)
	}
	return toObject(typed, c.strings)
}

// ToObjectByConverter is ToObject's definition: the unstructured converter, which follows the
// json tags without writing JSON text (the same object as a JSON round trip), then the status and
// every null and empty object or list taken out. ToObject must give exactly this; it is slower.
func ToObjectByConverter(typed any) (metacontroller.Object, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	if err != nil {
		return nil, fmt.Errorf("encoding child: %w", err)
	}
	delete(obj, "status")
	prune(obj)
	return obj, nil
}

// prune removes, depth first, every null and every empty object or list from a JSON object.
func prune(m map[string]any) {
	for k, v := range m {
		if pruneValue(v) && !(presenceMatters[k] && isMap(v)) {
			delete(m, k)
		}
	}
}

// pruneValue prunes inside v and says whether v is now empty.
func pruneValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		prune(x)
		return len(x) == 0
	case []any:
		for _, e := range x {
			pruneValue(e)
		}
		return len(x) == 0
	}
	return false
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// serverOwnedMeta are the metadata fields the API server or Metacontroller writes; a child
// returned as observed must not claim them.
var serverOwnedMeta = []string{
	"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
	"deletionGracePeriodSeconds", "managedFields", "ownerReferences", "selfLink",
}

// AsObserved returns an observed child as the hook should return it to keep it unchanged. When
// Metacontroller's last-applied annotation is there, that is what the hook asked for last time:
// returning it claims none of the fields the API server defaulted, and changes nothing Summon
// set. One field Summon sets is changed by others, spec.replicas (an HPA, kubectl scale), and
// Metacontroller's merge sets every field of the answer: so the observed count goes back, not the
// last applied one, or a paused instance or one in Error would scale its HPA's pods away. Without
// the annotation the observed object is returned without what the server owns.
func AsObserved(observed metacontroller.Object) metacontroller.Object {
	if last, ok := lastApplied(observed); ok {
		keepObservedReplicas(last, observed)
		return last
	}
	out := deepCopy(observed)
	delete(out, "status")
	if meta, ok := out["metadata"].(map[string]any); ok {
		for _, f := range serverOwnedMeta {
			delete(meta, f)
		}
		if ann, ok := meta["annotations"].(map[string]any); ok {
			delete(ann, LastAppliedAnnotation)
			if len(ann) == 0 {
				delete(meta, "annotations")
			}
		}
	}
	return out
}

// TemplateAnnotationsAsObserved reads the pod template annotations AsObserved(observed) would
// have, without building that object: a Ready instance's every sync asks which builder revision
// each workload runs, and decoding each last-applied annotation whole for it was a third of the
// core's allocations. From the last-applied annotation it decodes only kind, apiVersion and the
// template's annotations. ok is false when that narrower read can't tell (a last-applied object
// of another shape: then AsObserved's answer is the one to take); hasTemplate is false when the
// object has no pod template.
func TemplateAnnotationsAsObserved(observed metacontroller.Object) (ann map[string]string, hasTemplate, ok bool) {
	meta, _ := observed["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	s, _ := annotations[LastAppliedAnnotation].(string)
	if s == "" {
		// AsObserved keeps the observed template as it is.
		spec, _ := observed["spec"].(map[string]any)
		tpl, isMap := spec["template"].(map[string]any)
		tplMeta, _ := tpl["metadata"].(map[string]any)
		return StringValues(tplMeta["annotations"]), isMap, true
	}
	last, ok := readAppliedTemplate(s)
	if !ok || observed["kind"] != last.kind || observed["apiVersion"] != last.apiVersion {
		// Unreadable, of another kind, or with a field of a shape this read can't hold.
		return nil, false, false
	}
	return last.annotations, last.hasTemplate, true
}

// StringValues keeps the string values of a JSON object (none when v is not one): labels and
// annotations as the core reads them from an object held as a map.
func StringValues(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := make(map[string]string, len(m))
	for k, x := range m {
		if s, ok := x.(string); ok {
			out[k] = s
		}
	}
	return out
}

func keepObservedReplicas(last, observed metacontroller.Object) {
	lastSpec, _ := last["spec"].(map[string]any)
	observedSpec, _ := observed["spec"].(map[string]any)
	if n, ok := observedSpec["replicas"]; ok && lastSpec != nil {
		lastSpec["replicas"] = n
	}
}

func lastApplied(observed metacontroller.Object) (metacontroller.Object, bool) {
	meta, _ := observed["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	s, _ := ann[LastAppliedAnnotation].(string)
	if s == "" {
		return nil, false
	}
	last, ok := scanObject(s)
	if !ok {
		// The scan leaves what it can't read exactly, and every text Decode refuses, to Decode.
		if err := metacontroller.Decode([]byte(s), &last); err != nil {
			return nil, false
		}
	}
	if last["kind"] != observed["kind"] || last["apiVersion"] != observed["apiVersion"] {
		return nil, false
	}
	return last, true
}

// deepCopy copies a JSON object so that the caller's observed children are never changed.
func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}
