package rollout

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/forklift-dev/summon/internal/testing/standin"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// migrationTime is how long a slow migration pod runs before it succeeds, and readyTime how long
// a web pod takes to become Ready once scheduled.
const (
	migrationTime = 6 * time.Second
	readyTime     = 2 * time.Second
)

// TestVersionBumpKeepsThreeWebPodsServing bumps the version of an instance with web at 3 replicas
// while its migrations take a while. On every event: never fewer than 3 web pods Ready, no app
// pod on a version before its migration Job succeeded, the old version alone serving while the
// migration runs, never two beats. It runs under both apply strategies.
func TestVersionBumpKeepsThreeWebPodsServing(t *testing.T) {
	for _, strategy := range []standin.ApplyStrategy{standin.DynamicApply, standin.ServerSideApply} {
		t.Run(string(strategy), func(t *testing.T) {
			c := cluster(t)
			cl := clientsOf(c)
			ns := newNamespace(t, cl.kube, "bump-"+strings.ReplaceAll(string(strategy), "-apply", ""))
			tl := record(t, cl.kube, ns)
			slowMigrations(t, cl, ns, migrationTime)
			slowReadyWeb(t, cl, ns, readyTime)
			hook := startHook(t)
			startController(t, c, hook.URL(), strategy)

			in := apply(t, cl, ns, platformSpec("v1", 3))
			in.waitReady("v1")
			in.patchSpec(map[string]any{"version": "v2"})
			in.waitReady("v2")

			events := tl.snapshot(t)
			replay(t, events, neverFewerServingWeb(3), migratedBeforeRun(), oldServesWhileMigrating(3), oneBeat())
			newWeb := count(events, func(e event) bool {
				p, ok := e.obj.(*corev1.Pod)
				return ok && e.typ == watch.Added && component(p) == string(children.Web) && version(p) == "v2"
			})
			if newWeb < 3 {
				t.Errorf("%d web pods of v2 were created; the rollout can't have happened", newWeb)
			}
			in.expectWorkloadsOn("v2")
		})
	}
}

