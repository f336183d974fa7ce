package standin

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestThreeWayMerge(t *testing.T) {
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
		"a value whose type changed is replaced": {
			observed: `{"v":{"a":1}}`, lastApplied: `{"v":{"a":1}}`, desired: `{"v":"flat"}`,
			want: `{"v":"flat"}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			observed := decode(t, tc.observed)
			before := decode(t, tc.observed)
			got := threeWayMerge(observed, decode(t, tc.lastApplied), decode(t, tc.desired))
			if diff := cmp.Diff(decode(t, tc.want), got); diff != "" {
				t.Errorf("merge (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, observed); diff != "" {
				t.Errorf("the observed object was changed (-before +after):\n%s", diff)
			}
		})
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
