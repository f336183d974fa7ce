package platform

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/gate"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

var (
	histories = flag.Int("histories", 10000, "how many generated request histories the property tests run")
	seed      = flag.Uint64("seed", 20261127, "seed of the generated histories; a failure prints the seed and history that reproduce it")
)

var versionPool = []string{v1, v2, "109100-77e0f13-release-2019-10", "109177-0c3d2aa-hotfix-2019-10"}

// history is one generated run of events on a simulated cluster, with the ground truth the
// invariants are checked against.
type history struct {
	t        *testing.T
	id       int
	rng      *rand.Rand
	c        *sim.Cluster
	migrated map[string]bool // versions whose migration Job has succeeded at some point
	// backups: the instance is on the shared Postgres, with a hook that backs it up (backupEnv).
	backups bool
	log     []string
	// redisTemplates are the Redis pod templates built so far, by the Redis settings they were
	// built for: the template may depend on nothing else.
	redisTemplates map[string]string
	// failure records the first broken promise when the history runs without a testing.T, to
	// prove that the checks can fail.
	failure string
}

func (h *history) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if h.t == nil {
		if h.failure == "" {
			h.failure = msg
		}
		return
	}
	if h.t != nil {
		h.t.Helper()
	}
	h.t.Fatalf("history %d (go test ./pkg/platform -run TestProperties -seed %d): %s\nevents:\n  %s",
		h.id, *seed, msg, strings.Join(h.log, "\n  "))
}

// TestProperties runs generated histories of events (Jobs succeeding and failing, rollouts,
// version changes, pauses, invalid specs, lost statuses, deleted children, legacy beats, requests
// missing a child group) and checks after every sync that the response keeps Summon's promises.
func TestProperties(t *testing.T) {
	n := *histories
	if testing.Short() {
		n = 500
	}
	// Histories are independent: shards run them on every core. Each history's seed is its own
	// number, so the sharding doesn't change what runs.
	const shards = 8
	for s := range shards {
		t.Run(fmt.Sprintf("shard-%d", s), func(t *testing.T) {
			t.Parallel()
			for i := s; i < n; i += shards {
				h := newHistory(t, i)
				steps := 6 + h.rng.IntN(14)
				for range steps {
					h.step()
				}
				h.converge()
			}
		})
	}
}

func newHistory(t *testing.T, id int) *history {
	rng := rand.New(rand.NewPCG(*seed, uint64(id)))
	p := platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
		s.Version = versionPool[rng.IntN(2)]
		s.Replicas.Web = ptr(int32(1 + rng.IntN(3)))
		s.Replicas.CeleryBeat = ptr(int32(rng.IntN(2)))
		if rng.IntN(4) == 0 {
			s.Hostname = ""
		}
		if rng.IntN(4) == 0 {
			s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 2, MaxReplicas: 6}
		}
		// The data services add children, and children are most of what a history costs: each
		// is in a quarter of the histories (spec.redis is also switched by events).
		switch rng.IntN(8) {
		case 0, 1:
			s.Redis = &v1beta1.Redis{}
		case 2:
			s.Redis = externalRedis()
		}
		if rng.IntN(4) == 0 {
			// A QA instance with its own Postgres: with Redis too, it needs no input Secret.
			s.Database.InCluster = &v1beta1.InClusterDatabase{}
			s.DeletionPolicy = []v1beta1.DeletionPolicy{v1beta1.DeletionPolicyDelete, v1beta1.DeletionPolicyRetain}[rng.IntN(2)]
		}
	}))
	backups := false
	if p.Spec.Database.InCluster == nil && rng.IntN(4) == 0 {
		// An instance on the shared Postgres whose hook takes a backup before each migration.
		backups = true
		p.Spec.Database.Shared = &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}
		p.Spec.Backups.BeforeMigration = []v1beta1.BackupPolicy{"", v1beta1.BackupRequired, v1beta1.BackupBestEffort}[rng.IntN(3)]
	}
	c := sim.NewCluster(p)
	// The external Redis's Secret exists from the start, so that a switch to it can converge.
	c.SetRelatedSecret(externalRedis().URLSecret.Name, map[string][]byte{"REDIS_URL": []byte("redis://:token@redis.example.internal:6379/0")})
	switch {
	case p.Spec.Database.InCluster != nil && rng.IntN(2) == 0:
		// A hook that snapshots own Postgres before each migration (CNPG's Backup).
		withCNPGSnapshots(c)
		c.Parent.Spec.Backups.BeforeMigration = []v1beta1.BackupPolicy{"", v1beta1.BackupRequired, v1beta1.BackupBestEffort}[rng.IntN(3)]
	case p.Spec.Database.InCluster != nil || rng.IntN(4) == 0:
		withCNPG(c)
	}
	return &history{t: t, id: id, rng: rng, c: c, migrated: map[string]bool{}, backups: backups}
}

