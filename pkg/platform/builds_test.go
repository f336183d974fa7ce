package platform

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// oldRevision stands for the builders of an earlier Summon release.
const oldRevision = "0ld0ld0ld0ld"

func init() {
	// An instance whose workloads an earlier release built (it set no enableServiceLinks): with no
	// wave open they keep their templates; replicas, the beat and everything else are today's.
	goldenCases["builders-held"] = func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		builtByAnEarlierRelease(t, c, oldRevision)
		return c.Request()
	}
	// The first release that records revisions meets workloads that record none: held too, so
	// that upgrading to it restarts nothing.
	goldenCases["builders-held-unrecorded"] = func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		builtByAnEarlierRelease(t, c, "")
		return c.Request()
	}
	// The user changes a setting of a held instance: every workload rolls at once, on today's
	// builders.
	goldenCases["builders-user-change-passes-through"] = func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		builtByAnEarlierRelease(t, c, oldRevision)
		c.EditSpec(func(s *v1beta1.Spec) { s.Config["SITE_NAME"] = v1beta1.StringValue("Car One QA") })
		return c.Request()
	}
	// A canary (tier=canary) in a wave of 0 percent that selects canaries: today's builders.
	goldenCases["builders-wave-open"] = func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withLabels(map[string]string{"tier": "canary"})))
		builtByAnEarlierRelease(t, c, oldRevision)
		return c.Request()
	}
}

// goldenWaves are the waves open in the golden cases; every other case runs with none.
var goldenWaves = map[string]Wave{
	"builders-wave-open": {Revision: BuilderRevision, Percent: 0, Selector: "tier=canary"},
}

func withLabels(l map[string]string) option {
	return func(p *v1beta1.SummonPlatform) { p.Labels = l }
}

// builtByAnEarlierRelease makes every app workload of the cluster look as an earlier release
// built it: a template without enableServiceLinks, recording revision (or none, and no inputs,
// when revision is ""). Both the stored object and Metacontroller's last-applied annotation change,
// as they would have been written by that release.
func builtByAnEarlierRelease(t *testing.T, c *sim.Cluster, revision string) {
	t.Helper()
	age := func(obj map[string]any) {
		tpl := templateOf(obj)
		delete(mapAt(tpl, "spec"), "enableServiceLinks")
		ann := mapAt(mapAt(tpl, "metadata"), "annotations")
		if revision == "" {
			delete(ann, AnnotationBuilderRevision)
			delete(ann, AnnotationBuildInputs)
		} else {
			ann[AnnotationBuilderRevision] = revision
		}
	}
	n := 0
	for _, g := range []string{GroupDeployment, GroupStatefulSet} {
		c.Each(g, func(_ string, obj metacontroller.Object) {
			if labelsOf(obj)[children.LabelComponent] == string(children.Redis) {
				return
			}
			n++
			age(obj)
			ann := mapAt(obj, "metadata")["annotations"].(map[string]any)
			var last map[string]any
			if err := json.Unmarshal([]byte(ann[children.LastAppliedAnnotation].(string)), &last); err != nil {
				t.Fatal(err)
			}
			age(last)
			b, err := json.Marshal(last)
			if err != nil {
				t.Fatal(err)
			}
			ann[children.LastAppliedAnnotation] = string(b)
		})
	}
	if n != len(children.AppComponents) {
		t.Fatalf("aged %d workloads, want the %d app workloads", n, len(children.AppComponents))
	}
}

// templates reads the pod template of every app workload of a response, by component.
func templates(t *testing.T, resp *metacontroller.SyncResponse) map[string]map[string]any {
	t.Helper()
	p := children.NewPlatform("car1-qa", "summon-qa", v1beta1.Spec{})
	out := map[string]map[string]any{}
	for _, obj := range resp.Children {
		if c, ok := workloadComponent(p, refOf(obj)); ok {
			out[string(c)] = templateOf(obj)
		}
	}
	return out
}

func revisionsOf(t *testing.T, resp *metacontroller.SyncResponse) map[string]string {
	t.Helper()
	out := map[string]string{}
	for c, tpl := range templates(t, resp) {
		out[c] = children.StringValues(mapAt(tpl, "metadata")["annotations"])[AnnotationBuilderRevision]
	}
	return out
}

