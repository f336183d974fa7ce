// Package fleettest brings SummonPlatforms into each phase the dashboard shows by running
// Summon's core (platform.Sync) on the simulated cluster of internal/testing/sim, so that the
// dashboard's tests show statuses and children exactly as the hook writes them rather than
// hand-written ones. It is test support: nothing outside tests imports it.
package fleettest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// key is the credential master key of the simulated hook.
var key = []byte("summon-dashboard-test-key-0123456789abcdef")

// Env is the hook's environment at a time.
func Env(now time.Time) platform.Env {
	d, err := credentials.NewDeriver(key)
	if err != nil {
		panic(err)
	}
	return platform.Env{Now: now, Defaults: v1beta1.HookDefaults{Image: "registry.example.com/summon-platform"}, Credentials: d}
}

// Instance is one SummonPlatform on the simulated cluster, with the hook answering.
type Instance struct {
	*sim.Cluster
}

// New puts a SummonPlatform on a simulated cluster whose clock starts at start, with the input
// Secrets its spec names; nothing has synced it yet.
func New(p *v1beta1.SummonPlatform, start time.Time) *Instance {
	c := sim.NewCluster(p)
	c.Clock = start
	for _, name := range p.Spec.Secrets {
		c.SetRelatedSecret(name, map[string][]byte{"DATABASE_URL": []byte("postgres://" + p.Name + ":change-me@postgres:5432/" + p.Name)})
	}
	return &Instance{Cluster: c}
}

// Sync runs one round: the request Metacontroller would send, the hook's answer, applied.
func (in *Instance) Sync() v1beta1.Status {
	resp := in.Cluster.Sync(func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
		return platform.Sync(req, Env(in.Clock))
	})
	st, ok := resp.Status.(v1beta1.Status)
	if !ok {
		panic(fmt.Sprintf("the hook's status is a %T", resp.Status))
	}
	return st
}

// Phase is the status's phase now.
func (in *Instance) Phase() v1beta1.Phase { return in.Parent.Status.Phase }

// migrationJob is the Job of the spec's version and attempt.
func (in *Instance) migrationJob() string {
	s := in.Parent.Spec
	return children.NamesFor(in.Parent.Name).MigrationJob(s.Version, s.Migrations.Attempt)
}

// Migrating syncs until the spec's version migrates.
func (in *Instance) Migrating() *Instance {
	in.until(v1beta1.PhaseMigrating, func() bool { return in.Get(platform.GroupJob, in.migrationJob()) != nil })
	return in
}

// Deploying lets the migration succeed (migrating first if it has not started) and syncs until
// the workloads move to the version.
func (in *Instance) Deploying() *Instance {
	if in.Phase() != v1beta1.PhaseMigrating {
		in.Migrating()
	}
	in.CompleteJob(in.migrationJob())
	in.until(v1beta1.PhaseDeploying, nil)
	return in
}

// Ready rolls the workloads out (once they deploy) and syncs until the instance is Ready.
func (in *Instance) Ready() *Instance {
	if in.Phase() != v1beta1.PhaseDeploying {
		in.Deploying()
	}
	in.RollOut()
	in.until(v1beta1.PhaseReady, nil)
	return in
}

// MigrationFailed lets the spec's version's migration fail (migrating first if it has not
// started).
func (in *Instance) MigrationFailed() *Instance {
	if in.Phase() != v1beta1.PhaseMigrating {
		in.Migrating()
	}
	in.FailJob(in.migrationJob())
	in.until(v1beta1.PhaseError, nil)
	return in
}

// Upgrade asks for another version (after the instance is Ready) and syncs until it migrates.
func (in *Instance) Upgrade(version string) *Instance {
	in.EditSpec(func(s *v1beta1.Spec) { s.Version = version })
	return in.Migrating()
}

// Retry raises spec.migrations.attempt, as a user does once a failed migration's cause is fixed,
// and syncs until the new attempt migrates.
func (in *Instance) Retry() *Instance {
	in.EditSpec(func(s *v1beta1.Spec) { s.Migrations.Attempt++ })
	return in.Migrating()
}

// until syncs until the phase is reached (and done says so), a few rounds at most: the core
// settles in one or two.
func (in *Instance) until(want v1beta1.Phase, done func() bool) {
	for range 5 {
		if st := in.Sync(); st.Phase == want && (done == nil || done()) {
			return
		}
	}
	panic(fmt.Sprintf("%s did not reach %s: it is %s: %s", in.Parent.Name, want, in.Phase(), in.Parent.Status.Message))
}

// Status is the status the hook last wrote, as JSON would carry it to the API server.
func (in *Instance) Status() map[string]any {
	b, err := json.Marshal(in.Parent.Status)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// Workloads are the instance's Deployments, StatefulSets and Jobs as observed, with their
// status: what the workload and Job controllers would have written.
func (in *Instance) Workloads() []metacontroller.Object {
	var out []metacontroller.Object
	for _, g := range []string{platform.GroupDeployment, platform.GroupStatefulSet, platform.GroupJob} {
		in.Each(g, func(_ string, obj metacontroller.Object) { out = append(out, obj) })
	}
	return out
}
