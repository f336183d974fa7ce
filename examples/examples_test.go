package examples_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

var update = flag.Bool("update", false, "rewrite examples/requests/*.json from the examples")

const freshInstallRequest = "requests/fresh-install.json"

// withCNPG is a hook with an own Redis image and CloudNativePG installed.
var withCNPG = platform.DataServices{
	RedisImage: children.DefaultRedisImage,
	CNPG:       &platform.CNPG{OperatorNamespace: "cnpg-system", RetainStorageClass: "retained"},
}

// load reads one example strictly: a misspelt field in an example is a bug in the example.
func load(t *testing.T, path string) *v1beta1.SummonPlatform {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p v1beta1.SummonPlatform
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return &p
}

func examples(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no examples/*.yaml found")
	}
	return paths
}

func TestEveryExampleIsAValidSummonPlatform(t *testing.T) {
	for _, path := range examples(t) {
		t.Run(path, func(t *testing.T) {
			p := load(t, path)
			if p.APIVersion != v1beta1.APIVersion || p.Kind != v1beta1.Kind {
				t.Errorf("apiVersion/kind = %s/%s, want %s/%s", p.APIVersion, p.Kind, v1beta1.APIVersion, v1beta1.Kind)
			}
			if p.Namespace == "" {
				t.Error("an example must name its namespace")
			}
			if errs := v1beta1.Validate(p); len(errs) > 0 {
				t.Errorf("Validate: %v", errs.ToAggregate())
			}
		})
	}
}

// A fresh install of every example, with its input Secrets present, starts without an error: the
// examples are something a user can apply as they are.
func TestEveryExampleInstallsWithoutAnError(t *testing.T) {
	key, err := credentials.NewDeriver([]byte("examples-test-master-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	// As the hook runs in production: with a credential key, its PostgreSQL provider on (this
	// sync has made no call yet) and CloudNativePG installed (the manifests/cnpg component).
	env := platform.Env{
		Now:         time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
		Credentials: key,
		Outside:     platform.Outside{Postgres: true},
		Data:        withCNPG,
	}
	for _, path := range examples(t) {
		t.Run(path, func(t *testing.T) {
			p := load(t, path)
			inputs := map[string]map[string][]byte{}
			for _, name := range p.Spec.Secrets {
				inputs[name] = map[string][]byte{"EXAMPLE_SETTING": []byte("x")}
			}
			req := freshInstall(t, path, inputs, withCNPG)
			resp := platform.Sync(req, env)
			st, ok := resp.Status.(v1beta1.Status)
			if !ok {
				t.Fatalf("status is a %T", resp.Status)
			}
			if st.Phase == v1beta1.PhaseError {
				t.Errorf("phase Error: %s", st.Message)
			}
			if len(resp.Children) == 0 {
				t.Error("a fresh install creates no child")
			}
		})
	}
}

// The sample request of the README's "Run it" is a fresh install of examples/qa.yaml, as Metacontroller
// would send it: the parent as the API server stores it, every declared child group empty, and
// the input Secret that the customize hook relates.
func TestFreshInstallRequestIsUpToDate(t *testing.T) {
	req := freshInstall(t, "qa.yaml", map[string]map[string][]byte{
		"car1-qa-inputs": {"DATABASE_URL": []byte("postgres://car1_qa:change-me@postgres.summon-qa:5432/car1_qa")},
	}, platform.DataServices{})
	controller, err := os.ReadFile("../manifests/compositecontroller.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if req.Controller, err = yaml.YAMLToJSON(controller); err != nil {
		t.Fatal(err)
	}
	// Metacontroller always sends finalizing; SyncRequest leaves a false one out.
	wire := struct {
		*metacontroller.SyncRequest
		Finalizing bool `json:"finalizing"`
	}{SyncRequest: req}
	want, err := json.MarshalIndent(wire, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(freshInstallRequest, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(freshInstallRequest)
	if err != nil {
		t.Fatalf("%v (go test ./examples -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s is stale; go test ./examples -update rewrites it (-want +got):\n%s", freshInstallRequest, diff)
	}
}

// freshInstall is the sync request for the example at path when it has no child yet, with the
// given input Secrets related. The parent is the example as the API server stores it: what the
// user wrote, plus the metadata the server adds.
func freshInstall(t *testing.T, path string, inputs map[string]map[string][]byte, data platform.DataServices) *metacontroller.SyncRequest {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var parent map[string]any
	if err := json.Unmarshal(j, &parent); err != nil {
		t.Fatal(err)
	}
	meta, _ := parent["metadata"].(map[string]any)
	if meta == nil {
		t.Fatalf("%s has no metadata", path)
	}
	meta["uid"] = "6f1c2a9e-0d4b-4c7e-9a51-3b2f8e7d1c40"
	meta["generation"] = 1
	meta["resourceVersion"] = "1000"
	meta["creationTimestamp"] = "2026-11-27T09:00:00Z"
	namespace, _ := meta["namespace"].(string)

	req := map[string]any{"parent": parent}
	groups := map[string]any{}
	for _, g := range platform.DeclaredGroups(data) {
		groups[g] = map[string]any{}
	}
	req["children"] = groups
	secrets := map[string]any{}
	for name, data := range inputs {
		secrets[namespace+"/"+name] = map[string]any{
			"apiVersion": "v1",
			"kind":       "Secret",
			"metadata": map[string]any{"name": name, "namespace": namespace, "uid": "0b6e6a55-2d1c-4f0e-8c39-5e1f2a3b4c5d", "resourceVersion": "900",
				// Marked as the examples' comments say: an input of this instance.
				"labels":      map[string]any{v1beta1.LabelInput: "true"},
				"annotations": map[string]any{v1beta1.AnnotationInputFor: meta["name"]}},
			"type": "Opaque",
			"data": data, // []byte encodes as base64, as a Secret's data is
		}
	}
	related := map[string]any{}
	if len(secrets) > 0 {
		related[metacontroller.GroupKey("Secret", "v1")] = secrets
	}
	req["related"] = related

	// Through JSON, as on the wire: the core must see what the hook server decodes.
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out metacontroller.SyncRequest
	if err := metacontroller.Decode(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}