func allRevisions(r string) map[string]string {
	out := map[string]string{}
	for _, c := range children.AppComponents {
		out[string(c)] = r
	}
	return out
}

func TestBuilderWaves(t *testing.T) {
	cases := map[string]struct {
		labels map[string]string
		wave   Wave
		edit   func(*v1beta1.Spec)
		// want is the builder revision each app workload's template gets.
		want     map[string]string
		wantHeld bool
	}{
		"with no wave open, a template only today's builders would change is held": {
			want: allRevisions(oldRevision), wantHeld: true,
		},
		"a wave for another revision opens nothing": {
			wave: Wave{Revision: "another", Percent: 100},
			want: allRevisions(oldRevision), wantHeld: true,
		},
		"a wave of 100 percent releases today's builders": {
			wave: Wave{Revision: BuilderRevision, Percent: 100},
			want: allRevisions(BuilderRevision),
		},
		"an urgent wave releases today's builders whatever its percent": {
			wave: Wave{Revision: BuilderRevision, Urgent: true},
			want: allRevisions(BuilderRevision),
		},
		"a canary selected by label is in the wave": {
			labels: map[string]string{"tier": "canary"},
			wave:   Wave{Revision: BuilderRevision, Selector: "tier=canary"},
			want:   allRevisions(BuilderRevision),
		},
		"an instance the selector doesn't match stays held": {
			labels: map[string]string{"tier": "standard"},
			wave:   Wave{Revision: BuilderRevision, Selector: "tier=canary"},
			want:   allRevisions(oldRevision), wantHeld: true,
		},
		"a user's config change gets today's builders at once": {
			edit: func(s *v1beta1.Spec) { s.Config["SITE_NAME"] = v1beta1.StringValue("new") },
			want: allRevisions(BuilderRevision),
		},
		"a user's resources change gets today's builders at once": {
			edit: func(s *v1beta1.Spec) { s.Gunicorn.Workers = 7 },
			want: allRevisions(BuilderRevision),
		},
		"a replica change is no reason to restart: templates stay held": {
			edit: func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(4)) },
			want: allRevisions(oldRevision), wantHeld: true,
		},
		"a new version waiting for its migrations keeps the held templates": {
			edit: func(s *v1beta1.Spec) { s.Version = v2 },
			want: allRevisions(oldRevision), wantHeld: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := installed(t, platform("car1-qa", withLabels(tc.labels)))
			builtByAnEarlierRelease(t, c, oldRevision)
			if tc.edit != nil {
				c.EditSpec(tc.edit)
			}
			env := envFor(c)
			env.Rollout = tc.wave
			resp := Sync(c.Request(), env)
			if diff := cmp.Diff(tc.want, revisionsOf(t, resp)); diff != "" {
				t.Errorf("builder revision of each template (-want +got):\n%s", diff)
			}
			st := status(t, resp)
			if st.Builders == nil || st.Builders.Held != tc.wantHeld || st.Builders.Available != BuilderRevision {
				t.Errorf("status.builders = %+v, want held %v with %s available", st.Builders, tc.wantHeld, BuilderRevision)
			}
			cond := meta.FindStatusCondition(st.Conditions, v1beta1.ConditionBuildersUpToDate)
			wantCond := metav1.ConditionTrue
			if tc.wantHeld {
				wantCond = metav1.ConditionFalse
			}
			if cond == nil || cond.Status != wantCond {
				t.Errorf("condition %s = %+v, want status %s", v1beta1.ConditionBuildersUpToDate, cond, wantCond)
			}
		})
	}
}

