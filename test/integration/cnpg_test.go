package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// cnpgOverlay writes the kustomization a platform team writes to install Summon with the cnpg
// component, and returns its directory.
func cnpgOverlay(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// Kustomize takes only relative paths to other kustomizations.
	rel := func(target string) string {
		r, err := filepath.Rel(dir, target)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s]\ncomponents: [%s]\n",
		rel(repoFile(t, "manifests")), rel(repoFile(t, "manifests", "cnpg")))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// built runs kubectl's kustomize on a directory and returns the objects, by kind.
func (k kube) built(t *testing.T, kubeconfig, dir string) map[string]*unstructured.Unstructured {
	t.Helper()
	out, stderr, err := k.kubectl(t, kubeconfig, nil, "kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
	}
	path := filepath.Join(t.TempDir(), "built.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	byKind := map[string]*unstructured.Unstructured{}
	for _, obj := range readObjects(t, path) {
		byKind[obj.GetKind()] = obj
	}
	return byKind
}

func TestTheCNPGComponentAppliesWithAServerDryRun(t *testing.T) {
	k := cluster(t)
	k.requireCRDs(t, metacontrollerCRDs(t))
	kubeconfig := k.kubeconfig(t)
	if _, stderr, err := k.kubectl(t, kubeconfig, nil, "apply", "-f", "manifests/namespace.yaml"); err != nil {
		t.Fatalf("kubectl apply -f manifests/namespace.yaml: %v\n%s", err, stderr)
	}
	overlay := cnpgOverlay(t)

	objs := k.built(t, kubeconfig, overlay)
	children, _, _ := unstructured.NestedSlice(objs["CompositeController"].Object, "spec", "childResources")
	if !slices.ContainsFunc(children, func(c any) bool {
		m := c.(map[string]any)
		method, _, _ := unstructured.NestedString(m, "updateStrategy", "method")
		return m["apiVersion"] == "postgresql.cnpg.io/v1" && m["resource"] == "clusters" && method == "InPlace"
	}) {
		t.Errorf("the built CompositeController does not declare CNPG's clusters InPlace: %v", children)
	}
	containers, _, _ := unstructured.NestedSlice(objs["Deployment"].Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	if !slices.Contains(args, "--cnpg-namespace=cnpg-system") {
		t.Errorf("the built Deployment does not start the hook with --cnpg-namespace: %q", args)
	}

	stdout, stderr, err := k.kubectl(t, kubeconfig, nil, "apply", "-k", overlay, "--dry-run=server")
	t.Logf("kubectl apply -k <manifests with the cnpg component> --dry-run=server:\n%s", stdout)
	if err != nil {
		t.Fatalf("kubectl apply -k with the cnpg component --dry-run=server: %v\n%s", err, stderr)
	}
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "Warning:") && !strings.Contains(line, "last-applied-configuration annotation") {
			t.Errorf("kubectl warned: %s", line)
		}
	}
}

