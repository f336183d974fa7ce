package integration

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/server"
	"github.com/forklift-dev/summon/internal/testing/mctest"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/internal/testing/testfiles"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// e2eDeadline is when the end-to-end test gives up on the whole scenario. It says nothing about
// how fast Summon must be; the stage timings are logged, not asserted.
const e2eDeadline = 3 * time.Minute

// TestMetacontrollerRunsAPlatformThroughInstallUpgradeAndDeletion runs the real Metacontroller
// against the hook server in this process. No kube-controller-manager runs, so the test plays the
// job and workload controllers: it marks Jobs succeeded and workloads rolled out through their
// status subresources (DESIGN.md section 8), and nothing garbage-collects the children.
//
// It runs while no other test does (none of them is parallel), so Metacontroller sees only its
// own SummonPlatform.
func TestMetacontrollerRunsAPlatformThroughInstallUpgradeAndDeletion(t *testing.T) {
	bin, k, c, kubeconfig := metacontrollerCluster(t)
	deadline := time.Now().Add(e2eDeadline)
	clock := newStages(t)

	hooks := startHookServer(t)
	installCompositeController(t, c, hooks)
	mc := startMetacontroller(t, bin, kubeconfig)
	clock.done("hook server, CompositeController and Metacontroller started")

	e := &e2e{t: t, c: c, deadline: deadline, mc: mc}

	// examples/qa.yaml, in a namespace of its own (golden children are dry-run in summon-qa, and
	// without a garbage collector a run's children outlive it, so each run, as with -count=2,
	// gets a fresh one), with the input Secret its comment says to create first.
	namespace := fmt.Sprintf("summon-qa-e2e-%d", e2eRuns.Add(1))
	ensureNamespace(t, c, namespace)
	qa := readObjects(t, repoFile(t, "examples", "qa.yaml"))[0]
	qa.SetNamespace(namespace)
	inputs, _, _ := unstructured.NestedStringSlice(qa.Object, "spec", "secrets")
	for _, name := range inputs {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
				Labels: map[string]string{v1beta1.LabelInput: "true"}, Annotations: map[string]string{v1beta1.AnnotationInputFor: qa.GetName()}},
			StringData: map[string]string{"DATABASE_URL": "postgres://car1_qa:change-me@postgres.summon-qa:5432/car1_qa"},
		}
		if err := c.Create(t.Context(), s); err != nil {
			t.Fatalf("creating input Secret %s: %v", name, err)
		}
	}
	manifest, err := yaml.Marshal(qa.Object)
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := k.kubectl(t, kubeconfig, manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply of examples/qa.yaml: %v\n%s", err, stderr)
	}
	e.key = client.ObjectKey{Namespace: namespace, Name: qa.GetName()}
	e.names = children.NamesFor(qa.GetName())
	oldVersion, _, _ := unstructured.NestedString(qa.Object, "spec", "version")
	clock.done("examples/qa.yaml applied")

	e.waitForConfigAndServices()
	clock.done("config Secret and Services created")

	job := e.waitForMigrationJob(oldVersion)
	if got := e.workloads(); len(got) > 0 {
		t.Errorf("workloads exist before the first migration succeeded: %v", got)
	}
	clock.done("migration Job created, no workload yet")

	e.markJobSucceeded(job)
	e.waitForWorkloadsOn(oldVersion)
	clock.done("migration marked succeeded; workloads created on the version")

	e.waitForReady(oldVersion)
	clock.done("workloads marked rolled out; platform Ready")

	newVersion := "108913-9f1c2d4-release-2019-9"
	patch := fmt.Sprintf(`{"spec":{"version":%q}}`, newVersion)
	if err := c.Patch(t.Context(), e.parent(), client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("changing spec.version: %v", err)
	}
	job = e.waitForMigrationJob(newVersion)
	// The gate: until the new version's migrations succeed, every workload keeps the old one.
	want := map[string]string{}
	for name := range e.wantWorkloads() {
		want[name] = oldVersion
	}
	if diff := cmp.Diff(want, e.workloads()); diff != "" {
		t.Errorf("workload versions while the new migration runs (-want +got):\n%s", diff)
	}
	clock.done("spec.version changed; new migration Job created, workloads on the old version")

	e.markJobSucceeded(job)
	e.waitForWorkloadsOn(newVersion)
	clock.done("new migration marked succeeded; workloads moved to the new version")

	e.waitForReady(newVersion)
	clock.done("workloads marked rolled out; platform Ready on the new version")

	parent := e.parent()
	if err := c.Get(t.Context(), e.key, parent); err != nil {
		t.Fatal(err)
	}
	finalizer := "metacontroller.io/compositecontroller-summon"
	if !slices.Contains(parent.GetFinalizers(), finalizer) {
		t.Errorf("the SummonPlatform has finalizers %q, want Metacontroller's %q (the finalize hook is declared)", parent.GetFinalizers(), finalizer)
	}
	if err := c.Delete(t.Context(), parent); err != nil {
		t.Fatalf("deleting the SummonPlatform: %v", err)
	}
	e.eventually("the SummonPlatform to be gone", func(ctx context.Context) (bool, string) {
		err := c.Get(ctx, e.key, e.parent())
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("still there (error %v)", err)
	})
	if !hooks.answeredFinalized(t, e.key) {
		t.Errorf("the hook server's log has no finalize call for %s answered 200 with finalized: true", e.key)
	}
	clock.done("SummonPlatform deleted: finalize answered, finalizer removed")
	hooks.expectOnly(t, "every call Metacontroller makes carries the token", http.StatusOK)
}

