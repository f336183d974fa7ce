package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/internal/testing/testcluster"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// giveUp is where a wait for the platform gives up; it says nothing about how fast Summon is.
const giveUp = 4 * time.Minute

var platformGVR = schema.GroupVersionResource{Group: "summon.forklift.dev", Version: "v1beta1", Resource: "summonplatforms"}

// instance is one SummonPlatform under test.
type instance struct {
	t    *testing.T
	cl   clients
	ns   string
	name string
}

// platformSpec is the spec of the instances under test: web at webReplicas, one pod of every
// other component, one beat, an input Secret for DATABASE_URL.
func platformSpec(version string, webReplicas int) map[string]any {
	return map[string]any{
		"version":  version,
		"image":    "registry.example.com/summon-platform",
		"hostname": "car1.example.com",
		"config":   map[string]any{"DEBUG": false},
		"secrets":  []any{"car1-inputs"},
		"replicas": map[string]any{
			"web": int64(webReplicas), "daphne": int64(1), "channelWorker": int64(1),
			"celeryd": int64(1), "static": int64(1), "celeryBeat": int64(1),
		},
		"migrations":     map[string]any{"backoffLimit": int64(1)},
		"deletionPolicy": "Delete",
	}
}

// apply creates the input Secret and the SummonPlatform, and deletes the platform when the test
// ends (while its controller still runs, so that finalize is called).
func apply(t *testing.T, cl clients, ns string, spec map[string]any) *instance {
	t.Helper()
	in := &instance{t: t, cl: cl, ns: ns, name: "car1"}
	// An input handed to car1, as its owner hands it over (docs/gitops.md).
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "car1-inputs", Namespace: ns,
			Labels:      map[string]string{v1beta1.LabelInput: "true"},
			Annotations: map[string]string{v1beta1.AnnotationInputFor: in.name}},
		StringData: map[string]string{"DATABASE_URL": "postgres://car1:change-me@postgres.example.internal:5432/car1"},
	}
	if _, err := cl.kube.CoreV1().Secrets(ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": in.name, "namespace": ns},
		"spec":     spec,
	}}
	if _, err := cl.dyn.Resource(platformGVR).Namespace(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the SummonPlatform: %v", err)
	}
	t.Cleanup(in.deleteAndWait)
	return in
}