// expectWorkloadsOn checks that every app workload's pod template runs version, and its pods are
// all Ready on it.
func (in *instance) expectWorkloadsOn(version string) {
	in.t.Helper()
	ctx := in.t.Context()
	deps, err := in.cl.kube.AppsV1().Deployments(in.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		in.t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range deps.Items {
		got[d.Name] = d.Spec.Template.Labels[children.LabelVersion]
	}
	sets, err := in.cl.kube.AppsV1().StatefulSets(in.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		in.t.Fatal(err)
	}
	for _, s := range sets.Items {
		got[s.Name] = s.Spec.Template.Labels[children.LabelVersion]
	}
	want := map[string]string{}
	names := children.NamesFor(in.name)
	for _, c := range children.AppComponents {
		want[names.Of(c)] = version
	}
	if diff := cmp.Diff(want, got); diff != "" {
		in.t.Errorf("workload versions (-want +got):\n%s", diff)
	}
}

// TestBeatNeverTwiceAcrossTwentyBumpsAndAConfigChange bumps the version 20 times, then changes
// the config: every step replaces the beat pod, and on no event do two beat pods exist, a
// terminating one included.
func TestBeatNeverTwiceAcrossTwentyBumpsAndAConfigChange(t *testing.T) {
	c := cluster(t)
	cl := clientsOf(c)
	ns := newNamespace(t, cl.kube, "beat")
	tl := record(t, cl.kube, ns)
	hook := startHook(t)
	startController(t, c, hook.URL(), standin.DynamicApply)

	in := apply(t, cl, ns, platformSpec("v0", 1))
	in.waitReady("v0")
	for i := 1; i <= 20; i++ {
		v := fmt.Sprintf("v%d", i)
		in.patchSpec(map[string]any{"version": v})
		in.waitReady(v)
	}
	in.patchSpec(map[string]any{"config": map[string]any{"DEBUG": true}})
	in.waitStatus("Ready on the changed config", func(p *unstructured.Unstructured, st v1beta1.Status) bool {
		return st.Phase == v1beta1.PhaseReady && st.ObservedGeneration == p.GetGeneration()
	})

	events := tl.snapshot(t)
	replay(t, events, oneBeat(), migratedBeforeRun())
	beats := map[string]bool{}
	for _, e := range events {
		if p, ok := e.obj.(*corev1.Pod); ok && component(p) == string(children.CeleryBeat) {
			beats[string(p.UID)] = true
		}
	}
	// One beat pod per version and one for the config change: the singleton was exercised.
	if len(beats) < 22 {
		t.Errorf("%d beat pods were created across 20 bumps and a config change, want at least 22", len(beats))
	}
}

// TestFailedMigrationKeepsTheOldVersionAndRetries fails the migration pods of v2 (a kwok stage):
// the Job fails after its retries, the old version keeps serving, the status says why and how to
// retry; then the stage is removed and spec.migrations.attempt raised, and the retry succeeds.
func TestFailedMigrationKeepsTheOldVersionAndRetries(t *testing.T) {
	c := cluster(t)
	cl := clientsOf(c)
	ns := newNamespace(t, cl.kube, "fail")
	tl := record(t, cl.kube, ns)
	hook := startHook(t)
	startController(t, c, hook.URL(), standin.DynamicApply)

	in := apply(t, cl, ns, platformSpec("v1", 2))
	in.waitReady("v1")
	healed := failMigrations(t, cl, ns, "v2")
	in.patchSpec(map[string]any{"version": "v2"})
	st := in.waitStatus("in Error with the failed migration", func(p *unstructured.Unstructured, st v1beta1.Status) bool {
		return st.Phase == v1beta1.PhaseError && st.ObservedGeneration == p.GetGeneration()
	})
	job := children.NamesFor(in.name).MigrationJob("v2", 0)
	if c := condition(st, v1beta1.ConditionMigrated); c == nil || c.Reason != "MigrationFailed" {
		t.Errorf("Migrated condition %+v, want reason MigrationFailed", c)
	}
	for _, want := range []string{job, "spec.migrations.attempt", "keeps serving"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("status message %q doesn't say %q", st.Message, want)
		}
	}
	if st.MigratedVersion != "v1" || st.DeployedVersion != "v1" {
		t.Errorf("after the failed migration: %s; want v1 migrated and deployed", brief(st))
	}
	in.expectWorkloadsOn("v1")

	healed()
	in.patchSpec(map[string]any{"migrations": map[string]any{"attempt": int64(1)}})
	in.waitReady("v2")

	events := tl.snapshot(t)
	replay(t, events, neverFewerServingWeb(2), migratedBeforeRun(), oldServesWhileMigrating(2), oneBeat())
	failed := count(events, func(e event) bool {
		p, ok := e.obj.(*corev1.Pod)
		return ok && component(p) == string(children.Migrations) && p.Status.Phase == corev1.PodFailed && e.typ == watch.Modified
	})
	if failed == 0 {
		t.Error("no migration pod was seen failing")
	}
	in.expectWorkloadsOn("v2")
}