func externalRedis() *v1beta1.Redis {
	return &v1beta1.Redis{URLSecret: &v1beta1.SecretKeyRef{Name: "car1-qa-redis-url", Key: "REDIS_URL"}}
}

// step applies one random event, then syncs and checks the response.
func (h *history) step() {
	if h.t != nil {
		h.t.Helper()
	}
	c := h.c
	var drop string
	switch h.rng.IntN(24) {
	case 0, 1, 2:
		h.log = append(h.log, "sync")
	case 3:
		if j := h.pickJob(false); j != "" {
			h.log = append(h.log, "job "+j+" succeeds")
			h.succeeded(j)
		}
	case 4:
		if j := h.pickJob(false); j != "" {
			h.log = append(h.log, "job "+j+" fails")
			c.FailJob(j)
		}
	case 5, 6:
		h.log = append(h.log, "every workload rolls out")
		c.RollOut()
	case 7:
		v := versionPool[h.rng.IntN(len(versionPool))]
		h.log = append(h.log, "spec.version = "+v)
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = v })
	case 8:
		h.log = append(h.log, "spec.migrations.attempt++")
		c.EditSpec(func(s *v1beta1.Spec) { s.Migrations.Attempt++ })
	case 9:
		h.log = append(h.log, "toggle spec.paused")
		c.EditSpec(func(s *v1beta1.Spec) { s.Paused = !s.Paused })
	case 10:
		h.log = append(h.log, "toggle an invalid spec (celeryBeat 2)")
		c.EditSpec(func(s *v1beta1.Spec) {
			if *s.Replicas.CeleryBeat == 2 {
				s.Replicas.CeleryBeat = ptr(int32(1))
			} else {
				s.Replicas.CeleryBeat = ptr(int32(2))
			}
		})
	case 11:
		h.log = append(h.log, "config change")
		c.EditSpec(func(s *v1beta1.Spec) { s.Config["STEP"] = v1beta1.NumberValue(float64(h.rng.IntN(1000))) })
	case 12:
		if c.Get(GroupDeployment, c.Parent.Name+"-beat") == nil {
			h.log = append(h.log, "a legacy beat Deployment appears")
			addLegacyBeat(h.t, c)
		}
	case 13:
		if names := c.Names(); len(names) > 0 {
			victim := names[h.rng.IntN(len(names))]
			h.log = append(h.log, "deleted by hand: "+victim)
			parts := strings.SplitN(victim, " ", 2)
			delete(c.Children[parts[0]], parts[1])
		}
	case 14:
		h.log = append(h.log, "status lost")
		c.Parent.Status = v1beta1.Status{}
	case 15:
		groups := DeclaredGroups(envFor(c).Data)
		drop = groups[h.rng.IntN(len(groups))]
		h.log = append(h.log, "request misses "+drop)
	case 16:
		h.log = append(h.log, "toggle autoscaling of web")
		c.EditSpec(func(s *v1beta1.Spec) {
			if s.Autoscaling.Web != nil {
				s.Autoscaling.Web = nil
			} else {
				s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 2, MaxReplicas: 6}
			}
		})
	case 17:
		web := children.NamesFor(c.Parent.Name).Of(children.Web)
		if c.Parent.Spec.Autoscaling.Web != nil && c.Get(GroupDeployment, web) != nil {
			n := int64(2 + h.rng.IntN(5))
			h.log = append(h.log, fmt.Sprintf("the HPA scales web to %d", n))
			c.Scale(GroupDeployment, web, n)
		}
	case 18:
		h.log = append(h.log, "CNPG reports the Postgres ready")
		c.PostgresReady()
	case 19:
		h.log = append(h.log, "CNPG reports the Postgres down")
		c.PostgresUnready()
	case 20:
		c.EditSpec(func(s *v1beta1.Spec) {
			switch {
			case s.Redis == nil:
				s.Redis = &v1beta1.Redis{}
			case s.Redis.InCluster():
				s.Redis = externalRedis()
			default:
				s.Redis = nil
			}
		})
		h.log = append(h.log, fmt.Sprintf("spec.redis = %s", redisMode(c.Parent.Spec.Redis)))
	case 22:
		if b := h.pickPostgresBackup(); b != "" {
			h.log = append(h.log, "CNPG completes Backup "+b)
			c.CompletePostgresBackup(b)
		}
	case 23:
		if b := h.pickPostgresBackup(); b != "" {
			h.log = append(h.log, "CNPG fails Backup "+b)
			c.FailPostgresBackup(b, "the snapshot failed")
		}
	case 21:
		if c.Parent.Spec.Redis.InCluster() {
			m := resource.MustParse([]string{"64Mi", "128Mi", "256Mi"}[h.rng.IntN(3)])
			h.log = append(h.log, "spec.redis.cacheMemory = "+m.String())
			c.EditSpec(func(s *v1beta1.Spec) { s.Redis.CacheMemory = &m })
		}
	}
	h.syncAndCheck(drop)
}