// TestMetacontrollerCallsTheHooksOverMutualTLS serves the hooks over TLS with client certificates
// required, and lets the real Metacontroller reach them with the caBundle and clientTLS that
// manifests/tls/ sets (the CA inline here: the test's hook has no Service), token included.
func TestMetacontrollerCallsTheHooksOverMutualTLS(t *testing.T) {
	bin, _, c, kubeconfig := metacontrollerCluster(t)

	dir := t.TempDir()
	ca := testenv.NewCA(t, "summon-hook-ca")
	certPEM, keyPEM := ca.Issue("summon", x509.ExtKeyUsageServerAuth)
	clientPEM, clientKey := ca.Issue("metacontroller", x509.ExtKeyUsageClientAuth)
	files := map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": ca.PEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hooks := startHookServer(t, "--tls-cert-file="+filepath.Join(dir, "tls.crt"), "--tls-key-file="+filepath.Join(dir, "tls.key"),
		"--tls-client-ca-file="+filepath.Join(dir, "ca.crt"))
	ensureNamespace(t, c, "summon-system")
	clientSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("summon-metacontroller-client-%d", e2eRuns.Add(1)), Namespace: "summon-system"},
		Data:       map[string][]byte{"tls.crt": clientPEM, "tls.key": clientKey},
	}
	if err := c.Create(t.Context(), clientSecret); err != nil {
		t.Fatal(err)
	}
	installCompositeControllerWith(t, c, hooks, map[string]any{
		"caBundle":  map[string]any{"inline": string(ca.PEM)},
		"clientTLS": map[string]any{"secretRef": map[string]any{"name": clientSecret.Name, "namespace": "summon-system"}},
	})
	mc := startMetacontroller(t, bin, kubeconfig)
	e := &e2e{t: t, c: c, deadline: time.Now().Add(e2eDeadline), mc: mc}

	namespace := fmt.Sprintf("summon-mtls-%d", e2eRuns.Add(1))
	ensureNamespace(t, c, namespace)
	p := e.createParent(namespace, "car1", "108912-6e2f8b7-release-2019-8")
	e.waitForMigrationJob("108912-6e2f8b7-release-2019-8")
	if err := c.Delete(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	e.eventually("the parent gone", func(ctx context.Context) (bool, string) {
		err := c.Get(ctx, e.key, e.parent())
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	hooks.expectOnly(t, "every call over mutual TLS is answered", http.StatusOK)
}

// TestMetacontrollerResyncsASteadyInstanceWith304s lets the real Metacontroller resync a Ready
// instance every second (resyncPeriodSeconds 1, instead of the install's 300) with the
// CompositeController's ETag cache on: the unchanged requests are answered 304, and nothing about
// the instance moves meanwhile.
func TestMetacontrollerResyncsASteadyInstanceWith304s(t *testing.T) {
	bin, _, c, kubeconfig := metacontrollerCluster(t)
	hooks := startHookServer(t)
	installCompositeController(t, c, hooks)
	cc := &unstructured.Unstructured{}
	cc.SetAPIVersion("metacontroller.k8s.io/v1alpha1")
	cc.SetKind("CompositeController")
	cc.SetName("summon")
	if err := c.Patch(t.Context(), cc, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"resyncPeriodSeconds":1}}`))); err != nil {
		t.Fatal(err)
	}
	mc := startMetacontroller(t, bin, kubeconfig)
	e := &e2e{t: t, c: c, deadline: time.Now().Add(e2eDeadline), mc: mc}
	namespace := fmt.Sprintf("summon-etag-%d", e2eRuns.Add(1))
	ensureNamespace(t, c, namespace)
	e.createParent(namespace, "car1", "108912-6e2f8b7-release-2019-8")
	e.markJobSucceeded(e.waitForMigrationJob("108912-6e2f8b7-release-2019-8"))
	e.waitForReady("108912-6e2f8b7-release-2019-8")
	before := e.parent()
	if err := c.Get(t.Context(), e.key, before); err != nil {
		t.Fatal(err)
	}
	start := hooks.codes(t)
	e.eventually("ten steady resyncs answered 304", func(ctx context.Context) (bool, string) {
		now := hooks.codes(t)
		return now["sync 304"]-start["sync 304"] >= 10, fmt.Sprintf("hook answers %v", now)
	})
	after := e.parent()
	if err := c.Get(t.Context(), e.key, after); err != nil {
		t.Fatal(err)
	}
	if before.GetResourceVersion() != after.GetResourceVersion() {
		t.Errorf("the SummonPlatform changed while it was steady (resourceVersion %s, then %s)", before.GetResourceVersion(), after.GetResourceVersion())
	}
	end := hooks.codes(t)
	t.Logf("steady resyncs: %d answered 304, %d answered 200", end["sync 304"]-start["sync 304"], end["sync 200"]-start["sync 200"])
}

// TestMetacontrollerConvergesThroughAnOverloadedHook applies several SummonPlatforms at once to a
// hook that serves one call at a time: the calls beyond it are answered 429, which Metacontroller
// requeues, and every parent still comes as far as its first migration Job.
func TestMetacontrollerConvergesThroughAnOverloadedHook(t *testing.T) {
	bin, _, c, kubeconfig := metacontrollerCluster(t)

	hooks := startHookServer(t, "--max-concurrent-hooks=1", "--overload-retry-after=1s")
	installCompositeController(t, c, hooks)
	mc := startMetacontroller(t, bin, kubeconfig)
	e := &e2e{t: t, c: c, deadline: time.Now().Add(e2eDeadline), mc: mc}

	namespace := fmt.Sprintf("summon-overload-%d", e2eRuns.Add(1))
	ensureNamespace(t, c, namespace)
	const parents = 8
	for i := range parents {
		p := e.parentNamed(namespace, fmt.Sprintf("car%d", i))
		p.Object["spec"] = map[string]any{"version": "108912-6e2f8b7-release-2019-8"}
		if err := c.Create(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	e.eventually("a migration Job for every parent", func(ctx context.Context) (bool, string) {
		var jobs batchv1.JobList
		if err := c.List(ctx, &jobs, client.InNamespace(namespace)); err != nil {
			return false, err.Error()
		}
		return len(jobs.Items) == parents, fmt.Sprintf("%d of %d migration Jobs; hook answers %v", len(jobs.Items), parents, hooks.codes(t))
	})
	codes := hooks.codes(t)
	t.Logf("hook answers: %v", codes)
	hooks.expectOnly(t, "an overloaded hook answers 429, nothing else", http.StatusOK, http.StatusTooManyRequests)
	for i := range parents {
		p := e.parentNamed(namespace, fmt.Sprintf("car%d", i))
		if err := c.Delete(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	e.eventually("every parent gone", func(ctx context.Context) (bool, string) {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion(v1beta1.APIVersion)
		list.SetKind(v1beta1.Kind + "List")
		if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return false, err.Error()
		}
		return len(list.Items) == 0, fmt.Sprintf("%d left", len(list.Items))
	})
}

// metacontrollerCluster is what every test with the real Metacontroller starts from: its binary
// (or a skip), the control plane with Summon's and Metacontroller's CRDs, an admin client and an
// admin kubeconfig for Metacontroller.
func metacontrollerCluster(t *testing.T) (bin string, k kube, c client.Client, kubeconfig string) {
	t.Helper()
	bin = testenv.Metacontroller(t)
	k = cluster(t)
	k.requireCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	k.requireCRDs(t, metacontrollerCRDs(t))
	return bin, k, k.client(t, nil), k.kubeconfig(t)
}

// createParent creates a SummonPlatform on version, as an apply would, and makes it the run's.
func (e *e2e) createParent(namespace, name, version string) *unstructured.Unstructured {
	e.t.Helper()
	p := e.parentNamed(namespace, name)
	p.Object["spec"] = map[string]any{"version": version}
	if err := e.c.Create(e.t.Context(), p); err != nil {
		e.t.Fatal(err)
	}
	e.key, e.names = client.ObjectKey{Namespace: namespace, Name: name}, children.NamesFor(name)
	return p
}

// expectOnly fails the test for every hook call the server answered with a code not in codes.
func (h *hookServer) expectOnly(t *testing.T, why string, codes ...int) {
	t.Helper()
	for call, n := range h.codes(t) {
		_, code, _ := strings.Cut(call, " ")
		if !slices.Contains(codes, atoiOr0(code)) {
			t.Errorf("%d hook calls answered %s; %s", n, call, why)
		}
	}
}

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// e2eRuns counts the end-to-end runs of this test binary.
var e2eRuns atomic.Int32

// e2e is the state of one end-to-end run, and the part of the job and workload controllers the
// test plays.
type e2e struct {
	t        *testing.T
	c        client.Client
	deadline time.Time
	mc       *metacontroller
	key      client.ObjectKey
	names    children.Names
}

func (e *e2e) parent() *unstructured.Unstructured { return e.parentNamed(e.key.Namespace, e.key.Name) }

func (e *e2e) parentNamed(namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(v1beta1.APIVersion)
	u.SetKind(v1beta1.Kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

// eventually polls until the scenario's deadline, and stops at once if Metacontroller exited.
func (e *e2e) eventually(what string, check func(ctx context.Context) (bool, string)) {
	e.t.Helper()
	eventually(e.t, time.Until(e.deadline), what, func(ctx context.Context) (bool, string) {
		if err := e.mc.exitErr(); err != nil {
			e.t.Fatalf("Metacontroller exited while waiting for %s: %v", what, err)
		}
		return check(ctx)
	})
}

func (e *e2e) waitForConfigAndServices() {
	e.t.Helper()
	var want []string
	for _, c := range []children.Component{children.Web, children.Daphne, children.Static, children.CeleryBeat} {
		want = append(want, e.names.Of(c))
	}
	slices.Sort(want)
	e.eventually("the app config Secret and the Services", func(ctx context.Context) (bool, string) {
		err := e.c.Get(ctx, client.ObjectKey{Namespace: e.key.Namespace, Name: e.names.Config()}, &corev1.Secret{})
		if err != nil {
			return false, fmt.Sprintf("config Secret %s: %v", e.names.Config(), err)
		}
		var services corev1.ServiceList
		if err := e.c.List(ctx, &services, e.owned()...); err != nil {
			return false, err.Error()
		}
		var got []string
		for _, s := range services.Items {
			got = append(got, s.Name)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			return false, "Services (-want +got):\n" + diff
		}
		return true, ""
	})
}

// owned selects the children of this instance by Summon's instance label.
func (e *e2e) owned() []client.ListOption {
	return []client.ListOption{client.InNamespace(e.key.Namespace), client.MatchingLabels{children.LabelInstance: e.key.Name}}
}

// waitForMigrationJob waits for the migration Job of a version and returns its name.
func (e *e2e) waitForMigrationJob(version string) string {
	e.t.Helper()
	var name string
	e.eventually("the migration Job of "+version, func(ctx context.Context) (bool, string) {
		var jobs batchv1.JobList
		err := e.c.List(ctx, &jobs, client.InNamespace(e.key.Namespace), client.MatchingLabels{
			children.LabelInstance:  e.key.Name,
			children.LabelComponent: string(children.Migrations),
			children.LabelVersion:   version,
		})
		if err != nil {
			return false, err.Error()
		}
		if len(jobs.Items) != 1 {
			return false, fmt.Sprintf("%d migration Jobs for %s; phase %s", len(jobs.Items), version, e.phase(ctx))
		}
		name = jobs.Items[0].Name
		return true, ""
	})
	return name
}

// markJobSucceeded does what the job controller would once the Job's pod exits 0.
func (e *e2e) markJobSucceeded(name string) {
	e.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var job batchv1.Job
		if err := e.c.Get(e.t.Context(), client.ObjectKey{Namespace: e.key.Namespace, Name: name}, &job); err != nil {
			return err
		}
		now := metav1.Now()
		started := metav1.NewTime(now.Add(-time.Second))
		job.Status.StartTime = &started
		job.Status.CompletionTime = &now
		job.Status.Succeeded = 1
		// The API server takes Complete only after SuccessCriteriaMet, as the job controller
		// writes them.
		const reason, message = batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods"
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now, Reason: reason, Message: message},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now, Reason: reason, Message: message},
		}
		return e.c.Status().Update(e.t.Context(), &job)
	})
	if err != nil {
		e.t.Fatalf("marking Job %s succeeded: %v", name, err)
	}
}

// wantWorkloads are the app workloads of the instance by name, with their kinds.
func (e *e2e) wantWorkloads() map[string]string {
	want := map[string]string{}
	for _, c := range children.AppComponents {
		kind := "Deployment"
		if c == children.CeleryBeat {
			kind = "StatefulSet"
		}
		want[e.names.Of(c)] = kind
	}
	return want
}

// workloads maps each app workload (Deployment or StatefulSet) to the version its pod template
// runs.
func (e *e2e) workloads() map[string]string {
	e.t.Helper()
	got := map[string]string{}
	var deployments appsv1.DeploymentList
	if err := e.c.List(e.t.Context(), &deployments, e.owned()...); err != nil {
		e.t.Fatal(err)
	}
	for _, d := range deployments.Items {
		got[d.Name] = d.Spec.Template.Labels[children.LabelVersion]
	}
	var sets appsv1.StatefulSetList
	if err := e.c.List(e.t.Context(), &sets, e.owned()...); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range sets.Items {
		got[s.Name] = s.Spec.Template.Labels[children.LabelVersion]
	}
	return got
}

func (e *e2e) waitForWorkloadsOn(version string) {
	e.t.Helper()
	want := map[string]string{}
	for name := range e.wantWorkloads() {
		want[name] = version
	}
	e.eventually("every workload on "+version, func(ctx context.Context) (bool, string) {
		if diff := cmp.Diff(want, e.workloads()); diff != "" {
			return false, fmt.Sprintf("phase %s; workload versions (-want +got):\n%s", e.phase(ctx), diff)
		}
		return true, ""
	})
}

// waitForReady plays the Deployment and StatefulSet controllers (every pod is up at once) until
// the platform reports Ready on a version. A workload Metacontroller updates again is marked
// again, so the marks are redone on each poll.
func (e *e2e) waitForReady(version string) {
	e.t.Helper()
	e.eventually("the platform Ready on "+version, func(ctx context.Context) (bool, string) {
		if err := e.markRolledOut(ctx); err != nil {
			return false, err.Error()
		}
		p := e.parent()
		if err := e.c.Get(ctx, e.key, p); err != nil {
			return false, err.Error()
		}
		phase, _, _ := unstructured.NestedString(p.Object, "status", "phase")
		deployed, _, _ := unstructured.NestedString(p.Object, "status", "deployedVersion")
		message, _, _ := unstructured.NestedString(p.Object, "status", "message")
		ready := conditionStatus(p, v1beta1.ConditionReady)
		if phase != string(v1beta1.PhaseReady) || deployed != version || ready != metav1.ConditionTrue {
			return false, fmt.Sprintf("phase %q, deployedVersion %q, Ready condition %q, message %q", phase, deployed, ready, message)
		}
		return true, ""
	})
}

func (e *e2e) markRolledOut(ctx context.Context) error {
	var deployments appsv1.DeploymentList
	if err := e.c.List(ctx, &deployments, e.owned()...); err != nil {
		return err
	}
	for i := range deployments.Items {
		d := &deployments.Items[i]
		r := ptr.Deref(d.Spec.Replicas, 1)
		st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: r, UpdatedReplicas: r, ReadyReplicas: r, AvailableReplicas: r}
		if d.Status.ObservedGeneration == st.ObservedGeneration && d.Status.Replicas == r && d.Status.UpdatedReplicas == r &&
			d.Status.ReadyReplicas == r && d.Status.AvailableReplicas == r {
			continue
		}
		d.Status = st
		if err := e.c.Status().Update(ctx, d); err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("marking Deployment %s rolled out: %w", d.Name, err)
		}
	}
	var sets appsv1.StatefulSetList
	if err := e.c.List(ctx, &sets, e.owned()...); err != nil {
		return err
	}
	for i := range sets.Items {
		s := &sets.Items[i]
		r := ptr.Deref(s.Spec.Replicas, 1)
		if s.Status.ObservedGeneration == s.Generation && s.Status.Replicas == r && s.Status.UpdatedReplicas == r &&
			s.Status.ReadyReplicas == r && s.Status.AvailableReplicas == r {
			continue
		}
		s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: r, CurrentReplicas: r, UpdatedReplicas: r, ReadyReplicas: r, AvailableReplicas: r}
		if err := e.c.Status().Update(ctx, s); err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("marking StatefulSet %s rolled out: %w", s.Name, err)
		}
	}
	return nil
}

func (e *e2e) phase(ctx context.Context) string {
	p := e.parent()
	if err := e.c.Get(ctx, e.key, p); err != nil {
		return err.Error()
	}
	phase, _, _ := unstructured.NestedString(p.Object, "status", "phase")
	message, _, _ := unstructured.NestedString(p.Object, "status", "message")
	return fmt.Sprintf("%q (%s)", phase, message)
}

func conditionStatus(p *unstructured.Unstructured, typ string) metav1.ConditionStatus {
	var st struct {
		Conditions []metav1.Condition `json:"conditions"`
	}
	raw, _, _ := unstructured.NestedMap(p.Object, "status")
	b, _ := json.Marshal(raw)
	_ = json.Unmarshal(b, &st)
	if c := meta.FindStatusCondition(st.Conditions, typ); c != nil {
		return c.Status
	}
	return ""
}

// stages logs how long each stage of a scenario took.
type stages struct {
	t           *testing.T
	start, last time.Time
}

func newStages(t *testing.T) *stages {
	now := time.Now()
	return &stages{t: t, start: now, last: now}
}

func (s *stages) done(stage string) {
	s.t.Helper()
	now := time.Now()
	s.t.Logf("%6.2fs  %-75s (%.2fs in all)", now.Sub(s.last).Seconds(), stage, now.Sub(s.start).Seconds())
	s.last = now
}

// hookServer is Summon's hook server (internal/server, as cmd/summon runs it) serving in this
// process on 127.0.0.1, requiring the bearer token an install gives it.
type hookServer struct {
	url   string
	log   string
	token string
}

// startHookServer starts the hook server with the flags of an install (a bearer token
// included), and extra flags after them.
func startHookServer(t *testing.T, extra ...string) *hookServer {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "credential-key")
	if err := os.WriteFile(key, []byte("summon-integration-test-credential-key-of-at-least-32-bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := fmt.Sprintf("summon-integration-hook-token-%d-%d", time.Now().UnixNano(), e2eRuns.Load())
	tokenFile := filepath.Join(dir, "hook-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.ParseConfig(append([]string{
		"--listen=" + net.JoinHostPort(loopback, "0"),
		"--credential-key-file=" + key,
		"--auth-token-file=" + tokenFile,
		"--default-image=registry.example.com/summon-platform",
		"--shutdown-timeout=5s",
	}, extra...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "summon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, slog.New(slog.NewJSONHandler(logFile, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("hook server: %v", err)
		}
		logFile.Close()
	})
	dumpOnFailure(t, "hook server", logPath)
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	return &hookServer{url: scheme + "://" + ln.Addr().String(), log: logPath, token: token}
}

// codes counts the hook calls the hook server logged, by hook and HTTP status code.
func (h *hookServer) codes(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(h.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	lines := bufio.NewScanner(f)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		var call struct {
			Msg  string `json:"msg"`
			Hook string `json:"hook"`
			Code int    `json:"code"`
		}
		if json.Unmarshal(lines.Bytes(), &call) == nil && call.Msg == "hook call" {
			out[fmt.Sprintf("%s %d", call.Hook, call.Code)]++
		}
	}
	return out
}

// answeredFinalized says whether the hook server logged a finalize call for a parent that
// answered 200 with finalized: true.
func (h *hookServer) answeredFinalized(t *testing.T, parent client.ObjectKey) bool {
	t.Helper()
	f, err := os.Open(h.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		var call struct {
			Hook   string `json:"hook"`
			Code   int    `json:"code"`
			Parent struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"parent"`
			Finalized bool `json:"finalized"`
		}
		if json.Unmarshal(lines.Bytes(), &call) != nil {
			continue
		}
		if call.Hook == "finalize" && call.Code == 200 && call.Finalized &&
			call.Parent.Namespace == parent.Namespace && call.Parent.Name == parent.Name {
			return true
		}
	}
	return false
}

