package integration

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

func TestTheSummonPlatformCRDIsAcceptedAndEstablished(t *testing.T) {
	k := cluster(t)
	got := k.installCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	if got.err != nil {
		t.Fatal(got.err)
	}
	if len(got.warnings) > 0 {
		t.Errorf("the API server warned about manifests/crd.yaml:\n%s", strings.Join(got.warnings, "\n"))
	}

	var crd apiextensionsv1.CustomResourceDefinition
	if err := k.client(t, nil).Get(t.Context(), client.ObjectKey{Name: v1beta1.Resource + "." + v1beta1.Group}, &crd); err != nil {
		t.Fatal(err)
	}
	want := map[apiextensionsv1.CustomResourceDefinitionConditionType]apiextensionsv1.ConditionStatus{
		apiextensionsv1.Established:   apiextensionsv1.ConditionTrue,
		apiextensionsv1.NamesAccepted: apiextensionsv1.ConditionTrue,
	}
	gotConditions := map[apiextensionsv1.CustomResourceDefinitionConditionType]apiextensionsv1.ConditionStatus{}
	for typ := range want {
		gotConditions[typ] = crdCondition(&crd, typ)
	}
	if diff := cmp.Diff(want, gotConditions); diff != "" {
		t.Errorf("CRD conditions (-want +got):\n%s", diff)
	}
	// Metacontroller silently ignores a parent resource without the status subresource.
	for _, v := range crd.Spec.Versions {
		if v.Name == v1beta1.Version && (v.Subresources == nil || v.Subresources.Status == nil) {
			t.Errorf("version %s as stored has no status subresource", v.Name)
		}
	}
}

// validPlatform is a SummonPlatform both the API server and v1beta1.Validate accept; each invalid
// case below breaks it in one place.
func validPlatform() map[string]any {
	return map[string]any{
		"apiVersion": v1beta1.APIVersion,
		"kind":       v1beta1.Kind,
		"metadata":   map[string]any{"name": "car1-qa"},
		"spec": map[string]any{
			"version":  "108912-6e2f8b7-release-2019-8",
			"hostname": "car1-qa.example.com",
		},
	}
}

