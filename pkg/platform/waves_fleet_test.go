package platform

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// TestAFleetTakesNewBuildersOnlyWaveByWave is the waves' fleet proof on the simulated cluster: 200
// instances Ready on an earlier release's builders, then this build's hook answering them with the
// waves of a release (none, 5%, 25%, 100%). After each sync round, the instances whose app
// templates changed are never more than the open wave holds, a user's version bump during the hold
// rolls that instance at once, and the last wave leaves no one behind. (The same on real
// controllers, with every watch event counted, is test/waves' job; see docs/upgrading.md.)
func TestAFleetTakesNewBuildersOnlyWaveByWave(t *testing.T) {
	// 40 keeps hack/test.sh's budget (200 take about a minute on a loaded 2-core machine):
	// SUMMON_WAVES_FLEET=200 go test ./pkg/platform -run TestAFleetTakesNewBuildersOnlyWaveByWave -v
	n := 40
	if s := os.Getenv("SUMMON_WAVES_FLEET"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 10 {
			t.Fatalf("SUMMON_WAVES_FLEET=%q: want a number of instances, at least 10", s)
		}
	}
	fleet := make([]*sim.Cluster, n)
	for i := range fleet {
		p := platform(fmt.Sprintf("car%d", i))
		p.UID = types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		if i%(n/4) == 0 {
			p.Labels = map[string]string{"tier": "canary"}
		}
		fleet[i] = installed(t, p)
		builtByAnEarlierRelease(t, fleet[i], oldRevision)
	}
	// The user of car7 bumps the version while the fleet is held.
	bumped := 7
	fleet[bumped].EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })

	onNew := func(c *sim.Cluster) bool {
		ok := true
		c.Each(GroupDeployment, func(_ string, obj metacontroller.Object) {
			if children.StringValues(mapAt(templateOf(obj), "metadata")["annotations"])[AnnotationBuilderRevision] != BuilderRevision {
				ok = false
			}
		})
		return ok
	}
	round := func(w Wave) (rolled int) {
		for i, c := range fleet {
			before := onNew(c)
			for range 3 {
				c.Sync(func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
					env := envFor(c)
					env.Rollout = w
					return Sync(req, env)
				})
				for _, name := range c.MigrationJobs() {
					if labelsOf(c.Get(GroupJob, name))[children.LabelVersion] == v2 {
						c.CompleteJob(name)
					}
				}
				c.RollOut()
			}
			if onNew(c) && !before {
				rolled++
				in := w.Open(BuilderRevision, string(c.Parent.UID), c.Parent.Labels)
				if !in && i != bumped {
					t.Errorf("%s took the new builders outside the wave %+v", c.Parent.Name, w)
				}
			}
		}
		return rolled
	}
	members := func(w Wave) (in int) {
		for _, c := range fleet {
			if w.Open(BuilderRevision, string(c.Parent.UID), c.Parent.Labels) {
				in++
			}
		}
		return in
	}

	if got := round(Wave{}); got != 1 || !onNew(fleet[bumped]) {
		t.Fatalf("with no wave open %d instances rolled; want only the one whose version was bumped", got)
	}
	total := 1
	for _, w := range []Wave{
		{Revision: BuilderRevision, Selector: "tier=canary"},
		{Revision: BuilderRevision, Percent: 5, Selector: "tier=canary"},
		{Revision: BuilderRevision, Percent: 25, Selector: "tier=canary"},
		{Revision: BuilderRevision, Percent: 100},
	} {
		got := round(w)
		total += got
		if want := members(w); total > want+1 {
			t.Errorf("wave %+v: %d instances on the new builders, more than its %d members and the bumped one", w, total, want)
		}
		t.Logf("wave %d%% (selector %q): %d rolled in this wave, %d of %d on the new builders", w.Percent, w.Selector, got, total, n)
	}
	if total != n {
		t.Errorf("after the last wave %d of %d instances run the new builders", total, n)
	}
}

// The build inputs a template records must hash alike from one release to the next: a release
// that changed this hash would make every instance look changed by its user, and roll the whole
// fleet at once. Change the expected value only knowing that.
func TestBuildInputsHashIsStableAcrossReleases(t *testing.T) {
	raw := []byte(`{"metadata":{"name":"car1"},"spec":{"version":"v1","hostname":"car1.example.com","replicas":{"web":3},"gunicorn":{"workers":4}}}`)
	par, err := decodeParent(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := inputsHash(inputsBase(par.rawSpec, v1beta1.HookDefaults{Image: "registry.example.com/app"}), children.Web, "v1", "0123456789abcdef")
	if want := "94d8ccfede82e9fb"; got != want {
		t.Errorf("inputsHash = %s, want %s", got, want)
	}
}
