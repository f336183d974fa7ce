package metacontroller

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
)

// LastAppliedAnnotation is where Metacontroller keeps, on each child, the object the hook last
// returned for it.
const LastAppliedAnnotation = "metacontroller.k8s.io/last-applied-configuration"

// ControllerUIDLabel is the label Metacontroller puts on every child of a CompositeController
// with generateSelector: true, set to the parent's UID; it selects the children by it.
const ControllerUIDLabel = "controller-uid"

// systemMeta are the metadata fields Metacontroller's apply never changes: whatever the answer
// says, they keep their observed values (or stay absent).
var systemMeta = []string{
	"selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
	"deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
}

// mergeKeys are the fields that make a list of objects a map to Metacontroller's apply, tried in
// this order: a list whose items all have one of them is merged item by item, any other list is
// replaced whole.
var mergeKeys = []string{"containerPort", "port", "mountPath", "name", "uid", "ip", "path"}

// Apply is the object Metacontroller's default apply (its "dynamic-apply" strategy, v4.17)
// writes when the hook answers desired for the observed child: a three-way merge in the manner
// of kubectl apply, whose third side is the last answer, kept in LastAppliedAnnotation.
//
//   - A field of the last answer that the new one leaves out is removed; a field that no answer
//     ever held (set by someone else: a controller, kubectl rollout restart) is kept.
//   - Every field of the new answer is set; objects merge key by key.
//   - Lists of objects that share a merge key (see mergeKeys) merge item by item; other lists
//     are replaced.
//   - The system metadata and the status keep what was observed; the annotation records the
//     new answer.
//
// The result equals observed (reflect.DeepEqual) exactly when Metacontroller would not update
// the child. Neither argument is changed. desired is the answer as Metacontroller applies it:
// with the parent's namespace and, under generateSelector, the controller-uid label.
func Apply(observed, desired Object) (Object, error) {
	last, err := lastAppliedOf(observed)
	if err != nil {
		return nil, err
	}
	answer := copyObject(desired)
	if m, ok := answer["metadata"].(map[string]any); ok {
		if ann, ok := m["annotations"].(map[string]any); ok {
			delete(ann, LastAppliedAnnotation)
		}
	}
	merged, err := mergeValue("", copyObject(observed), last, answer)
	if err != nil {
		return nil, err
	}
	out := merged.(map[string]any)
	revert(out, observed, "status")
	for _, f := range systemMeta {
		revert(out, observed, "metadata", f)
	}
	record, err := json.Marshal(answer)
	if err != nil {
		return nil, fmt.Errorf("recording the applied answer: %w", err)
	}
	SetAnnotation(out, LastAppliedAnnotation, string(record))
	return out, nil
}

func lastAppliedOf(obj Object) (map[string]any, error) {
	meta, _ := obj["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	s, _ := ann[LastAppliedAnnotation].(string)
	if s == "" {
		return nil, nil
	}
	var last map[string]any
	if err := Decode([]byte(s), &last); err != nil {
		return nil, fmt.Errorf("reading the %s annotation: %w", LastAppliedAnnotation, err)
	}
	return last, nil
}

// mergeValue merges at one place in the object: observed is what is there (and may be changed),
// last what the previous answer said, desired what the new one says.
func mergeValue(at string, observed, last, desired any) (any, error) {
	switch obs := observed.(type) {
	case map[string]any:
		l, lok := last.(map[string]any)
		d, dok := desired.(map[string]any)
		if (!lok && last != nil) || (!dok && desired != nil) {
			return nil, fmt.Errorf("%s: an object in the child, but not in the answers", at)
		}
		return mergeMap(at, obs, l, d)
	case []any:
		l, lok := last.([]any)
		d, dok := desired.([]any)
		if (!lok && last != nil) || (!dok && desired != nil) {
			return nil, fmt.Errorf("%s: a list in the child, but not in the answers", at)
		}
		if key := listMapKey(obs, l, d); key != "" {
			return mergeListMap(at, key, obs, l, d)
		}
		return desired, nil
	}
	return desired, nil
}

func mergeMap(at string, observed, last, desired map[string]any) (map[string]any, error) {
	for k := range last {
		if _, ok := desired[k]; !ok {
			delete(observed, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(desired)) {
		v, err := mergeValue(at+"."+k, observed[k], last[k], desired[k])
		if err != nil {
			return nil, err
		}
		observed[k] = v
	}
	return observed, nil
}

// mergeListMap merges lists of objects as maps by key; items keep their observed order, and new
// ones follow in the answer's order.
func mergeListMap(at, key string, observed, last, desired []any) ([]any, error) {
	byKey := func(list []any) map[string]any {
		m := make(map[string]any, len(list))
		for _, it := range list {
			m[keyString(it.(map[string]any)[key])] = it
		}
		return m
	}
	merged, err := mergeMap(at, byKey(observed), byKey(last), byKey(desired))
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(merged))
	placed := map[string]bool{}
	for _, list := range [][]any{observed, desired} {
		for _, it := range list {
			k := keyString(it.(map[string]any)[key])
			if v, ok := merged[k]; ok && !placed[k] {
				out = append(out, v)
				placed[k] = true
			}
		}
	}
	return out, nil
}

// listMapKey is the merge key that every item of every list has, or "" when the lists are not
// lists of such objects.
func listMapKey(lists ...[]any) string {
	var common map[string]bool
	for _, list := range lists {
		for _, it := range list {
			obj, ok := it.(map[string]any)
			if !ok {
				return ""
			}
			if common == nil {
				common = map[string]bool{}
				for k := range obj {
					common[k] = true
				}
				continue
			}
			for k := range common {
				if _, ok := obj[k]; !ok {
					delete(common, k)
				}
			}
		}
	}
	for _, k := range mergeKeys {
		if common[k] {
			return k
		}
	}
	return ""
}

func keyString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// revert sets the field at path in out to its value in from, or removes it where from has none.
func revert(out, from map[string]any, path ...string) {
	src, dst := any(from), any(out)
	for i, k := range path {
		sm, _ := src.(map[string]any)
		dm, _ := dst.(map[string]any)
		if dm == nil {
			return
		}
		v, ok := sm[k]
		if i == len(path)-1 {
			if ok {
				dm[k] = copyValue(v)
			} else {
				delete(dm, k)
			}
			return
		}
		if _, has := dm[k]; !has && ok {
			dm[k] = map[string]any{}
		}
		src, dst = v, dm[k]
	}
}

func copyObject(o map[string]any) map[string]any {
	if o == nil {
		return nil
	}
	return copyValue(o).(map[string]any)
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}

// Unchanged says whether an applied object is the observed one, which Metacontroller then
// leaves alone.
func Unchanged(observed, applied Object) bool { return reflect.DeepEqual(observed, applied) }
