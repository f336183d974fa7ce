package rollout

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/testing/mctest"
	"github.com/forklift-dev/summon/internal/testing/standin"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/platform"
)

// TestBuilderWavesOnRealControllers is the waves' proof on real controllers: a fleet Ready on the
// hook's builders (revision A), the hook replaced by a build whose builders add one annotation to
// every app pod template (revision B, build tag summon_builders_b), then waves of 5%, 25% and 100%
// written to the hook's --rollout-file. On every watch event of every instance, the instances whose
// web Deployment has taken revision B are members of the wave open at that moment (or the one
// whose user bumped its version during the hold, which rolls at once). SUMMON_WAVES_KWOK sets the
// fleet's size (6 by default).
func TestBuilderWavesOnRealControllers(t *testing.T) {
	n := 6
	if s := os.Getenv("SUMMON_WAVES_KWOK"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 2 {
			t.Fatalf("SUMMON_WAVES_KWOK=%q: want a number of instances, at least 2", s)
		}
	}
	c := cluster(t)
	cl := clientsOf(c)
	binB := buildHookB(t)
	rollout := filepath.Join(t.TempDir(), "rollout.yaml")
	hook := mctest.StartHook(t, []string{"--rollout-file=" + rollout})
	cc := mctest.CompositeController(t, hook.URL())
	// A short resync, so that an opened wave reaches every member within seconds.
	if err := unstructured.SetNestedField(cc.Object, int64(3), "spec", "resyncPeriodSeconds"); err != nil {
		t.Fatal(err)
	}
	startControllerOf(t, c, cc, standin.DynamicApply)

	fleet := make([]*instance, n)
	timelines := make([]*timeline, n)
	for i := range fleet {
		ns := newNamespace(t, cl.kube, "waves")
		timelines[i] = record(t, cl.kube, ns)
		fleet[i] = apply(t, cl, ns, platformSpec("v1", 1))
	}
	for _, in := range fleet {
		in.waitReady("v1")
	}
	revA := webRevision(t, fleet[0])
	if revA != platform.BuilderRevision {
		t.Fatalf("the fleet runs builder revision %q, want this build's %s", revA, platform.BuilderRevision)
	}

	hook.Replace(binB)
	var revB string
	for _, in := range fleet {
		st := in.waitStatus("held on revision A", func(_ *unstructured.Unstructured, st v1beta1.Status) bool {
			return st.Builders != nil && st.Builders.Held && st.Builders.Available != revA
		})
		revB = st.Builders.Available
	}

	// A user's version bump during the hold rolls that instance at once, onto revision B.
	bumped := fleet[n-1]
	bumped.patchSpec(map[string]any{"version": "v2"})
	bumped.waitReady("v2")
	if got := webRevision(t, bumped); got != revB {
		t.Errorf("the bumped instance's web template is on revision %q, want %s", got, revB)
	}

	uids := map[string]string{}
	for _, in := range fleet {
		p, _, err := in.get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		uids[in.ns] = string(p.GetUID())
	}
	type opened struct {
		after int64 // the resourceVersion before the wave was written
		wave  platform.Wave
	}
	var waves []opened
	for _, pct := range []int{5, 25, 100} {
		w := platform.Wave{Revision: revB, Percent: pct}
		waves = append(waves, opened{after: currentRV(t, cl), wave: w})
		b, _ := yaml.Marshal(w)
		if err := os.WriteFile(rollout+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(rollout+".tmp", rollout); err != nil {
			t.Fatal(err)
		}
		members := 0
		for _, in := range fleet {
			if !w.Open(revB, uids[in.ns], nil) {
				continue
			}
			members++
			in.waitStatus(fmt.Sprintf("rolled onto revision B in the %d%% wave", pct), func(p *unstructured.Unstructured, st v1beta1.Status) bool {
				return st.Builders != nil && !st.Builders.Held && st.Builders.Revision == revB && st.Phase == v1beta1.PhaseReady &&
					st.ObservedGeneration == p.GetGeneration()
			})
		}
		t.Logf("wave %d%%: %d of %d instances", pct, members, n)
	}

	// Replay every event of every instance in the order etcd wrote them.
	var all []struct {
		ns string
		event
	}
	for i, tl := range timelines {
		for _, e := range tl.snapshot(t) {
			all = append(all, struct {
				ns string
				event
			}{fleet[i].ns, e})
		}
	}
	slices.SortFunc(all, func(a, b struct {
		ns string
		event
	}) int {
		return int(a.rv - b.rv)
	})
	onB := map[string]bool{}
	peak := 0
	webName := children.NamesFor("car1").Of(children.Web)
	for _, e := range all {
		d, ok := e.obj.(*appsv1.Deployment)
		if !ok || d.Name != webName {
			continue
		}
		onB[e.ns] = d.Spec.Template.Annotations[platform.AnnotationBuilderRevision] == revB
		var open platform.Wave
		for _, w := range waves {
			if w.after < e.rv {
				open = w.wave
			}
		}
		count := 0
		for ns, b := range onB {
			if !b {
				continue
			}
			count++
			if ns != bumped.ns && !open.Open(revB, uids[ns], nil) {
				t.Errorf("at resourceVersion %d, %s is on revision B outside the open wave %+v", e.rv, ns, open)
			}
		}
		peak = max(peak, count)
	}
	if len(onB) != n || peak != n {
		t.Errorf("%d instances seen, %d on revision B at the end; want all %d", len(onB), peak, n)
	}
}

// buildHookB builds the hook with the builders of "revision B" (build tag summon_builders_b).
func buildHookB(t *testing.T) string {
	t.Helper()
	root, err := mctest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "summon-b")
	cmd := exec.Command("go", "build", "-tags", "summon_builders_b", "-o", bin, "./cmd/summon")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the hook with revision B's builders: %v\n%s", err, out)
	}
	return bin
}

// webRevision is the builder revision of an instance's web Deployment's pod template.
func webRevision(t *testing.T, in *instance) string {
	t.Helper()
	d, err := in.cl.kube.AppsV1().Deployments(in.ns).Get(t.Context(), children.NamesFor(in.name).Of(children.Web), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations[platform.AnnotationBuilderRevision]
}

// currentRV is the API server's resourceVersion now (etcd's global revision).
func currentRV(t *testing.T, cl clients) int64 {
	t.Helper()
	list, err := cl.kube.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv, err := strconv.ParseInt(list.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return rv
}