// succeeded completes a Job; a migration Job's version is then migrated.
func (h *history) succeeded(j string) {
	if l := labelsOf(h.c.Get(GroupJob, j)); l[children.LabelComponent] == string(children.Migrations) {
		h.migrated[l[children.LabelVersion]] = true
	}
	h.c.CompleteJob(j)
}

// env is the hook's Env for a request of this history: with backups, the one of backupEnv,
// calling outside only when PlanEnsure asks.
func (h *history) env(req *metacontroller.SyncRequest) Env {
	if !h.backups {
		return envFor(h.c)
	}
	env := backupEnv(h.c.Clock)
	if !PlanEnsure(req, env).Needed {
		env.Outside.Ensured = nil
	}
	return env
}

// pickJob picks an observed migration or backup Job that has not finished, or "".
func (h *history) pickJob(finished bool) string {
	var open []string
	for _, name := range append(h.c.MigrationJobs(), h.c.BackupJobs()...) {
		if (jobState(h.c.Get(GroupJob, name)) != "") == finished {
			open = append(open, name)
		}
	}
	if len(open) == 0 {
		return ""
	}
	return open[h.rng.IntN(len(open))]
}

// pickPostgresBackup picks an observed CNPG Backup that has not finished, or "".
func (h *history) pickPostgresBackup() string {
	var open []string
	h.c.Each(GroupPostgresBackup, func(_ string, obj metacontroller.Object) {
		if !postgresBackupDone(obj) {
			open = append(open, nameOf(obj))
		}
	})
	if len(open) == 0 {
		return ""
	}
	return open[h.rng.IntN(len(open))]
}

func postgresBackupDone(obj metacontroller.Object) bool {
	b, _ := PostgresBackupOf(labelsOf(obj)[children.LabelInstance], obj)
	return b.State != gate.JobActive
}

func jobState(obj metacontroller.Object) string {
	st, _ := obj["status"].(map[string]any)
	conds, _ := st["conditions"].([]any)
	for _, c := range conds {
		if m := c.(map[string]any); m["type"] == "Complete" || m["type"] == "Failed" {
			return m["type"].(string)
		}
	}
	return ""
}

