package metacontroller

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func obj(t *testing.T, s string) Object {
	t.Helper()
	var o Object
	if err := Decode([]byte(s), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// withLast puts the last answer into an observed object's annotation, as Metacontroller keeps it.
func withLast(t *testing.T, observed, last string) Object {
	t.Helper()
	o := obj(t, observed)
	meta := o["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		meta["annotations"] = ann
	}
	ann[LastAppliedAnnotation] = string(mustJSON(t, obj(t, last)))
	return o
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestApplyMergesAsMetacontrollersDynamicApply(t *testing.T) {
	tests := map[string]struct {
		observed Object
		desired  string
		want     string // without the last-applied annotation
	}{
		"a field nobody's answer held is kept (a restart annotation)": {
			observed: withLast(t,
				`{"metadata":{"name":"w"},"spec":{"template":{"metadata":{"annotations":{"hash":"1","kubectl.kubernetes.io/restartedAt":"t"}}}}}`,
				`{"metadata":{"name":"w"},"spec":{"template":{"metadata":{"annotations":{"hash":"1"}}}}}`),
			desired: `{"metadata":{"name":"w"},"spec":{"template":{"metadata":{"annotations":{"hash":"2"}}}}}`,
			want:    `{"metadata":{"name":"w"},"spec":{"template":{"metadata":{"annotations":{"hash":"2","kubectl.kubernetes.io/restartedAt":"t"}}}}}`,
		},
		"a field the last answer held and the new one drops is removed": {
			observed: withLast(t, `{"metadata":{"name":"w"},"spec":{"replicas":2,"paused":true}}`, `{"metadata":{"name":"w"},"spec":{"replicas":2,"paused":true}}`),
			desired:  `{"metadata":{"name":"w"},"spec":{"paused":true}}`,
			want:     `{"metadata":{"name":"w"},"spec":{"paused":true}}`,
		},
		"without a last answer nothing is removed": {
			observed: obj(t, `{"metadata":{"name":"w"},"spec":{"replicas":2}}`),
			desired:  `{"metadata":{"name":"w"},"spec":{"paused":true}}`,
			want:     `{"metadata":{"name":"w"},"spec":{"replicas":2,"paused":true}}`,
		},
		"lists of objects with a name merge item by item, keeping defaults the server added": {
			observed: withLast(t,
				`{"metadata":{"name":"w"},"spec":{"containers":[{"name":"a","image":"x:1","terminationMessagePath":"/dev/termination-log"},{"name":"b","image":"y:1"}]}}`,
				`{"metadata":{"name":"w"},"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y:1"}]}}`),
			desired: `{"metadata":{"name":"w"},"spec":{"containers":[{"name":"c","image":"z:1"},{"name":"a","image":"x:2"}]}}`,
			want:    `{"metadata":{"name":"w"},"spec":{"containers":[{"name":"a","image":"x:2","terminationMessagePath":"/dev/termination-log"},{"name":"c","image":"z:1"}]}}`,
		},
		"lists of scalars are replaced": {
			observed: withLast(t, `{"metadata":{"name":"w"},"spec":{"args":["a","b"]}}`, `{"metadata":{"name":"w"},"spec":{"args":["a","b"]}}`),
			desired:  `{"metadata":{"name":"w"},"spec":{"args":["c"]}}`,
			want:     `{"metadata":{"name":"w"},"spec":{"args":["c"]}}`,
		},
		"ports merge by port before name": {
			observed: withLast(t,
				`{"metadata":{"name":"s"},"spec":{"ports":[{"name":"http","port":80,"targetPort":"http","protocol":"TCP"}]}}`,
				`{"metadata":{"name":"s"},"spec":{"ports":[{"name":"http","port":80,"targetPort":"http"}]}}`),
			desired: `{"metadata":{"name":"s"},"spec":{"ports":[{"name":"web","port":80,"targetPort":"http"}]}}`,
			want:    `{"metadata":{"name":"s"},"spec":{"ports":[{"name":"web","port":80,"targetPort":"http","protocol":"TCP"}]}}`,
		},
		"system metadata and status keep what was observed": {
			observed: obj(t, `{"metadata":{"name":"w","uid":"u1","resourceVersion":"7","generation":3},"spec":{"x":1},"status":{"ready":1}}`),
			desired:  `{"metadata":{"name":"w","uid":"other","generation":9},"spec":{"x":2},"status":{"ready":5}}`,
			want:     `{"metadata":{"name":"w","uid":"u1","resourceVersion":"7","generation":3},"spec":{"x":2},"status":{"ready":1}}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := mustJSON(t, tc.observed)
			got, err := Apply(tc.observed, obj(t, tc.desired))
			if err != nil {
				t.Fatal(err)
			}
			if string(mustJSON(t, tc.observed)) != string(before) {
				t.Error("Apply changed the observed object")
			}
			record := got["metadata"].(map[string]any)["annotations"].(map[string]any)[LastAppliedAnnotation]
			if diff := cmp.Diff(string(mustJSON(t, obj(t, tc.desired))), record); diff != "" {
				t.Errorf("the recorded answer (-desired +recorded):\n%s", diff)
			}
			ann := got["metadata"].(map[string]any)["annotations"].(map[string]any)
			delete(ann, LastAppliedAnnotation)
			if len(ann) == 0 {
				delete(got["metadata"].(map[string]any), "annotations")
			}
			if diff := cmp.Diff(obj(t, tc.want), got); diff != "" {
				t.Errorf("applied (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyOfTheLastAnswerAgainChangesNothing(t *testing.T) {
	answer := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w","labels":{"a":"b"}},"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"c","image":"x:1"}]}}}}`
	observed := withLast(t, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w","labels":{"a":"b"},"uid":"u"},"spec":{"replicas":1,"progressDeadlineSeconds":600,"template":{"spec":{"containers":[{"name":"c","image":"x:1","imagePullPolicy":"IfNotPresent"}]}}},"status":{"replicas":1}}`, answer)
	got, err := Apply(observed, obj(t, answer))
	if err != nil {
		t.Fatal(err)
	}
	if !Unchanged(observed, got) {
		t.Errorf("the same answer would update the child:\n%s", cmp.Diff(observed, got))
	}
}

func TestApplyRefusesAnAnswerOfAnotherShape(t *testing.T) {
	observed := obj(t, `{"metadata":{"name":"w"},"spec":{"template":{"x":1}}}`)
	if _, err := Apply(observed, obj(t, `{"metadata":{"name":"w"},"spec":{"template":[1]}}`)); err == nil {
		t.Error("a list where the child has an object was merged")
	}
}

// TestApplyMergesFragments checks the three-way merge on fragments of
// objects: what Apply writes, given what is observed, what was applied last and what is desired.
func TestApplyMergesFragments(t *testing.T) {
	tests := map[string]struct {
		observed, lastApplied, desired, want string
	}{
		"a desired value overwrites the observed one": {
			observed: `{"spec":{"replicas":3}}`, lastApplied: `{"spec":{"replicas":3}}`, desired: `{"spec":{"replicas":5}}`,
			want: `{"spec":{"replicas":5}}`,
		},
		"a key applied last time but no longer desired is removed": {
			observed: `{"metadata":{"labels":{"a":"1","b":"2"}}}`, lastApplied: `{"metadata":{"labels":{"a":"1","b":"2"}}}`,
			desired: `{"metadata":{"labels":{"a":"1"}}}`,
			want:    `{"metadata":{"labels":{"a":"1"}}}`,
		},
		"what another writer set is kept": {
			observed:    `{"spec":{"replicas":3,"progressDeadlineSeconds":600},"metadata":{"labels":{"x":"y"}}}`,
			lastApplied: `{"spec":{"replicas":3}}`, desired: `{"spec":{"replicas":4},"metadata":{"labels":{"a":"1"}}}`,
			want: `{"spec":{"replicas":4,"progressDeadlineSeconds":600},"metadata":{"labels":{"a":"1","x":"y"}}}`,
		},
		"a list of scalars is replaced": {
			observed: `{"args":["a","b","c"]}`, lastApplied: `{"args":["a","b"]}`, desired: `{"args":["b"]}`,
			want: `{"args":["b"]}`,
		},
		"containers merge by name, keeping what the API server defaulted": {
			observed:    `{"containers":[{"name":"web","image":"v1","terminationMessagePath":"/dev/termination-log"},{"name":"sidecar","image":"s"}]}`,
			lastApplied: `{"containers":[{"name":"web","image":"v1"},{"name":"sidecar","image":"s"}]}`,
			desired:     `{"containers":[{"name":"web","image":"v2"},{"name":"extra","image":"e"}]}`,
			want:        `{"containers":[{"name":"web","image":"v2","terminationMessagePath":"/dev/termination-log"},{"name":"extra","image":"e"}]}`,
		},
		"ports merge by containerPort before name": {
			observed:    `{"ports":[{"name":"http","containerPort":8000,"protocol":"TCP"}]}`,
			lastApplied: `{"ports":[{"name":"http","containerPort":8000}]}`,
			desired:     `{"ports":[{"name":"web","containerPort":8000}]}`,
			want:        `{"ports":[{"name":"web","containerPort":8000,"protocol":"TCP"}]}`,
		},
		"a list of objects without a shared merge key is replaced": {
			observed: `{"rules":[{"host":"a","x":1}]}`, lastApplied: `{"rules":[{"host":"a"}]}`, desired: `{"rules":[{"host":"b"}]}`,
			want: `{"rules":[{"host":"b"}]}`,
		},
		"nothing applied before: desired is laid over the observed object": {
			observed: `{"spec":{"a":1,"b":2}}`, lastApplied: `null`, desired: `{"spec":{"a":3}}`,
			want: `{"spec":{"a":3,"b":2}}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			observed := fragment(t, tc.observed)
			if last := tc.lastApplied; last != "null" {
				observed["metadata"] = merged(observed["metadata"], map[string]any{"annotations": map[string]any{LastAppliedAnnotation: last}})
			}
			before := fragment(t, tc.observed)
			got, err := Apply(observed, fragment(t, tc.desired))
			if err != nil {
				t.Fatal(err)
			}
			meta, _ := got["metadata"].(map[string]any)
			delete(meta, "annotations")
			if len(meta) == 0 {
				delete(got, "metadata")
			}
			if diff := cmp.Diff(fragment(t, tc.want), got); diff != "" {
				t.Errorf("merge (-want +got):\n%s", diff)
			}
			delete(observed, "metadata")
			delete(before, "metadata")
			if diff := cmp.Diff(before, observed); diff != "" {
				t.Errorf("the observed object was changed (-before +after):\n%s", diff)
			}
		})
	}
}

func fragment(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := Decode([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// merged lays b's keys over a, a map or nil.
func merged(a any, b map[string]any) map[string]any {
	out, _ := a.(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
