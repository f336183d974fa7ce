package integration

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/forklift-dev/summon/internal/server"
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
	// The install order docs/install.md gives: Metacontroller (its CRDs here) first.
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

// TestTheTLSComponentTurnsOnMutualTLSAndItsObjectsApply builds the install with manifests/tls/ as
// a user's kustomization would, checks that the hook and Metacontroller agree on every file and
// Secret, and dry-runs every object the test API server knows (cert-manager's are checked by
// shape: its CRDs are not installed here).
func TestTheTLSComponentTurnsOnMutualTLSAndItsObjectsApply(t *testing.T) {
	k := cluster(t)
	k.requireCRDs(t, metacontrollerCRDs(t))
	kubeconfig := k.kubeconfig(t)
	dir := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(dir, repoFile(t, p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	kustomization := fmt.Sprintf("resources: [%s]\ncomponents: [%s]\n", rel("manifests"), rel("manifests/tls"))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := k.kubectl(t, kubeconfig, nil, "kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize with the tls component: %v\n%s", err, stderr)
	}
	built := filepath.Join(dir, "built.yaml")
	if err := os.WriteFile(built, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]*unstructured.Unstructured{}
	for _, obj := range readObjects(t, built) {
		byKind[obj.GetKind()] = append(byKind[obj.GetKind()], obj)
	}

	// The hook serves the certificate of a Certificate and checks clients against its CA.
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(byKind["Deployment"][0].Object, &d); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.ParseConfig(d.Spec.Template.Spec.Containers[0].Args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("the Deployment's args with TLS: %v", err)
	}
	certSecrets := map[string][]any{} // secretName -> usages
	for _, c := range byKind["Certificate"] {
		name, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
		usages, _, _ := unstructured.NestedSlice(c.Object, "spec", "usages")
		certSecrets[name] = usages
	}
	serving := secretOfFile(t, d, cfg.TLSCertFile)
	if secretOfFile(t, d, cfg.TLSKeyFile) != serving || secretOfFile(t, d, cfg.TLSClientCAFile) != serving {
		t.Errorf("the certificate, key and client CA must come from one cert-manager Secret")
	}
	if _, ok := certSecrets[serving]; !ok || !slices.Contains(certSecrets[serving], any("server auth")) {
		t.Errorf("the hook serves the Secret %s, which no Certificate for server auth writes (%v)", serving, certSecrets)
	}

	// Metacontroller calls over HTTPS, trusts that CA and presents a client certificate.
	cc := byKind["CompositeController"][0]
	hooks, _, _ := unstructured.NestedMap(cc.Object, "spec", "hooks")
	var svc corev1.Service
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(byKind["Service"][0].Object, &svc); err != nil {
		t.Fatal(err)
	}
	for name := range hooks {
		webhook, _, _ := unstructured.NestedMap(hooks, name, "webhook")
		protocol, _, _ := unstructured.NestedString(webhook, "service", "protocol")
		// YAML numbers decode as float64.
		portValue, _, _ := unstructured.NestedFieldNoCopy(webhook, "service", "port")
		port, _ := portValue.(float64)
		ca, _, _ := unstructured.NestedString(webhook, "caBundle", "secretRef", "name")
		client, _, _ := unstructured.NestedString(webhook, "clientTLS", "secretRef", "name")
		if protocol != "https" || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			return float64(p.Port) == port && p.TargetPort.String() == "http"
		}) {
			t.Errorf("hook %s calls %s on port %v, want https on a Service port to the hooks' container port", name, protocol, port)
		}
		if ca != serving {
			t.Errorf("hook %s trusts the CA of %q, want the hook's %q", name, ca, serving)
		}
		if usages, ok := certSecrets[client]; !ok || !slices.Contains(usages, any("client auth")) {
			t.Errorf("hook %s presents the Secret %q, which no Certificate for client auth writes", name, client)
		}
		if _, ok := webhook["authorization"]; !ok {
			t.Errorf("hook %s dropped the bearer token", name)
		}
	}

	if _, stderr, err := k.kubectl(t, kubeconfig, nil, "apply", "-f", "manifests/namespace.yaml"); err != nil {
		t.Fatalf("kubectl apply -f manifests/namespace.yaml: %v\n%s", err, stderr)
	}
	c := k.client(t, nil)
	for kind, objs := range byKind {
		if kind == "Certificate" || kind == "Issuer" {
			continue
		}
		for _, obj := range objs {
			if err := c.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(obj), client.ForceOwnership, client.FieldOwner("summon-test"), client.DryRunAll); err != nil {
				t.Errorf("applying %s %s with the tls component: %v", kind, obj.GetName(), err)
			}
		}
	}
}

// secretOfFile names the Secret volume a file of the hook's container is read from.
func secretOfFile(t *testing.T, d appsv1.Deployment, file string) string {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	for _, m := range c.VolumeMounts {
		if filepath.Dir(file) != m.MountPath {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
	}
	t.Fatalf("%s is not read from a Secret volume", file)
	return ""
}
