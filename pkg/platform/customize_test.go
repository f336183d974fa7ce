package platform

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

func TestCustomize(t *testing.T) {
	secrets := func(names ...string) []metacontroller.RelatedResourceRule {
		return []metacontroller.RelatedResourceRule{{APIVersion: "v1", Resource: "secrets", Namespace: "summon-qa", Names: names}}
	}
	none := []metacontroller.RelatedResourceRule{}
	tests := map[string]struct {
		parent string
		want   []metacontroller.RelatedResourceRule
	}{
		"input secrets are related by name in the parent's namespace, in order": {
			parent: parentJSON(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) { s.Secrets = []string{"inputs-b", "inputs-a"} }))),
			want:   secrets("inputs-b", "inputs-a"),
		},
		"the database URL secret joins the input secrets in one rule": {
			parent: parentJSON(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
				s.Secrets = []string{"inputs"}
				s.Database.URLSecret = &v1beta1.SecretKeyRef{Name: "database", Key: "url"}
			}))),
			want: secrets("inputs", "database"),
		},
		"the redis URL secret joins them too": {
			parent: parentJSON(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
				s.Secrets = []string{"inputs"}
				s.Database.URLSecret = &v1beta1.SecretKeyRef{Name: "database", Key: "url"}
				s.Redis = &v1beta1.Redis{URLSecret: &v1beta1.SecretKeyRef{Name: "elasticache", Key: "url"}}
			}))),
			want: secrets("inputs", "database", "elasticache"),
		},
		"an own redis asks for no secret": {
			parent: parentJSON(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) { s.Redis = &v1beta1.Redis{} }))),
			want:   none,
		},
		"a secret named twice is asked for once": {
			parent: parentJSON(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
				s.Secrets = []string{"inputs", "inputs"}
				s.Database.URLSecret = &v1beta1.SecretKeyRef{Name: "inputs", Key: "DATABASE_URL"}
			}))),
			want: secrets("inputs"),
		},
		"no input secret asks for nothing, not for every secret of the namespace": {
			parent: parentJSON(t, platform("car1-qa")),
			want:   none,
		},
		"an unreadable spec asks for nothing, so that sync can report it": {
			parent: `{"metadata":{"name":"car1-qa","namespace":"summon-qa"},"spec":{"version":"v1","secrets":"inputs","colour":"red"}}`,
			want:   none,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Customize(json.RawMessage(tc.parent))
			if err != nil {
				t.Fatalf("Customize: %v", err)
			}
			if diff := cmp.Diff(metacontroller.CustomizeResponse{RelatedResources: tc.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCustomizeRefuses(t *testing.T) {
	tests := map[string]struct {
		parent  string
		wantErr string
	}{
		"a parent without a namespace, whose rule would match secrets in every namespace": {
			parent:  `{"metadata":{"name":"car1-qa"},"spec":{"version":"v1","secrets":["inputs"]}}`,
			wantErr: "no metadata.namespace",
		},
		"a parent without a name": {
			parent:  `{"metadata":{"namespace":"summon-qa"},"spec":{"version":"v1"}}`,
			wantErr: "no metadata.name",
		},
		"a parent that is not an object": {
			parent:  `"car1-qa"`,
			wantErr: "reading the parent",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Customize(json.RawMessage(tc.parent))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if got.RelatedResources == nil || len(got.RelatedResources) != 0 {
				t.Errorf("relatedResources = %#v, want an empty list", got.RelatedResources)
			}
		})
	}
}

func parentJSON(t *testing.T, p *v1beta1.SummonPlatform) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