// TestMetacontrollerRunsTheCNPGComponentOnlyWithCNPGsCRDs runs the real Metacontroller with the
// CompositeController the cnpg component builds. Without CNPG's CRD it runs no controller at all:
// no parent is synced, not even one that needs nothing of CNPG, and the CompositeController's
// events say why. Once the CRD is there, it starts, and a QA instance with its own Redis and
// Postgres and no input Secret goes to Ready. The test plays CNPG's operator and the job and
// workload controllers through status subresources.
func TestMetacontrollerRunsTheCNPGComponentOnlyWithCNPGsCRDs(t *testing.T) {
	bin := testenv.Metacontroller(t)
	k := cluster(t)
	k.requireCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	k.requireCRDs(t, metacontrollerCRDs(t))
	cnpgCRDs := testenv.CNPGCRDs(t)
	k.uninstallCRDs(t, cnpgCRDs)
	c := k.client(t, nil)
	kubeconfig := k.kubeconfig(t)
	deadline := time.Now().Add(e2eDeadline)
	clock := newStages(t)

	hooks := startHookServer(t, "--cnpg-namespace=cnpg-system")
	cc := k.built(t, kubeconfig, cnpgOverlay(t))["CompositeController"]
	installThisCompositeController(t, c, cc, hooks, nil)
	mc := startMetacontroller(t, bin, kubeconfig)
	clock.done("hook server (--cnpg-namespace), the cnpg CompositeController and Metacontroller started, no CNPG CRD")

	namespace := fmt.Sprintf("summon-cnpg-e2e-%d", e2eRuns.Add(1))
	ensureNamespace(t, c, namespace)
	qa := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": "car1-qa", "namespace": namespace},
		"spec": map[string]any{
			"version": "108912-6e2f8b7-release-2019-8", "hostname": "car1-qa.example.com",
			"redis": map[string]any{}, "database": map[string]any{"inCluster": map[string]any{}}, "deletionPolicy": "Delete",
		},
	}}
	plain := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": "car2-qa", "namespace": namespace},
		"spec":     map[string]any{"version": "108912-6e2f8b7-release-2019-8"},
	}}
	for _, p := range []*unstructured.Unstructured{qa, plain} {
		if err := c.Create(t.Context(), p); err != nil {
			t.Fatalf("creating SummonPlatform %s: %v", p.GetName(), err)
		}
	}
	e := &e2e{t: t, c: c, deadline: deadline, mc: mc, key: client.ObjectKeyFromObject(qa), names: children.NamesFor(qa.GetName())}

	// Without the CRD: Metacontroller says it can't create the controller, and syncs no parent.
	var why string
	e.eventually("an event saying Metacontroller can't start the summon CompositeController", func(ctx context.Context) (bool, string) {
		var events corev1.EventList
		if err := c.List(ctx, &events); err != nil {
			return false, err.Error()
		}
		for _, ev := range events.Items {
			if ev.InvolvedObject.Kind == "CompositeController" && ev.InvolvedObject.Name == "summon" && strings.Contains(ev.Message, "Cannot create new controller") {
				why = ev.Reason + ": " + ev.Message
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none about the CompositeController yet", len(events.Items))
	})
	t.Logf("without CNPG's CRD, Metacontroller says: %s", why)
	for _, p := range []*unstructured.Unstructured{qa, plain} {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(p.GroupVersionKind())
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(p), got); err != nil {
			t.Fatal(err)
		}
		if st, ok := got.Object["status"]; ok || len(got.GetFinalizers()) > 0 {
			t.Errorf("SummonPlatform %s was synced without CNPG's CRD: status %v, finalizers %v", p.GetName(), st, got.GetFinalizers())
		}
	}
	var secrets corev1.SecretList
	if err := c.List(t.Context(), &secrets, client.InNamespace(namespace)); err != nil || len(secrets.Items) > 0 {
		t.Errorf("children were created without CNPG's CRD: %d Secrets (%v)", len(secrets.Items), err)
	}
	clock.done("without CNPG's CRD: no controller, no parent synced")

	k.requireCRDs(t, cnpgCRDs)
	clusterKey := client.ObjectKey{Namespace: namespace, Name: e.names.Of(children.Postgres)}
	e.eventually("the own Postgres's Cluster, and the gate waiting for it", func(ctx context.Context) (bool, string) {
		if err := c.Get(ctx, clusterKey, postgresCluster()); err != nil {
			return false, fmt.Sprintf("Cluster %s: %v; phase %s", clusterKey.Name, err, e.phase(ctx))
		}
		phase := e.phase(ctx)
		return strings.Contains(phase, "waiting for the Postgres cluster"), "phase " + phase
	})
	var jobs batchv1.JobList
	if err := c.List(t.Context(), &jobs, e.owned()...); err != nil || len(jobs.Items) > 0 {
		t.Errorf("a migration Job before the Postgres is ready: %d (%v)", len(jobs.Items), err)
	}
	clock.done("CNPG's CRD installed: the controller started; Cluster created, the migration waits for it")

	markPostgresReady(t, c, clusterKey)
	job := e.waitForMigrationJob("108912-6e2f8b7-release-2019-8")
	e.markJobSucceeded(job)
	e.waitForReady("108912-6e2f8b7-release-2019-8")
	// The test created no Secret at all: every one in the namespace is a child.
	clock.done("Postgres marked ready, migration marked succeeded, workloads and Redis rolled out: Ready, with no input Secret")

	if err := c.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: plain.GetName()}, plain); err != nil {
		t.Fatal(err)
	}
	if _, ok := plain.Object["status"]; !ok {
		t.Errorf("SummonPlatform %s was not synced once the controller ran", plain.GetName())
	}

	// Deleted while Metacontroller runs, so that no parent is left for the next test's.
	for _, p := range []*unstructured.Unstructured{qa, plain} {
		if err := c.Delete(t.Context(), p); err != nil {
			t.Fatalf("deleting SummonPlatform %s: %v", p.GetName(), err)
		}
		e.eventually("SummonPlatform "+p.GetName()+" to be gone", func(ctx context.Context) (bool, string) {
			err := c.Get(ctx, client.ObjectKeyFromObject(p), p.DeepCopy())
			return apierrors.IsNotFound(err), fmt.Sprintf("get: %v", err)
		})
	}
	clock.done("both SummonPlatforms deleted: finalized")
}

func postgresCluster() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(children.CNPGAPIVersion)
	u.SetKind(children.CNPGClusterKind)
	return u
}

// markPostgresReady writes what CloudNativePG's operator (v1.27) writes once the Cluster's one
// instance runs.
func markPostgresReady(t *testing.T, c client.Client, key client.ObjectKey) {
	t.Helper()
	u := postgresCluster()
	if err := c.Get(t.Context(), key, u); err != nil {
		t.Fatal(err)
	}
	var status map[string]any
	if err := yaml.Unmarshal([]byte(fmt.Sprintf(`
phase: Cluster in healthy state
instances: 1
readyInstances: 1
conditions:
  - {type: Ready, status: "True", reason: ClusterIsReady, message: Cluster is Ready, lastTransitionTime: %q}
`, time.Now().UTC().Format(time.RFC3339))), &status); err != nil {
		t.Fatal(err)
	}
	u.Object["status"] = status
	if err := c.Status().Update(t.Context(), u); err != nil && !apierrors.IsConflict(err) {
		t.Fatalf("marking Cluster %s ready: %v", key.Name, err)
	}
}
