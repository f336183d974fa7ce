package standin

import (
	"fmt"
)

// mergeKeys are the fields that, when every object of a list has one, make the list a map keyed by
// it for the three-way merge, in order of preference: the convention Kubernetes' own lists follow
// (containers and volumes by name, ports by containerPort or port, mounts by mountPath), which
// Metacontroller's dynamic apply documents that it guesses from.
var mergeKeys = []string{"containerPort", "port", "mountPath", "name", "uid", "ip", "path"}

// threeWayMerge applies to observed the change from lastApplied to desired, as Metacontroller's
// dynamic apply does (kubectl apply's rule, without type knowledge): a key that was applied last
// time but is not desired any more is removed; every desired value overwrites; maps merge key by
// key; a list of objects that share a merge key merges item by item (observed order first, new
// items after); any other list, and a value whose type changed, is replaced. What nobody applied
// (fields the API server or another controller set) is kept. It returns a new value; none of its
// arguments is changed.
func threeWayMerge(observed, lastApplied, desired any) any {
	switch want := desired.(type) {
	case map[string]any:
		have, _ := observed.(map[string]any)
		last, _ := lastApplied.(map[string]any)
		return mergeMaps(have, last, want)
	case []any:
		have, ok := observed.([]any)
		if !ok {
			return deepCopy(want)
		}
		last, _ := lastApplied.([]any)
		if key := listMergeKey(have, last, want); key != "" {
			return mergeListMap(key, have, last, want)
		}
		return deepCopy(want)
	default:
		return want
	}
}

func mergeMaps(have, last, want map[string]any) map[string]any {
	out := make(map[string]any, len(have)+len(want))
	for k, v := range have {
		out[k] = deepCopy(v)
	}
	for k := range last {
		if _, ok := want[k]; !ok {
			delete(out, k)
		}
	}
	for k, v := range want {
		out[k] = threeWayMerge(out[k], last[k], v)
	}
	return out
}

// listMergeKey is the first of mergeKeys that every item of every list has, or "" when an item is
// not an object or no key is shared.
func listMergeKey(lists ...[]any) string {
	var common map[string]bool
	for _, l := range lists {
		for _, item := range l {
			obj, ok := item.(map[string]any)
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

func mergeListMap(key string, have, last, want []any) []any {
	byKey := func(l []any) map[string]any {
		m := make(map[string]any, len(l))
		for _, item := range l {
			m[fmt.Sprint(item.(map[string]any)[key])] = item
		}
		return m
	}
	merged := mergeMaps(byKey(have), byKey(last), byKey(want))
	out := make([]any, 0, len(merged))
	placed := map[string]bool{}
	for _, l := range [][]any{have, want} {
		for _, item := range l {
			k := fmt.Sprint(item.(map[string]any)[key])
			if v, ok := merged[k]; ok && !placed[k] {
				out = append(out, v)
				placed[k] = true
			}
		}
	}
	return out
}

// deepCopy copies a JSON value.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}
