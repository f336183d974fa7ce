package crds_test

import (
	"fmt"
	"os"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/forklift-dev/summon/internal/testing/crds"
	"github.com/forklift-dev/summon/internal/testing/testenv/controlplane"
)

func TestMain(m *testing.M) {
	os.Exit(controlplane.Main(m))
}

// TestAnInstalledCRDIsMappedTheMomentInstallReturns is the race CI lost on a loaded machine: a
// client whose REST mapper has already done its first discovery asks for a kind right after its
// CRD was installed. Each round installs a CRD of a group never seen before, so no cache can
// help; with only Established waited for, the mapping fails now and then under load.
func TestAnInstalledCRDIsMappedTheMomentInstallReturns(t *testing.T) {
	cfg := controlplane.Get(t).Config
	longLived := mapper(t, cfg)
	// Its first discovery happens here, before any of the CRDs exist.
	if _, err := longLived.RESTMapping(schema.GroupKind{Kind: "Namespace"}, "v1"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		crd := raceCRD(i)
		gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
		if err := crds.Install(t.Context(), cfg, []*apiextensionsv1.CustomResourceDefinition{crd}); err != nil {
			t.Fatal(err)
		}
		if _, err := longLived.RESTMapping(gk, "v1"); err != nil {
			t.Errorf("round %d: a client built before the install: %v", i, err)
		}
		if _, err := mapper(t, cfg).RESTMapping(gk, "v1"); err != nil {
			t.Errorf("round %d: a client built after the install: %v", i, err)
		}
		if err := crds.Uninstall(t.Context(), cfg, []*apiextensionsv1.CustomResourceDefinition{crd}); err != nil {
			t.Fatal(err)
		}
		if m, err := mapper(t, cfg).RESTMapping(gk, "v1"); err == nil {
			t.Errorf("round %d: after the uninstall a new client still maps %s to %s", i, gk, m.Resource)
		}
	}
}

func mapper(t *testing.T, cfg *rest.Config) meta.RESTMapper {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func raceCRD(i int) *apiextensionsv1.CustomResourceDefinition {
	group := fmt.Sprintf("race%d.summon.test", i)
	kind := fmt.Sprintf("Race%d", i)
	plural := fmt.Sprintf("race%ds", i)
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: fmt.Sprintf("race%d", i)},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true),
				}},
			}},
		},
	}
}
