package platform

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// The readers' definition: the unstructured converter (decodeTyped), on the object trimmed to
// what observe reads.

// decodeTrimmed is decodeTyped with spec replaced by trimSpec(spec) and status by
// trimStatus(status) (a nil result leaves the field out).
func decodeTrimmed(obj metacontroller.Object, trimSpec, trimStatus func(any) any, into any) error {
	trimmed := maps.Clone(obj)
	for key, trim := range map[string]func(any) any{"spec": trimSpec, "status": trimStatus} {
		if v, ok := obj[key]; ok {
			if t := trim(v); t != nil {
				trimmed[key] = t
			} else {
				delete(trimmed, key)
			}
		}
	}
	return decodeTyped(trimmed, into)
}

func convertWorkload(obj metacontroller.Object, into any) error {
	return decodeTrimmed(obj, workloadSpec, workloadStatus, into)
}

func convertJob(obj metacontroller.Object, into *batchv1.Job) error {
	return decodeTrimmed(obj, func(any) any { return nil }, jobStatus, into)
}

// keepKeys keeps of a JSON object the keys given; anything else is kept as it is, for the
// converter to refuse.
func keepKeys(v any, keys ...string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		if x, ok := m[k]; ok {
			out[k] = x
		}
	}
	return out
}

// workloadSpec keeps the replica count, the template's labels and annotations, and its
// containers' names and images.
func workloadSpec(spec any) any {
	kept := keepKeys(spec, "replicas", "template")
	s, ok := kept.(map[string]any)
	if !ok {
		return kept
	}
	if t, ok := keepKeys(s["template"], "metadata", "spec").(map[string]any); ok {
		if m, ok := t["metadata"]; ok {
			t["metadata"] = keepKeys(m, "labels", "annotations")
		}
		if ps, ok := t["spec"]; ok {
			ps = keepKeys(ps, "containers")
			if psm, ok := ps.(map[string]any); ok {
				if cs, ok := psm["containers"].([]any); ok {
					out := make([]any, len(cs))
					for i, c := range cs {
						out[i] = keepKeys(c, "name", "image")
					}
					psm["containers"] = out
				}
			}
			t["spec"] = ps
		}
		s["template"] = t
	}
	return s
}

func workloadStatus(status any) any {
	return keepKeys(status, "observedGeneration", "replicas", "readyReplicas", "updatedReplicas", "availableReplicas")
}

func jobStatus(status any) any {
	kept := keepKeys(status, "conditions", "completionTime")
	m, ok := kept.(map[string]any)
	if !ok {
		return kept
	}
	if conds, ok := m["conditions"].([]any); ok {
		out := make([]any, len(conds))
		for i, c := range conds {
			out[i] = keepKeys(c, "type", "status", "reason", "message")
		}
		m["conditions"] = out
	}
	return m
}

// observedSeeds are the observed Deployments, StatefulSets and Jobs of every golden request.
func observedSeeds(tb testing.TB) []metacontroller.Object {
	tb.Helper()
	requests := goldenRequests(tb)
	var out []metacontroller.Object
	for _, name := range slices.Sorted(maps.Keys(requests)) {
		req := requests[name]
		for _, g := range []string{GroupDeployment, GroupStatefulSet, GroupJob} {
			for _, name := range slices.Sorted(maps.Keys(req.Children[g])) {
				out = append(out, req.Children[g][name])
			}
		}
	}
	return out
}

// goldenRequests are the golden sync requests, by case name.
func goldenRequests(tb testing.TB) map[string]metacontroller.SyncRequest {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*", "request.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no golden requests: %v", err)
	}
	out := map[string]metacontroller.SyncRequest{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var req metacontroller.SyncRequest
		if err := metacontroller.Decode(raw, &req); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(filepath.Dir(f))] = req
	}
	return out
}

// mutate replaces the node-th value of obj (in a walk of sorted keys, depth first) with a value
// of the kind given, in a deep copy.
func mutate(obj metacontroller.Object, node int, kind byte) metacontroller.Object {
	raw, _ := json.Marshal(obj)
	var out metacontroller.Object
	_ = metacontroller.Decode(raw, &out)
	replacements := []any{nil, "text", "2026-12-05T10:00:00Z", int64(3), int64(1 << 40), int64(-1), float64(2), 1.5, true,
		map[string]any{}, map[string]any{"a": "b"}, map[string]any{"a": int64(1)}, []any{}, []any{nil}, []any{"x"}, []any{map[string]any{"name": int64(1)}}}
	with := replacements[int(kind)%len(replacements)]
	n := 0
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if n == node {
					x[k] = with
					return true
				}
				n++
				if walk(x[k]) {
					return true
				}
			}
		case []any:
			for i := range x {
				if n == node {
					x[i] = with
					return true
				}
				n++
				if walk(x[i]) {
					return true
				}
			}
		}
		return false
	}
	walk(out)
	return out
}

// sameRead fails t unless the reader and the converter read obj alike: both refuse it, or both
// give the same typed object.
func sameRead(t *testing.T, obj metacontroller.Object) {
	t.Helper()
	var got, want any
	var gotErr, wantErr error
	switch obj["kind"] {
	case "Deployment":
		var g, w appsv1.Deployment
		gotErr, wantErr = decodeWorkload(obj, &g), convertWorkload(obj, &w)
		got, want = g, w
	case "StatefulSet":
		var g, w appsv1.StatefulSet
		gotErr, wantErr = decodeWorkload(obj, &g), convertWorkload(obj, &w)
		got, want = g, w
	default:
		var g, w batchv1.Job
		gotErr, wantErr = decodeJob(obj, &g), convertJob(obj, &w)
		got, want = g, w
	}
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("the reader's error: %v; the converter's: %v\n%v", gotErr, wantErr, obj)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("the reader differs from the converter (-converter +reader):\n%s", cmp.Diff(want, got))
	}
}

// FuzzObservedReadersAreTheConverters gives decodeWorkload and decodeJob the observed children
// of the golden requests with one value replaced by another of any JSON kind, anywhere: they
// must refuse what the converter refuses and read the rest as it does.
func FuzzObservedReadersAreTheConverters(f *testing.F) {
	seeds := observedSeeds(f)
	for i := range seeds {
		for _, node := range []int{0, 7, 25, 60} {
			f.Add(uint16(i), uint16(node), byte(i+node))
		}
	}
	f.Fuzz(func(t *testing.T, seed, node uint16, kind byte) {
		obj := seeds[int(seed)%len(seeds)]
		sameRead(t, obj)
		sameRead(t, mutate(obj, int(node), kind))
	})
}

// TestObservedReadersReadEveryNodeOfEveryKind walks every value of a Deployment, a StatefulSet
// and a Job and replaces it with each kind of value in turn.
func TestObservedReadersReadEveryNodeOfEveryKind(t *testing.T) {
	kinds := map[any]metacontroller.Object{}
	for _, obj := range observedSeeds(t) {
		if _, ok := kinds[obj["kind"]]; !ok {
			kinds[obj["kind"]] = obj
		}
	}
	if len(kinds) != 3 {
		t.Fatalf("the goldens' observed children have kinds %v, want Deployment, StatefulSet and Job", slices.Collect(maps.Keys(kinds)))
	}
	for _, obj := range kinds {
		for node := range countNodes(obj) {
			for kind := range 16 {
				sameRead(t, mutate(obj, node, byte(kind)))
			}
		}
	}
}

// countNodes is how many values mutate can replace in v.
func countNodes(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			n += 1 + countNodes(e)
		}
	case []any:
		for _, e := range x {
			n += 1 + countNodes(e)
		}
	}
	return n
}
