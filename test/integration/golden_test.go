package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/children"
)

// TestEveryGoldenChildIsAValidKubernetesObject sends every child of every golden sync response
// to the API server as a dry-run create: the golden tests pin what the hook answers, this checks
// that Kubernetes would take it (defaulting, validation and admission, with unknown fields
// refused). CloudNativePG's Clusters are checked against CNPG's own CRD, of the release the
// builder targets (hack/cnpg-crds.sh). Nothing is stored, so one namespace serves every case.
func TestEveryGoldenChildIsAValidKubernetesObject(t *testing.T) {
	k := cluster(t)
	dirs, err := filepath.Glob(repoFile(t, "testdata", "sync", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("testdata/sync holds no golden case")
	}
	w := &warningLog{}
	c := k.client(t, w)
	namespaces := map[string]bool{}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var resp struct {
				Children []map[string]any `json:"children"`
			}
			readJSON(t, filepath.Join(dir, "response.json"), &resp)
			var req struct {
				Parent struct {
					Metadata struct {
						Namespace string `json:"namespace"`
					} `json:"metadata"`
				} `json:"parent"`
			}
			readJSON(t, filepath.Join(dir, "request.json"), &req)

			for _, obj := range resp.Children {
				child := &unstructured.Unstructured{Object: obj}
				if child.GetAPIVersion() == children.CNPGAPIVersion {
					k.requireCRDs(t, testenv.CNPGCRDs(t))
				}
				// Metacontroller puts a child without a namespace in its parent's.
				if child.GetNamespace() == "" {
					child.SetNamespace(req.Parent.Metadata.Namespace)
				}
				if ns := child.GetNamespace(); !namespaces[ns] {
					ensureNamespace(t, c, ns)
					namespaces[ns] = true
				}
				what := child.GetKind() + " " + child.GetName()
				if err := c.Create(t.Context(), child, client.DryRunAll); err != nil {
					t.Errorf("%s: %v", what, err)
				}
				if got := w.take(); len(got) > 0 {
					t.Errorf("%s: the API server warned:\n%s", what, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func readJSON(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
}