// TestHookKilledMidRolloutAndChildDeletedConverge kills the hook server (SIGKILL) while a
// migration runs and restarts it a while later; then deletes two children by hand. Both converge
// with every child back, the same config (the credentials are derived, not stored), and the
// invariants held on every event.
func TestHookKilledMidRolloutAndChildDeletedConverge(t *testing.T) {
	c := cluster(t)
	cl := clientsOf(c)
	ns := newNamespace(t, cl.kube, "kill")
	tl := record(t, cl.kube, ns)
	slowMigrations(t, cl, ns, migrationTime)
	slowReadyWeb(t, cl, ns, readyTime)
	hook := startHook(t)
	startController(t, c, hook.URL(), standin.DynamicApply)

	in := apply(t, cl, ns, platformSpec("v1", 3))
	in.waitReady("v1")
	before, err := in.childNames(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	config := in.configData()

	in.patchSpec(map[string]any{"version": "v2"})
	in.waitStatus("migrating v2", func(p *unstructured.Unstructured, st v1beta1.Status) bool {
		return st.Phase == v1beta1.PhaseMigrating && st.ObservedGeneration == p.GetGeneration()
	})
	hook.Stop(syscall.SIGKILL)
	if conn, err := net.DialTimeout("tcp", hook.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("the hook server still answers after SIGKILL")
	}
	job, err := cl.kube.BatchV1().Jobs(ns).Get(t.Context(), children.NamesFor(in.name).MigrationJob("v2", 0), metav1.GetOptions{})
	if err != nil || jobSucceeded(job) {
		t.Fatalf("the hook must die while the v2 migration runs; its Job: %v (error %v)", job.Status, err)
	}
	// The Job finishes while no hook answers; the controller's syncs fail meanwhile and change
	// nothing.
	time.Sleep(migrationTime + 2*time.Second)
	hook.Start()
	in.waitReady("v2")

	names := children.NamesFor(in.name)
	for _, del := range []func(context.Context) error{
		func(ctx context.Context) error {
			return cl.kube.AppsV1().Deployments(ns).Delete(ctx, names.Of(children.Daphne), metav1.DeleteOptions{})
		},
		func(ctx context.Context) error {
			return cl.kube.CoreV1().Services(ns).Delete(ctx, names.Of(children.Web), metav1.DeleteOptions{})
		},
	} {
		if err := del(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, giveUp, "the deleted children back", func(ctx context.Context) (bool, string) {
		after, err := in.childNames(ctx)
		if err != nil {
			return false, err.Error()
		}
		got, want := slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before))
		if diff := cmp.Diff(want, got); diff != "" {
			return false, "children (-want +got):\n" + diff
		}
		return true, ""
	})
	in.waitReady("v2")
	if diff := cmp.Diff(config, in.configData()); diff != "" {
		t.Errorf("the app config changed across the restart and the deletions (-before +after):\n%s", diff)
	}

	replay(t, tl.snapshot(t), neverFewerServingWeb(3), migratedBeforeRun(), oneBeat())
	in.expectWorkloadsOn("v2")
}

// configData is the app config Secret's data.
func (in *instance) configData() map[string][]byte {
	in.t.Helper()
	s, err := in.cl.kube.CoreV1().Secrets(in.ns).Get(in.t.Context(), children.NamesFor(in.name).Config(), metav1.GetOptions{})
	if err != nil {
		in.t.Fatal(err)
	}
	return s.Data
}

// TestRedisIsNotRestartedByADeploy runs an instance with its own Redis, then bumps the version
// and changes a setting: every app pod is replaced, and the Redis pod is the same pod throughout
// (no event deletes it, its UID stays).
func TestRedisIsNotRestartedByADeploy(t *testing.T) {
	c := cluster(t)
	cl := clientsOf(c)
	ns := newNamespace(t, cl.kube, "redis")
	tl := record(t, cl.kube, ns)
	hook := startHook(t)
	startController(t, c, hook.URL(), standin.DynamicApply)

	spec := platformSpec("v1", 1)
	spec["redis"] = map[string]any{}
	in := apply(t, cl, ns, spec)
	in.waitReady("v1")
	before := redisPods(t, in)
	if len(before) != 1 {
		t.Fatalf("%d Redis pods before the deploy, want 1", len(before))
	}
	in.patchSpec(map[string]any{"version": "v2", "config": map[string]any{"DEBUG": true}})
	in.waitReady("v2")
	after := redisPods(t, in)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the Redis pod changed across a deploy (-before +after):\n%s", diff)
	}
	events := tl.snapshot(t)
	for _, e := range events {
		if p, ok := e.obj.(*corev1.Pod); ok && component(p) == string(children.Redis) && (e.typ == watch.Deleted || p.DeletionTimestamp != nil) {
			t.Errorf("the Redis pod %s was deleted during the deploy (rv %d)", p.Name, e.rv)
		}
	}
	if n := count(events, func(e event) bool {
		p, ok := e.obj.(*corev1.Pod)
		return ok && e.typ == watch.Added && component(p) == string(children.Web) && version(p) == "v2"
	}); n == 0 {
		t.Error("no web pod of v2 was created: the deploy can't have happened")
	}
}

// redisPods maps the instance's Redis pods to their UIDs.
func redisPods(t *testing.T, in *instance) map[string]string {
	t.Helper()
	pods, err := in.cl.kube.CoreV1().Pods(in.ns).List(t.Context(), metav1.ListOptions{LabelSelector: children.LabelComponent + "=" + string(children.Redis)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		out[p.Name] = string(p.UID)
	}
	return out
}