func (h *history) syncAndCheck(dropGroup string) *metacontroller.SyncResponse {
	if h.t != nil {
		h.t.Helper()
	}
	req := h.c.Request()
	if dropGroup != "" {
		delete(req.Children, dropGroup)
	}
	resp := Sync(req, h.env(req))
	h.check(req, resp)
	h.c.Apply(resp)
	return resp
}

func redisMode(r *v1beta1.Redis) string {
	switch {
	case r == nil:
		return "none"
	case r.InCluster():
		return "own"
	}
	return "external"
}

// check holds every response to the invariants.
func (h *history) check(req *metacontroller.SyncRequest, resp *metacontroller.SyncResponse) {
	if h.t != nil {
		h.t.Helper()
	}
	body, err := json.Marshal(resp)
	if err != nil {
		h.failf("response does not encode: %v", err)
	}
	if resp.Status == nil || resp.Children == nil || !bytes.Contains(body, []byte(`"children":[`)) {
		h.failf("response has no status or a null children list: %s", body[:min(len(body), 300)])
	}
	st := resp.Status.(v1beta1.Status)

	// Never more than one beat replica desired.
	beats := int32(0)
	for _, obj := range resp.Children {
		ref := refOf(obj)
		if (ref.group == GroupDeployment || ref.group == GroupStatefulSet) && isBeat(ref, obj) {
			beats += specReplicas(obj)
		}
	}
	if beats > 1 {
		h.failf("%d beat replicas desired", beats)
	}

	// Never a workload on a version whose migration has not succeeded. Redis runs no app image.
	for _, obj := range resp.Children {
		ref := refOf(obj)
		l := labelsOf(obj)
		if (ref.group == GroupDeployment || ref.group == GroupStatefulSet) && l[children.LabelManagedBy] == "summon" &&
			l[children.LabelComponent] != string(children.Redis) {
			if v := l[children.LabelVersion]; !h.migrated[v] {
				h.failf("%s %s runs version %q, whose migrations never succeeded (migrated: %v)", ref.group, ref.name, v, h.migrated)
			}
		}
	}
	if st.MigratedVersion != "" && !h.migrated[st.MigratedVersion] {
		h.failf("status.migratedVersion is %q, whose migrations never succeeded", st.MigratedVersion)
	}

	// Never an observed workload dropped while phase is Error or the spec is paused.
	var par struct {
		Spec v1beta1.Spec `json:"spec"`
	}
	_ = json.Unmarshal(req.Parent, &par)
	if st.Phase == v1beta1.PhaseError || par.Spec.Paused {
		if dropped := droppedWorkloads(req, resp); len(dropped) > 0 {
			h.failf("phase %s (paused %v) dropped observed %v", st.Phase, par.Spec.Paused, dropped)
		}
	}

	// Every app Deployment states its replicas: one that leaves the answer is dropped by
	// Metacontroller's merge and defaulted to 1 by the API server.
	for _, obj := range resp.Children {
		if ref := refOf(obj); ref.group == GroupDeployment && labelsOf(obj)[children.LabelManagedBy] == "summon" {
			if spec, _ := obj["spec"].(map[string]any); spec["replicas"] == nil {
				h.failf("Deployment %s states no replicas", ref.name)
			}
		}
	}
	h.checkAutoscaledWeb(req, resp)

	// One migration at a time: no new Job while another is running.
	var running []string
	for _, obj := range req.Children[GroupJob] {
		if jobState(obj) == "" {
			running = append(running, nameOf(obj))
		}
	}
	for _, obj := range req.Children[GroupPostgresBackup] {
		if !postgresBackupDone(obj) {
			running = append(running, "CNPG Backup "+nameOf(obj))
		}
	}
	// No migration before the instance's own Postgres is ready: its Job would fail on a
	// database that doesn't answer.
	ns := h.c.Parent.Namespace
	p := children.NewPlatform(h.c.Parent.Name, ns, par.Spec)
	for _, obj := range resp.Children {
		ref := refOf(obj)
		if ref.group != GroupJob || req.Children[GroupJob][ns+"/"+ref.name] != nil {
			continue
		}
		if len(running) > 0 {
			h.failf("new migration Job %s while %v still runs", ref.name, running)
		}
		if par.Spec.Database.InCluster != nil && !postgresReady(observedPostgres(p, req.Children)) {
			h.failf("new migration Job %s while the instance's Postgres is not ready", ref.name)
		}
	}

	// The Redis pod template depends on the Redis settings alone: a deploy, a config change or
	// anything else leaves it as it was. (A frozen answer returns the template as observed.)
	frozenAnswer := st.Phase == v1beta1.PhaseError || par.Spec.Paused
	for _, obj := range resp.Children {
		if ref := refOf(obj); !frozenAnswer && ref.group == GroupStatefulSet && ref.name == p.Names.Of(children.Redis) {
			spec, _ := obj["spec"].(map[string]any)
			tpl, _ := json.Marshal(spec["template"])
			r := par.Spec.Redis
			size := fmt.Sprint(r.CacheMemory, r.ChannelsMemory)
			if was, ok := h.redisTemplates[size]; ok && was != string(tpl) {
				h.failf("the Redis pod template changed while its settings (%s) did not:\nwas %s\nnow %s", size, was, tpl)
			}
			if h.redisTemplates == nil {
				h.redisTemplates = map[string]string{}
			}
			h.redisTemplates[size] = string(tpl)
		}
	}

	// The same request gives the same bytes (checked on a sample: it costs a second sync).
	if len(h.log)%8 == 0 {
		again, _ := json.Marshal(Sync(req, h.env(req)))
		if !bytes.Equal(body, again) {
			h.failf("the same request gave two different responses")
		}
	}
}

