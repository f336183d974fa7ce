package integration

import (
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestTheCompositeControllerIsAcceptedByMetacontrollersSchema(t *testing.T) {
	k := cluster(t)
	k.requireCRDs(t, metacontrollerCRDs(t))
	w := &warningLog{}
	c := k.client(t, w)
	for _, obj := range readObjects(t, repoFile(t, "manifests", "compositecontroller.yaml")) {
		// Unknown fields are refused (strict field validation), so a misspelt field fails here
		// instead of being pruned without a word.
		if err := c.Create(t.Context(), obj, client.DryRunAll); err != nil {
			t.Errorf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	if got := w.take(); len(got) > 0 {
		t.Errorf("the API server warned about manifests/compositecontroller.yaml:\n%s", strings.Join(got, "\n"))
	}
}

func TestTheKustomizationAppliesWithAServerDryRun(t *testing.T) {
	k := cluster(t)
	// The install order the README gives: Metacontroller (its CRDs here) first.
	k.requireCRDs(t, metacontrollerCRDs(t))
	// A dry run creates nothing, so the hook's namespace, though part of the kustomization, would
	// not exist for the objects in it. Create it for real from the same file, which also puts the
	// restricted Pod Security Standard on it: the hook's Deployment must pass it without a warning.
	kubeconfig := k.kubeconfig(t)
	if _, stderr, err := k.kubectl(t, kubeconfig, nil, "apply", "-f", "manifests/namespace.yaml"); err != nil {
		t.Fatalf("kubectl apply -f manifests/namespace.yaml: %v\n%s", err, stderr)
	}

	stdout, stderr, err := k.kubectl(t, kubeconfig, nil, "apply", "-k", "manifests/", "--dry-run=server")
	t.Logf("kubectl apply -k manifests/ --dry-run=server:\n%s", stdout)
	if err != nil {
		t.Fatalf("kubectl apply -k manifests/ --dry-run=server: %v\n%s", err, stderr)
	}
	var warnings []string
	for _, line := range strings.Split(stderr, "\n") {
		// kubectl's own note on objects another test created without it (the CRD) says nothing
		// about the manifests.
		if strings.HasPrefix(line, "Warning:") && !strings.Contains(line, "last-applied-configuration annotation") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) > 0 {
		t.Errorf("kubectl apply -k manifests/ --dry-run=server warned:\n%s", strings.Join(warnings, "\n"))
	}
}