// installCompositeController creates manifests/compositecontroller.yaml with each hook's webhook
// pointed at the hook server in this process instead of the in-cluster Service, and the token
// Secret the install's step 2 (docs/install.md) creates, holding the hook server's token.
func installCompositeController(t *testing.T, c client.Client, hs *hookServer) {
	t.Helper()
	installCompositeControllerWith(t, c, hs, nil)
}

// installCompositeControllerWith is installCompositeController with more fields set on every
// hook's webhook (caBundle, clientTLS).
func installCompositeControllerWith(t *testing.T, c client.Client, hs *hookServer, webhookFields map[string]any) {
	t.Helper()
	installThisCompositeController(t, c, readObjects(t, repoFile(t, "manifests", "compositecontroller.yaml"))[0], hs, webhookFields)
}

// installThisCompositeController creates a CompositeController (one kustomize built, say) with each
// hook's webhook pointed at the hook server in this process, and the token Secret the install's
// step 2 of docs/install.md creates, holding the hook server's token.
func installThisCompositeController(t *testing.T, c client.Client, cc *unstructured.Unstructured, hs *hookServer, webhookFields map[string]any) {
	t.Helper()
	hookURL := hs.url
	ensureNamespace(t, c, "summon-system")
	token := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "summon-hook-token", Namespace: "summon-system"},
		StringData: map[string]string{"token": hs.token},
	}
	err := c.Create(t.Context(), token)
	if apierrors.IsAlreadyExists(err) {
		err = c.Update(t.Context(), token)
	}
	if err != nil {
		t.Fatalf("writing the hook token Secret: %v", err)
	}
	hooks, _, err := unstructured.NestedMap(cc.Object, "spec", "hooks")
	if err != nil || len(hooks) == 0 {
		t.Fatalf("manifests/compositecontroller.yaml has no spec.hooks (%v)", err)
	}
	for name := range hooks {
		webhook, _, _ := unstructured.NestedMap(hooks, name, "webhook")
		path, _ := webhook["path"].(string)
		if path == "" {
			t.Fatalf("hook %s has no webhook.path", name)
		}
		if _, ok := webhook["authorization"]; !ok {
			t.Fatalf("hook %s sends no authorization: the hook server would answer it 401", name)
		}
		delete(webhook, "service")
		delete(webhook, "path")
		webhook["url"] = hookURL + path
		for k, v := range webhookFields {
			webhook[k] = v
		}
		if err := unstructured.SetNestedMap(hooks, webhook, name, "webhook"); err != nil {
			t.Fatal(err)
		}
	}
	if err := unstructured.SetNestedMap(cc.Object, hooks, "spec", "hooks"); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(t.Context(), cc); err != nil {
		t.Fatalf("creating the CompositeController: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Delete(context.Background(), cc); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the CompositeController: %v", err)
		}
	})
}