// checkAutoscaledWeb: while an HPA scales web, an answer never asks for fewer web pods than
// run (unless more run than maxReplicas allows) and never for more (unless fewer run than
// minReplicas): it neither cuts a running instance down nor fights the HPA.
func (h *history) checkAutoscaledWeb(req *metacontroller.SyncRequest, resp *metacontroller.SyncResponse) {
	var par struct {
		Spec v1beta1.Spec `json:"spec"`
	}
	if json.Unmarshal(req.Parent, &par) != nil || par.Spec.Autoscaling.Web == nil {
		return
	}
	hpa := par.Spec.Autoscaling.Web
	web := children.NamesFor(h.c.Parent.Name).Of(children.Web)
	observed := req.Children[GroupDeployment][h.c.Parent.Namespace+"/"+web]
	if observed == nil {
		return
	}
	running := specReplicas(observed)
	for _, obj := range resp.Children {
		if ref := refOf(obj); ref.group != GroupDeployment || ref.name != web {
			continue
		}
		lo, hi := min(running, hpa.MaxReplicas), max(running, hpa.MinReplicas)
		if got := specReplicas(obj); got < lo || got > hi {
			h.failf("web runs %d with an HPA of %d to %d, and the answer asks for %d", running, hpa.MinReplicas, hpa.MaxReplicas, got)
		}
	}
}

// converge lifts every fault and lets the instance settle: it must reach Ready, and then the
// status must stop changing (a status that changed on every sync would make Metacontroller loop).
func (h *history) converge() {
	if h.t != nil {
		h.t.Helper()
	}
	c := h.c
	c.EditSpec(func(s *v1beta1.Spec) {
		s.Paused = false
		if *s.Replicas.CeleryBeat == 2 {
			s.Replicas.CeleryBeat = ptr(int32(1))
		}
	})
	h.log = append(h.log, "-- faults lifted; settling")
	var last v1beta1.Status
	for round := range 12 {
		if j := h.pickJob(false); j != "" {
			h.succeeded(j)
		}
		if b := h.pickPostgresBackup(); b != "" {
			c.CompletePostgresBackup(b)
		}
		c.PostgresReady()
		c.RollOut()
		st := h.syncAndCheck("").Status.(v1beta1.Status)
		if st.Phase == v1beta1.PhaseError && strings.Contains(st.Message, "migrations of version") {
			c.EditSpec(func(s *v1beta1.Spec) { s.Migrations.Attempt++ })
		}
		if st.Phase == v1beta1.PhaseReady && round > 0 && statusEqual(st, last) {
			return
		}
		last = st
	}
	h.failf("did not settle on a steady Ready status: %s: %s", last.Phase, last.Message)
}

