package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/forklift-dev/summon/internal/cli"
	"github.com/forklift-dev/summon/internal/testing/testenv/controlplane"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

func TestMain(m *testing.M) {
	os.Exit(controlplane.Main(m, filepath.Join("..", "..", "manifests", "crd.yaml")))
}

var platforms = schema.GroupVersionResource{Group: v1beta1.Group, Version: v1beta1.Version, Resource: v1beta1.Resource}

// TestSummonctlRestoreOnARealAPIServer runs summonctl restore itself, against a real API server,
// after v2's migration destroyed a column. This test plays what the API server has no controller
// for: the hook (the core syncs the instance and its status is written back through the status
// subresource) and the kubelet (the restore Job's own script runs here, against the real
// PostgreSQL and kumo's S3, and the Job's status says how it ended). summonctl must pause the
// instance and wait for the hook to freeze it, restore, then move the instance to the version the
// backup restores and unpause it, and v1 must read its rows again.
func TestSummonctlRestoreOnARealAPIServer(t *testing.T) {
	w := newWorld(t)
	want := w.v2DestroysAColumn()
	env := controlplane.Get(t)
	ctx := t.Context()
	dyn := dynamic.NewForConfigOrDie(env.Config)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	ns, name := w.c.Parent.Namespace, w.c.Parent.Name
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	api := dyn.Resource(platforms).Namespace(ns)
	created, err := api.Create(ctx, toUnstructured(t, &v1beta1.SummonPlatform{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.APIVersion, Kind: v1beta1.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       w.c.Parent.Spec,
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The instance the API server holds is the one the world syncs, at the API server's
	// generation; the world keeps its own uid, from which its database credentials derive.
	hook := &apiHook{t: t, w: w, api: api, kube: kube, ns: ns, name: name}
	hook.writeStatus(ctx, created)

	var out, errOut bytes.Buffer
	// A discovery cache of the test's own: the default, ~/.kube/cache, would stay on the host.
	cacheDir := t.TempDir()
	done := make(chan int, 1)
	go func() {
		done <- cli.MainContext(ctx, []string{"summonctl", "--kubeconfig", controlplane.Kubeconfig(t, env, "summon-backup"), "--cache-dir", cacheDir,
			"restore", name, "-n", ns, "--backup", v2, "--yes", "--image", backupImage, "--region", region, "--timeout", "3m"},
			genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	}()
	var code int
	deadline := time.After(4 * time.Minute)
loop:
	for {
		select {
		case code = <-done:
			break loop
		case <-deadline:
			t.Fatalf("summonctl restore did not return; so far:\n%s%s", out.String(), errOut.String())
		case <-time.After(200 * time.Millisecond):
			hook.step(ctx)
		}
	}
	t.Logf("summonctl restore: exit %d\n%s%s", code, out.String(), errOut.String())
	if code != cli.ExitOK {
		t.Fatalf("summonctl restore: exit %d", code)
	}
	if hook.pausedSeen == 0 {
		t.Error("the hook never saw the instance paused before the restore Job ran")
	}
	if len(hook.restored) != 1 {
		t.Errorf("restore Jobs run: %v, want exactly one", hook.restored)
	}
	got, err := w.v1Serves()
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("v1's schema check after summonctl restore: %v %v, want %v", got, err, want)
	}
	final, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	version, _, _ := unstructured.NestedString(final.Object, "spec", "version")
	paused, _, _ := unstructured.NestedBool(final.Object, "spec", "paused")
	if version != v1 || paused {
		t.Errorf("after summonctl restore: spec.version %q, paused %v; want %q and unpaused", version, paused, v1)
	}
	for _, line := range []string{"pausing " + ns + "/" + name, "restoring " + children.NamesFor(name).BackupJob(v2, 0), "restored; moving " + name + " to version " + v1 + " and unpausing"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("summonctl restore's output lacks %q", line)
		}
	}
}

// apiHook is the hook and the kubelet of TestSummonctlRestoreOnARealAPIServer.
type apiHook struct {
	t          *testing.T
	w          *world
	api        dynamic.ResourceInterface
	kube       kubernetes.Interface
	ns, name   string
	generation int64
	pausedSeen int
	restored   []string
}

// step syncs the instance when its spec changed, and runs every restore Job not run yet.
func (h *apiHook) step(ctx context.Context) {
	t := h.t
	obj, err := h.api.Get(ctx, h.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if obj.GetGeneration() != h.generation {
		var sp v1beta1.SummonPlatform
		fromUnstructured(t, obj, &sp)
		h.w.c.Parent.Spec = sp.Spec
		h.writeStatus(ctx, obj)
	}
	jobs, err := h.kube.BatchV1().Jobs(h.ns).List(ctx, metav1.ListOptions{
		LabelSelector: children.LabelInstance + "=" + h.name + "," + children.LabelComponent + "=" + string(children.Restore),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if slices.Contains(h.restored, j.Name) {
			continue
		}
		if !h.w.c.Parent.Spec.Paused {
			t.Errorf("the restore Job %s exists while the instance is not paused", j.Name)
		}
		h.restored = append(h.restored, j.Name)
		logs, err := h.w.run(j)
		if err != nil {
			t.Fatalf("the restore Job's script: %v\n%s", err, logs)
		}
		h.complete(ctx, j)
	}
}

// writeStatus syncs the world at the API server's generation and writes its status back.
func (h *apiHook) writeStatus(ctx context.Context, obj *unstructured.Unstructured) {
	t := h.t
	h.generation = obj.GetGeneration()
	h.w.c.Parent.Generation = h.generation
	st := h.w.sync()
	if h.w.c.Parent.Spec.Paused {
		h.pausedSeen++
	}
	var raw map[string]any
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	obj.Object["status"] = raw
	if _, err := h.api.UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("writing the status: %v", err)
	}
}

// complete writes what the Job controller writes when a Job's one pod succeeded.
func (h *apiHook) complete(ctx context.Context, j *batchv1.Job) {
	now := metav1.Now()
	start := metav1.NewTime(now.Add(-time.Second))
	j.Status = batchv1.JobStatus{
		StartTime: &start, CompletionTime: &now, Succeeded: 1,
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "CompletionsReached"},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "CompletionsReached"},
		},
	}
	if _, err := h.kube.BatchV1().Jobs(h.ns).UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		h.t.Fatalf("completing the restore Job: %v", err)
	}
}

func toUnstructured(t *testing.T, v any) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	decode(t, v, &m)
	return &unstructured.Unstructured{Object: m}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	decode(t, u.Object, into)
}
