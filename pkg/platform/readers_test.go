package platform

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/gate"
)

// The readers are what summonctl and the dashboard see of a status and of a Job: they must say
// what the hook itself concluded from the same objects.
func TestReadersAgreeWithTheHook(t *testing.T) {
	tests := map[string]struct {
		history    func(t *testing.T) *sim.Cluster
		failed     bool
		wantStates map[string]gate.JobState
	}{
		"a running migration has not failed": {
			history: func(t *testing.T) *sim.Cluster {
				c := sim.NewCluster(platform("car1-qa"))
				syncTimes(c, 2)
				return c
			},
			wantStates: map[string]gate.JobState{v1 + "/0": gate.JobActive},
		},
		"a failed migration of a new version has failed while the old one serves": {
			history: func(t *testing.T) *sim.Cluster {
				c := installed(t, platform("car1-qa"))
				c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
				c.Sync(hook(c))
				c.FailJob(jobFor(t, c, v2))
				c.Sync(hook(c))
				return c
			},
			failed:     true,
			wantStates: map[string]gate.JobState{v1 + "/0": gate.JobSucceeded, v2 + "/0": gate.JobFailed},
		},
		"a retry of the failed migration is no longer failed, and only the new attempt's Job and the record of the last migration are kept": {
			history: func(t *testing.T) *sim.Cluster {
				c := installed(t, platform("car1-qa"))
				c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
				c.Sync(hook(c))
				c.FailJob(jobFor(t, c, v2))
				c.Sync(hook(c))
				c.EditSpec(func(s *v1beta1.Spec) { s.Migrations.Attempt = 1 })
				c.Sync(hook(c))
				return c
			},
			wantStates: map[string]gate.JobState{v1 + "/0": gate.JobSucceeded, v2 + "/1": gate.JobActive},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := tc.history(t)
			if got := MigrationFailed(c.Parent.Status); got != tc.failed {
				t.Errorf("MigrationFailed = %v, want %v (status %s: %s)", got, tc.failed, c.Parent.Status.Phase, c.Parent.Status.Message)
			}
			got := map[string]gate.JobState{}
			for _, name := range c.MigrationJobs() {
				var j batchv1.Job
				if err := decodeTyped(c.Get(GroupJob, name), &j); err != nil {
					t.Fatal(err)
				}
				mj, ok := MigrationJobOf("car1-qa", &j)
				if !ok {
					t.Fatalf("%s is not read as a migration Job", name)
				}
				if _, other := MigrationJobOf("car1-qa-eu", &j); other {
					t.Errorf("%s is read as a migration Job of another instance", name)
				}
				got[mj.Version+"/"+strconv.Itoa(int(mj.Attempt))] = mj.State
			}
			if diff := cmp.Diff(tc.wantStates, got); diff != "" {
				t.Errorf("migration Jobs by version/attempt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadParentKeepsTheNameAndStatusOfASpecItCantRead(t *testing.T) {
	p, err := ReadParent([]byte(`{"metadata":{"name":"car1-qa","namespace":"summon-qa"},"spec":{"version":"v1","replicas":{"web":"two"}},"status":{"phase":"Ready","migratedVersion":"v1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Meta.Name != "car1-qa" || p.Status.MigratedVersion != "v1" || p.SpecErr == nil {
		t.Errorf("ReadParent = %+v", p)
	}
	if _, err := ReadParent([]byte(`{"metadata":{}}`)); err == nil {
		t.Error("a parent without a name reads without an error")
	}
}