func statusEqual(a, b v1beta1.Status) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestPropertiesCanFail proves the invariant checks bite: a response that breaks each promise
// is caught.
func TestPropertiesCanFail(t *testing.T) {
	breakers := map[string]func(resp *metacontroller.SyncResponse){
		"a second beat replica": func(resp *metacontroller.SyncResponse) {
			for _, obj := range resp.Children {
				if refOf(obj).group == GroupStatefulSet {
					obj["spec"].(map[string]any)["replicas"] = 2
				}
			}
		},
		"a workload on an unmigrated version": func(resp *metacontroller.SyncResponse) {
			for _, obj := range resp.Children {
				if refOf(obj).group == GroupDeployment {
					obj["metadata"].(map[string]any)["labels"].(map[string]any)[children.LabelVersion] = "never-migrated"
				}
			}
		},
		"a null children list": func(resp *metacontroller.SyncResponse) { resp.Children = nil },
		"a Deployment that leaves replicas to the API server's default": func(resp *metacontroller.SyncResponse) {
			for _, obj := range resp.Children {
				if refOf(obj).group == GroupDeployment {
					delete(obj["spec"].(map[string]any), "replicas")
				}
			}
		},
	}
	for name, breakIt := range breakers {
		t.Run(name, func(t *testing.T) {
			c := installed(t, platform("car1-qa"))
			h := &history{c: c, migrated: map[string]bool{v1: true}}
			req := c.Request()
			resp := Sync(req, testEnv(c.Clock))
			h.check(req, resp)
			if h.failure != "" {
				t.Fatalf("an untouched response already breaks a promise: %s", h.failure)
			}
			breakIt(resp)
			h.check(req, resp)
			if h.failure == "" {
				t.Errorf("the invariant checks let %s through", name)
			}
		})
	}

	// The data services' promises, on a QA instance with its own Redis and Postgres whose next
	// version waits for its migration.
	dataBreakers := map[string]struct {
		breakIt func(c *sim.Cluster, resp *metacontroller.SyncResponse)
		want    string // what the failure names
	}{
		"a migration Job while the Postgres is down": {want: "Postgres is not ready", breakIt: func(c *sim.Cluster, resp *metacontroller.SyncResponse) {
			c.PostgresUnready()
			p := children.NewPlatform("car1-qa", "summon-qa", c.Parent.Spec.Defaulted(testEnv(c.Clock).Defaults))
			job, _ := children.ToObject(children.MigrationJob(p, children.Release{Version: v2}, 0))
			resp.Children = append(resp.Children, job)
		}},
		"a Redis pod template that moves with the version": {want: "Redis pod template changed", breakIt: func(_ *sim.Cluster, resp *metacontroller.SyncResponse) {
			for _, obj := range resp.Children {
				if ref := refOf(obj); ref.group == GroupStatefulSet && ref.name == "car1-qa-redis" {
					tpl := obj["spec"].(map[string]any)["template"].(map[string]any)
					tpl["metadata"].(map[string]any)["labels"].(map[string]any)[children.LabelVersion] = v2
				}
			}
		}},
	}
	for name, tc := range dataBreakers {
		t.Run(name, func(t *testing.T) {
			c := installedOn(t, withCNPG(sim.NewCluster(qaWithOwnData("car1-qa"))))
			h := &history{c: c, migrated: map[string]bool{v1: true}}
			h.check(c.Request(), Sync(c.Request(), envFor(c)))
			if h.failure != "" {
				t.Fatalf("an untouched response already breaks a promise: %s", h.failure)
			}
			c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
			resp := Sync(c.Request(), envFor(c))
			tc.breakIt(c, resp)
			h.check(c.Request(), resp)
			if !strings.Contains(h.failure, tc.want) {
				t.Errorf("the invariant checks let %s through (first failure: %q)", name, h.failure)
			}
		})
	}
}