// metacontroller is a Metacontroller process started by the test.
type metacontroller struct {
	exited chan struct{}
	err    error
}

// exitErr says why Metacontroller exited, or nil while it runs.
func (m *metacontroller) exitErr() error {
	select {
	case <-m.exited:
		if m.err == nil {
			return errors.New("exit status 0")
		}
		return m.err
	default:
		return nil
	}
}

// startMetacontroller runs Metacontroller with NOTES.md's flags for a local run: fast discovery,
// a rate limit that doesn't slow the test, and no metrics, health or pprof listener at all.
func startMetacontroller(t *testing.T, bin, kubeconfig string) *metacontroller {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "metacontroller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig=" + kubeconfig}, mctest.DefaultArgs...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting Metacontroller: %v", err)
	}
	m := &metacontroller{exited: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		// Stopped by its PID: SIGTERM, then SIGKILL if it doesn't go.
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("stopping Metacontroller (pid %d): %v", cmd.Process.Pid, err)
		}
		select {
		case <-m.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-m.exited
		}
		logFile.Close()
	})
	dumpOnFailure(t, "Metacontroller", logPath)
	return m
}

// dumpOnFailure logs the end of a process's log if the test failed.
func dumpOnFailure(t *testing.T, what, path string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (%s), last lines:\n%s", what, path, testfiles.Tail(path, 60))
		}
	})
}