// A held template holds nothing else: the spec's replicas and the beat singleton apply as ever.
func TestHeldTemplatesStillTakeReplicasAndTheBeatCap(t *testing.T) {
	c := installed(t, platform("car1-qa"))
	builtByAnEarlierRelease(t, c, oldRevision)
	c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(4)); s.Replicas.CeleryBeat = ptr(int32(0)) })
	resp := Sync(c.Request(), envFor(c))
	if !status(t, resp).Builders.Held {
		t.Fatal("the instance is not held")
	}
	got := map[string]int32{}
	for _, obj := range resp.Children {
		switch refOf(obj) {
		case childRef{GroupDeployment, "car1-qa-web"}, childRef{GroupStatefulSet, "car1-qa-celerybeat"}:
			got[nameOf(obj)] = specReplicas(obj)
		}
	}
	want := map[string]int32{"car1-qa-web": 4, "car1-qa-celerybeat": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replicas of held workloads (-want +got):\n%s", diff)
	}
}

// Once a new version has migrated, the workloads move to it on today's builders: a version is a
// user's change.
func TestAVersionBumpRollsOnTodaysBuildersOnceMigrated(t *testing.T) {
	c := installed(t, platform("car1-qa"))
	builtByAnEarlierRelease(t, c, oldRevision)
	c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
	c.Sync(hook(c))
	c.CompleteJob(jobFor(t, c, v2))
	resp := c.Sync(hook(c))
	if diff := cmp.Diff(allRevisions(BuilderRevision), revisionsOf(t, resp)); diff != "" {
		t.Errorf("builder revision of each template (-want +got):\n%s", diff)
	}
}

// Steady on today's builders, a sync changes nothing whether a wave is open or not.
func TestTodaysTemplatesAreTheSameInAndOutOfTheWave(t *testing.T) {
	c := installed(t, platform("car1-qa"))
	out := Sync(c.Request(), envFor(c))
	env := envFor(c)
	env.Rollout = Wave{Revision: BuilderRevision, Percent: 100}
	in := Sync(c.Request(), env)
	if diff := cmp.Diff(templates(t, out), templates(t, in)); diff != "" {
		t.Errorf("templates out of and in the wave (-out +in):\n%s", diff)
	}
}

func TestWaveBucketsSpreadTheFleetAndWavesOnlyGrow(t *testing.T) {
	const n = 10000
	counts := make([]int, 101)
	for i := range n {
		uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		b := WaveBucket(uid)
		if b < 0 || b >= 100 {
			t.Fatalf("bucket %d of %s is outside [0, 100)", b, uid)
		}
		for pct := 0; pct <= 100; pct++ {
			if (Wave{Revision: "r", Percent: pct}).Open("r", uid, nil) {
				counts[pct]++
			}
		}
	}
	for pct := 1; pct <= 100; pct++ {
		if counts[pct] < counts[pct-1] {
			t.Errorf("a wave of %d%% opens %d instances, fewer than %d%% (%d)", pct, counts[pct], pct-1, counts[pct-1])
		}
	}
	// Each percent is a hundredth of the fleet, give or take: 5% of 10000 is 500.
	for _, pct := range []int{5, 25, 50} {
		if got, want := counts[pct], n*pct/100; got < want*8/10 || got > want*12/10 {
			t.Errorf("a wave of %d%% opens %d of %d instances, want about %d", pct, got, n, want)
		}
	}
	if counts[0] != 0 || counts[100] != n {
		t.Errorf("0%% opens %d and 100%% opens %d of %d", counts[0], counts[100], n)
	}
}

func TestWaveValidate(t *testing.T) {
	cases := map[string]struct {
		wave Wave
		ok   bool
	}{
		"a revision and a percent":          {Wave{Revision: "abc", Percent: 25}, true},
		"a canary selector":                 {Wave{Revision: "abc", Selector: "tier in (canary)"}, true},
		"no revision":                       {Wave{Percent: 25}, false},
		"more than 100 percent":             {Wave{Revision: "abc", Percent: 101}, false},
		"a negative percent":                {Wave{Revision: "abc", Percent: -1}, false},
		"a selector that is not a selector": {Wave{Revision: "abc", Selector: "tier in ("}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if err := tc.wave.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestBuilderRevisionIsAShortStableHash(t *testing.T) {
	if len(BuilderRevision) != 12 || builderRevision() != BuilderRevision {
		t.Errorf("BuilderRevision %q: want 12 hex digits, the same on every computation", BuilderRevision)
	}
}