func TestInvalidSummonPlatformsAreRefused(t *testing.T) {
	k := cluster(t)
	k.requireCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	c := k.client(t, nil)
	const namespace = "invalid-platforms"
	ensureNamespace(t, c, namespace)

	// Every case is a dry run: one that is wrongly accepted leaves nothing behind.
	create := func(obj map[string]any) error {
		u := &unstructured.Unstructured{Object: obj}
		u.SetNamespace(namespace)
		return c.Create(t.Context(), u, client.DryRunAll)
	}
	if err := create(validPlatform()); err != nil {
		t.Fatalf("the API server refuses the valid platform that every case starts from: %v", err)
	}
	if errs := v1beta1.Validate(decodePlatform(t, validPlatform())); len(errs) > 0 {
		t.Fatalf("v1beta1.Validate refuses the valid platform that every case starts from: %v", errs)
	}

	tests := map[string]struct {
		edit func(p map[string]any)
		// want is part of the API server's message.
		want string
		// pureField is where v1beta1.Validate reports the same mistake (the start of its path).
		pureField string
		// decodeRefuses marks a case that only the schema refuses as a value: v1beta1.Validate
		// never sees it, because decoding the spec (as the sync hook does before validating)
		// refuses it first, and the hook reports that as an invalid spec.
		decodeRefuses bool
	}{
		"a version that is not an image tag": {
			edit:      setSpec("version", "release/2019-8"),
			want:      "spec.version in body should match",
			pureField: "spec.version",
		},
		"a version over 63 characters": {
			edit:      setSpec("version", strings.Repeat("1", 64)),
			want:      "spec.version: Too long",
			pureField: "spec.version",
		},
		"two celery beats": {
			edit:      setSpec("replicas", map[string]any{"celeryBeat": int64(2)}),
			want:      "spec.replicas.celeryBeat in body should be less than or equal to 1",
			pureField: "spec.replicas.celeryBeat",
		},
		"both a shared database and a database URL secret": {
			edit: setSpec("database", map[string]any{
				"shared":    map[string]any{"host": "postgres.example.com"},
				"urlSecret": map[string]any{"name": "car1-qa-db", "key": "DATABASE_URL"},
			}),
			want:      "set one of shared, urlSecret and inCluster, not more",
			pureField: "spec.database",
		},
		"an own Postgres on a StorageClass of its own under deletionPolicy Retain": {
			edit:      setSpec("database", map[string]any{"inCluster": map[string]any{"storageClass": "fast"}}),
			want:      "storageClass only with deletionPolicy Delete",
			pureField: "spec.database.inCluster.storageClass",
		},
		"a Redis cache of 8Mi": {
			edit:      setSpec("redis", map[string]any{"cacheMemory": "8Mi"}),
			want:      "spec.redis.cacheMemory: Invalid value",
			pureField: "spec.redis.cacheMemory",
		},
		"a config value that is a list": {
			edit:          setSpec("config", map[string]any{"ALLOWED_HOSTS": []any{"a.example.com", "b.example.com"}}),
			want:          "spec.config.ALLOWED_HOSTS: Too many",
			decodeRefuses: true,
		},
		"an upper case name": {
			edit:      setName("Car1-QA"),
			want:      "metadata.name",
			pureField: "metadata.name",
		},
		"a name of 64 characters": {
			edit:      setName(strings.Repeat("a", 64)),
			want:      "must be a DNS-1035 label",
			pureField: "metadata.name",
		},
		"aliases without a hostname": {
			edit: func(p map[string]any) {
				spec := p["spec"].(map[string]any)
				delete(spec, "hostname")
				spec["aliases"] = []any{"www.car1-qa.example.com"}
			},
			want:      "aliases need a hostname",
			pureField: "spec.hostname",
		},
		"an alias equal to the hostname": {
			edit:      setSpec("aliases", []any{"car1-qa.example.com"}),
			want:      "an alias must not repeat spec.hostname",
			pureField: "spec.aliases",
		},
		"maxReplicas below minReplicas": {
			edit:      setSpec("autoscaling", map[string]any{"web": map[string]any{"minReplicas": int64(3), "maxReplicas": int64(2)}}),
			want:      "maxReplicas must be at least minReplicas",
			pureField: "spec.autoscaling.web.maxReplicas",
		},
		"an unknown deletion policy": {
			edit:      setSpec("deletionPolicy", "Orphan"),
			want:      "spec.deletionPolicy: Unsupported value",
			pureField: "spec.deletionPolicy",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := validPlatform()
			tc.edit(p)

			err := create(p)
			if err == nil {
				t.Errorf("the API server accepted it, want a refusal containing %q", tc.want)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("the API server refused it with\n%v\nwant a message containing %q", err, tc.want)
			}

			if tc.decodeRefuses {
				if err := decodeStrict(p, &v1beta1.SummonPlatform{}); err == nil {
					t.Error("decoding it into v1beta1.SummonPlatform succeeded, want an error")
				}
				return
			}
			errs := v1beta1.Validate(decodePlatform(t, p))
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
				if strings.HasPrefix(e.Field, tc.pureField) {
					return
				}
			}
			t.Errorf("v1beta1.Validate reported %v at %q, want an error at %s", errs, fields, tc.pureField)
		})
	}
}

func setSpec(field string, value any) func(map[string]any) {
	return func(p map[string]any) { p["spec"].(map[string]any)[field] = value }
}

func setName(name string) func(map[string]any) {
	return func(p map[string]any) { p["metadata"].(map[string]any)["name"] = name }
}

// decodePlatform reads a SummonPlatform as the sync hook does, refusing unknown fields (so a
// misspelt field in a test case can't pass as a refusal).
func decodePlatform(t *testing.T, obj map[string]any) *v1beta1.SummonPlatform {
	t.Helper()
	var p v1beta1.SummonPlatform
	if err := decodeStrict(obj, &p); err != nil {
		t.Fatalf("decoding into v1beta1.SummonPlatform: %v", err)
	}
	return &p
}

func decodeStrict(obj map[string]any, into any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

func crdCondition(crd *apiextensionsv1.CustomResourceDefinition, typ apiextensionsv1.CustomResourceDefinitionConditionType) apiextensionsv1.ConditionStatus {
	for _, c := range crd.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}