// deleteAndWait deletes the platform and waits until finalize let it go.
func (in *instance) deleteAndWait() {
	ctx := context.Background()
	err := in.cl.dyn.Resource(platformGVR).Namespace(in.ns).Delete(ctx, in.name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		in.t.Errorf("deleting the SummonPlatform: %v", err)
		return
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := in.cl.dyn.Resource(platformGVR).Namespace(in.ns).Get(ctx, in.name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	in.t.Errorf("the SummonPlatform %s/%s was not finalized within a minute of its deletion", in.ns, in.name)
}

func (in *instance) get(ctx context.Context) (*unstructured.Unstructured, v1beta1.Status, error) {
	p, err := in.cl.dyn.Resource(platformGVR).Namespace(in.ns).Get(ctx, in.name, metav1.GetOptions{})
	if err != nil {
		return nil, v1beta1.Status{}, err
	}
	var st v1beta1.Status
	raw, _, _ := unstructured.NestedMap(p.Object, "status")
	b, _ := json.Marshal(raw)
	_ = json.Unmarshal(b, &st)
	return p, st, nil
}

// patchSpec merges a patch into the spec and returns the resourceVersion of the write, where
// the change falls among the recorded watch events.
func (in *instance) patchSpec(patch map[string]any) int64 {
	in.t.Helper()
	b, _ := json.Marshal(map[string]any{"spec": patch})
	p, err := in.cl.dyn.Resource(platformGVR).Namespace(in.ns).Patch(in.t.Context(), in.name, types.MergePatchType, b, metav1.PatchOptions{})
	if err != nil {
		in.t.Fatalf("patching the spec with %s: %v", b, err)
	}
	return resourceVersion(in.t, p)
}

// resourceVersion reads an object's resourceVersion as the number etcd's revision is.
func resourceVersion(t *testing.T, o metav1.Object) int64 {
	t.Helper()
	rv, err := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("unreadable resourceVersion %q", o.GetResourceVersion())
	}
	return rv
}

// waitReady waits until the status says Ready on version, for the current generation, and every
// app workload's pods are Ready on it.
func (in *instance) waitReady(version string) {
	in.t.Helper()
	in.waitStatus("Ready on "+version, func(p *unstructured.Unstructured, st v1beta1.Status) bool {
		return st.Phase == v1beta1.PhaseReady && st.DeployedVersion == version && st.ObservedGeneration == p.GetGeneration()
	})
}

// waitStatus waits until the status satisfies ok.
func (in *instance) waitStatus(what string, ok func(*unstructured.Unstructured, v1beta1.Status) bool) v1beta1.Status {
	in.t.Helper()
	var last v1beta1.Status
	waitFor(in.t, giveUp, "the platform "+what, func(ctx context.Context) (bool, string) {
		p, st, err := in.get(ctx)
		if err != nil {
			return false, err.Error()
		}
		last = st
		return ok(p, st), fmt.Sprintf("generation %d, status %s", p.GetGeneration(), brief(st))
	})
	return last
}

func brief(st v1beta1.Status) string {
	return fmt.Sprintf("phase %q, message %q, migrated %q, deployed %q, observedGeneration %d",
		st.Phase, st.Message, st.MigratedVersion, st.DeployedVersion, st.ObservedGeneration)
}

func condition(st v1beta1.Status, typ string) *metav1.Condition {
	return meta.FindStatusCondition(st.Conditions, typ)
}

// childNames lists the instance's children by kind and name, as Summon's instance label finds them.
func (in *instance) childNames(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	sel := metav1.ListOptions{LabelSelector: children.LabelInstance + "=" + in.name}
	for _, gvr := range []schema.GroupVersionResource{
		{Group: "apps", Version: "v1", Resource: "deployments"},
		{Group: "apps", Version: "v1", Resource: "statefulsets"},
		{Version: "v1", Resource: "services"},
		{Version: "v1", Resource: "secrets"},
		{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	} {
		list, err := in.cl.dyn.Resource(gvr).Namespace(in.ns).List(ctx, sel)
		if err != nil {
			return nil, err
		}
		for _, o := range list.Items {
			out[o.GetKind()+" "+o.GetName()] = string(o.GetUID())
		}
	}
	return out, nil
}

// slowMigrations makes every migration pod of the namespace take a while before it succeeds.
func slowMigrations(t *testing.T, cl clients, ns string, delay time.Duration) {
	t.Helper()
	createStage(t, cl, testcluster.PodStage(ns+"-slow-migrations",
		map[string]string{children.LabelComponent: string(children.Migrations), "app.kubernetes.io/instance": "car1"},
		corev1.PodSucceeded, delay.Milliseconds(), ""), ns)
}

// failMigrations makes the migration pods of one version fail; the returned func removes the
// stage again.
func failMigrations(t *testing.T, cl clients, ns, version string) func() {
	t.Helper()
	name := ns + "-fail-" + version
	createStage(t, cl, testcluster.PodStage(name,
		map[string]string{children.LabelComponent: string(children.Migrations), children.LabelVersion: version},
		corev1.PodFailed, 500, "Error"), ns)
	return func() {
		if err := cl.dyn.Resource(testcluster.StageGVR).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// createStage creates a kwok Stage (cluster-scoped) and deletes it when the test ends. Its
// selector names the namespace too, so that it never touches another test's pods.
func createStage(t *testing.T, cl clients, stage *unstructured.Unstructured, ns string) {
	t.Helper()
	exprs, _, _ := unstructured.NestedSlice(stage.Object, "spec", "selector", "matchExpressions")
	exprs = append(exprs, map[string]any{"key": ".metadata.namespace", "operator": "In", "values": []any{ns}})
	_ = unstructured.SetNestedSlice(stage.Object, exprs, "spec", "selector", "matchExpressions")
	if _, err := cl.dyn.Resource(testcluster.StageGVR).Create(t.Context(), stage, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating kwok stage %s: %v", stage.GetName(), err)
	}
	t.Cleanup(func() {
		err := cl.dyn.Resource(testcluster.StageGVR).Delete(context.Background(), stage.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting kwok stage %s: %v", stage.GetName(), err)
		}
	})
}

// slowReadyWeb makes the namespace's web pods take a while to become Ready after they are
// scheduled, as real ones do: with pods Ready at once, a rollout that drops below its replica
// count for a moment could go unseen.
func slowReadyWeb(t *testing.T, cl clients, ns string, delay time.Duration) {
	t.Helper()
	base, err := cl.dyn.Resource(testcluster.StageGVR).Get(t.Context(), "pod-ready", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading kwok's pod-ready stage: %v", err)
	}
	createStage(t, cl, testcluster.DerivedStage(base, ns+"-slow-ready-web",
		map[string]string{children.LabelComponent: string(children.Web)}, delay.Milliseconds()), ns)
}
