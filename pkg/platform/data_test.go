package platform

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// childJSON is one child of a response by group and name, as JSON, or "" when it is absent.
func childJSON(t *testing.T, resp *metacontroller.SyncResponse, group, name string) string {
	t.Helper()
	for _, obj := range resp.Children {
		if r := refOf(obj); r.group == group && r.name == name {
			return string(encode(t, obj))
		}
	}
	return ""
}

func withRedis(s *v1beta1.Spec) { s.Redis = &v1beta1.Redis{} }

func findCondition(st v1beta1.Status, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(st.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// The Redis pod must survive every deploy: the version and the app's config never reach its
// template. (On a real cluster, its pod UID staying the same across a version bump is the same
// promise; that check needs the real-controller cluster.)
func TestRedisIsNotRestartedByADeployOrAConfigChange(t *testing.T) {
	c := installed(t, platform("car1-qa", withSpec(withRedis)))
	name := c.Parent.Name + "-redis"
	want := childJSON(t, c.Sync(hook(c)), GroupStatefulSet, name)
	if want == "" {
		t.Fatal("no Redis StatefulSet at Ready")
	}
	steps := []struct {
		what string
		do   func()
	}{
		{"a new version is asked for", func() { c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 }) }},
		{"its migration succeeds", func() { c.CompleteJob(jobFor(t, c, v2)) }},
		{"the workloads roll out on it", func() { c.RollOut() }},
		{"a setting changes", func() { c.EditSpec(func(s *v1beta1.Spec) { s.Config["SITE_NAME"] = v1beta1.StringValue("Car One") }) }},
		{"an input Secret changes", func() {
			c.SetRelatedSecret("car1-qa-inputs", map[string][]byte{"SENTRY_DSN": []byte("https://abc@sentry.example.com/1")})
			c.EditSpec(func(s *v1beta1.Spec) { s.Secrets = []string{"car1-qa-inputs"} })
		}},
	}
	for _, step := range steps {
		step.do()
		resp := c.Sync(hook(c))
		if got := childJSON(t, resp, GroupStatefulSet, name); got != want {
			t.Fatalf("after %s the Redis StatefulSet changed (-want +got):\n%s", step.what, cmp.Diff(want, got))
		}
	}
	if st := status(t, c.Sync(hook(c))); st.DeployedVersion != v2 {
		t.Fatalf("the history did not deploy %s: %s: %s", v2, st.Phase, st.Message)
	}
}

// A Redis setting rolls Redis and nothing else: the app's config file and workloads stay as they
// are, because the Redis URLs don't change with its size.
func TestARedisSettingChangeRollsOnlyRedis(t *testing.T) {
	c := installed(t, platform("car1-qa", withSpec(withRedis)))
	before := c.Sync(hook(c))
	c.EditSpec(func(s *v1beta1.Spec) { s.Redis.CacheMemory = ptr(resource.MustParse("1Gi")) })
	after := c.Sync(hook(c))

	var changed []string
	for _, obj := range after.Children {
		r := refOf(obj)
		if childJSON(t, before, r.group, r.name) != string(encode(t, obj)) {
			changed = append(changed, r.group+" "+r.name)
		}
	}
	slices.Sort(changed)
	want := []string{"Secret.v1 car1-qa-redis", "StatefulSet.apps/v1 car1-qa-redis"}
	if diff := cmp.Diff(want, changed); diff != "" {
		t.Errorf("children changed by a Redis setting (-want +got):\n%s", diff)
	}
	st := status(t, after)
	if st.Phase != v1beta1.PhaseDeploying || !strings.Contains(st.Message, "waiting for redis") {
		t.Errorf("while Redis rolls, want phase Deploying waiting for redis, got %s: %s", st.Phase, st.Message)
	}
	c.RollOut()
	if st := status(t, c.Sync(hook(c))); st.Phase != v1beta1.PhaseReady {
		t.Errorf("once Redis rolled out, want Ready, got %s: %s", st.Phase, st.Message)
	}
}

// Passwords reach Redis and Postgres through Secrets only: no derived password is in any child
// that is not a Secret, nor in the status.
func TestDataPasswordsAreOnlyInSecrets(t *testing.T) {
	c := installedOn(t, withCNPG(sim.NewCluster(qaWithOwnData("car1-qa"))))
	resp := c.Sync(hook(c))
	d, _ := credentials.NewDeriver(testKey)
	uid := string(c.Parent.UID)
	passwords := []string{d.Derive(uid, credentials.RedisPassword), d.Derive(uid, credentials.InClusterDatabasePassword)}
	for _, obj := range resp.Children {
		if obj["kind"] == "Secret" {
			continue
		}
		body := string(encode(t, obj))
		for _, pw := range passwords {
			if strings.Contains(body, pw) {
				t.Errorf("%s %s holds a password", obj["kind"], nameOf(obj))
			}
		}
	}
	for _, pw := range passwords {
		if strings.Contains(string(encode(t, resp.Status)), pw) {
			t.Error("the status holds a password")
		}
	}
}

func TestPlanDataSaysWhatIsMissing(t *testing.T) {
	external := &v1beta1.Redis{URLSecret: &v1beta1.SecretKeyRef{Name: "redis-url", Key: "REDIS_URL"}}
	tests := map[string]struct {
		spec       func(*v1beta1.Spec)
		env        func(*Env)
		related    map[string][]byte // the Secret redis-url, when set
		wantReason string
		wantErr    string
	}{
		"an own Redis without a Redis image": {
			spec: withRedis, env: func(e *Env) { e.Data.RedisImage = "" },
			wantReason: reasonProviderMissing, wantErr: "--redis-image",
		},
		"an own Redis without a credential key": {
			spec: withRedis, env: func(e *Env) { e.Credentials = credentials.Deriver{} },
			wantReason: reasonInputMissing, wantErr: "--credential-key-file",
		},
		"an external Redis whose Secret is missing": {
			spec:       func(s *v1beta1.Spec) { s.Redis = external },
			wantReason: reasonInputMissing, wantErr: "the Secret redis-url (spec.redis.urlSecret) was not found",
		},
		"an external Redis whose Secret lacks the key": {
			spec: func(s *v1beta1.Spec) { s.Redis = external }, related: map[string][]byte{"OTHER": []byte("x")},
			wantReason: reasonInputMissing, wantErr: "has no key REDIS_URL",
		},
		"an own Postgres without CloudNativePG": {
			spec:       func(s *v1beta1.Spec) { s.Database.InCluster = &v1beta1.InClusterDatabase{} },
			env:        func(e *Env) { e.Data.CNPG = nil },
			wantReason: reasonProviderMissing, wantErr: "manifests/cnpg",
		},
		"an own Postgres to retain without a retaining StorageClass": {
			spec:       func(s *v1beta1.Spec) { s.Database.InCluster = &v1beta1.InClusterDatabase{} },
			env:        func(e *Env) { e.Data.CNPG = &CNPG{OperatorNamespace: "cnpg-system"} },
			wantReason: reasonProviderMissing, wantErr: "--cnpg-retain-storage-class",
		},
		"an own Postgres without a credential key": {
			spec: func(s *v1beta1.Spec) {
				s.Database.InCluster = &v1beta1.InClusterDatabase{}
				s.DeletionPolicy = v1beta1.DeletionPolicyDelete
			},
			env:        func(e *Env) { e.Credentials = credentials.Deriver{} },
			wantReason: reasonInputMissing, wantErr: "--credential-key-file",
		},
	}
	for sentence, tc := range tests {
		t.Run(sentence, func(t *testing.T) {
			c := withCNPG(sim.NewCluster(platform("car1-qa", withSpec(tc.spec))))
			if tc.related != nil {
				c.SetRelatedSecret("redis-url", tc.related)
			}
			env := envFor(c)
			if tc.env != nil {
				tc.env(&env)
			}
			if env.Data.CNPG == nil {
				delete(c.Children, GroupPostgresCluster)
			}
			resp := Sync(c.Request(), env)
			st := status(t, resp)
			ready := findCondition(st, v1beta1.ConditionReady)
			if st.Phase != v1beta1.PhaseError || ready.Reason != tc.wantReason || !strings.Contains(st.Message, tc.wantErr) {
				t.Errorf("got %s (%s): %s; want Error (%s) saying %q", st.Phase, ready.Reason, st.Message, tc.wantReason, tc.wantErr)
			}
			if len(resp.Children) != 0 {
				t.Errorf("a fresh install refused still created %d children", len(resp.Children))
			}
		})
	}
}

func TestTheStorageClassOfAnOwnPostgres(t *testing.T) {
	tests := map[string]struct {
		spec     func(*v1beta1.Spec)
		observed string // the storage class of an observed Cluster; "-" for none observed
		want     string
	}{
		"Retain puts the volume on the hook's retaining StorageClass": {
			spec: func(*v1beta1.Spec) {}, observed: "-", want: "retained",
		},
		"Delete puts it on the cluster's default": {
			spec: func(s *v1beta1.Spec) { s.DeletionPolicy = v1beta1.DeletionPolicyDelete }, observed: "-", want: "",
		},
		"Delete with a class puts it on that class": {
			spec: func(s *v1beta1.Spec) {
				s.DeletionPolicy = v1beta1.DeletionPolicyDelete
				s.Database.InCluster.StorageClass = "fast"
			},
			observed: "-", want: "fast",
		},
		"an existing Cluster keeps the class its volume has": {
			spec: func(*v1beta1.Spec) {}, observed: "standard", want: "standard",
		},
	}
	for sentence, tc := range tests {
		t.Run(sentence, func(t *testing.T) {
			c := withCNPG(sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
				s.Database.InCluster = &v1beta1.InClusterDatabase{}
				tc.spec(s)
			}))))
			if tc.observed != "-" {
				c.Sync(hook(c))
				storage := c.Get(GroupPostgresCluster, "car1-qa-postgres")["spec"].(map[string]any)["storage"].(map[string]any)
				storage["storageClass"] = tc.observed
			}
			got := childJSON(t, c.Sync(hook(c)), GroupPostgresCluster, "car1-qa-postgres")
			var cluster struct {
				Spec struct {
					Storage struct {
						StorageClass string `json:"storageClass"`
					} `json:"storage"`
				} `json:"spec"`
			}
			if err := json.Unmarshal([]byte(got), &cluster); err != nil {
				t.Fatal(err)
			}
			if cluster.Spec.Storage.StorageClass != tc.want {
				t.Errorf("storageClass = %q, want %q", cluster.Spec.Storage.StorageClass, tc.want)
			}
		})
	}
}

// The migration gate waits for the own Postgres; once it has migrated, the Postgres going down
// keeps every workload running.
func TestTheMigrationWaitsForTheOwnPostgres(t *testing.T) {
	c := withCNPG(sim.NewCluster(qaWithOwnData("car1-qa")))
	syncTimes(c, 3)
	if jobs := c.MigrationJobs(); len(jobs) > 0 {
		t.Fatalf("a migration Job before the Postgres is ready: %v", jobs)
	}
	c.PostgresReady()
	c.Sync(hook(c))
	c.CompleteJob(onlyJob(t, c))
	syncTimes(c, 2)
	c.RollOut()
	if st := status(t, c.Sync(hook(c))); st.Phase != v1beta1.PhaseReady {
		t.Fatalf("want Ready, got %s: %s", st.Phase, st.Message)
	}
	c.PostgresUnready()
	req := c.Request()
	resp := Sync(req, envFor(c))
	if dropped := droppedWorkloads(req, resp); len(dropped) > 0 {
		t.Errorf("the Postgres going down dropped %v", dropped)
	}
	if st := status(t, resp); st.Phase != v1beta1.PhaseDeploying || !strings.Contains(st.Message, "postgres") {
		t.Errorf("with the Postgres down, want Deploying waiting for postgres, got %s: %s", st.Phase, st.Message)
	}
}

// The groups the simulated CompositeController declares are the core's, with and without the
// manifests/cnpg component; a hook with CloudNativePG refuses a request without CNPG's Cluster.
func TestDeclaredGroupsFollowTheHooksCNPG(t *testing.T) {
	without := sim.NewCluster(platform("car1-qa"))
	with := withCNPG(sim.NewCluster(platform("car1-qa")))
	for _, tc := range []struct {
		c    *sim.Cluster
		data DataServices
	}{{without, DataServices{}}, {with, DataServices{CNPG: testCNPG}}} {
		var got []string
		for g := range tc.c.Request().Children {
			got = append(got, g)
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(DeclaredGroups(tc.data))), slices.Sorted(slices.Values(got))); diff != "" {
			t.Errorf("sim and DeclaredGroups disagree (-core +sim):\n%s", diff)
		}
	}
	if sim.PostgresCluster != GroupPostgresCluster {
		t.Errorf("sim.PostgresCluster = %q, want %q", sim.PostgresCluster, GroupPostgresCluster)
	}
	env := testEnv(goldenClock)
	env.Data.CNPG = testCNPG
	st := status(t, Sync(without.Request(), env))
	if r := findCondition(st, v1beta1.ConditionReady); r.Reason != reasonChildrenMissing || !strings.Contains(st.Message, GroupPostgresCluster) {
		t.Errorf("a hook with CNPG and a request without its group: got %s: %s", r.Reason, st.Message)
	}
}

// Moving from an own Redis to an external one drops the four Redis children and changes the app's
// config file, and so the config hash in the app pod templates; nothing else moves.
func TestSwitchingToAnExternalRedisDropsItsChildrenAndMovesOnlyTheConfig(t *testing.T) {
	c := installed(t, platform("car1-qa", withSpec(withRedis)))
	before := c.Sync(hook(c))
	c.SetRelatedSecret("redis-url", map[string][]byte{"REDIS_URL": []byte("rediss://:token@car1.cache.example.internal:6379/0")})
	c.EditSpec(func(s *v1beta1.Spec) {
		s.Redis = &v1beta1.Redis{URLSecret: &v1beta1.SecretKeyRef{Name: "redis-url", Key: "REDIS_URL"}}
	})
	after := c.Sync(hook(c))

	var dropped, changed []string
	for _, obj := range before.Children {
		r := refOf(obj)
		switch now := childJSON(t, after, r.group, r.name); {
		case now == "":
			dropped = append(dropped, r.group+" "+r.name)
		case now != string(encode(t, obj)):
			changed = append(changed, r.group+" "+r.name)
		}
	}
	slices.Sort(dropped)
	slices.Sort(changed)
	wantDropped := []string{
		"NetworkPolicy.networking.k8s.io/v1 car1-qa-redis", "Secret.v1 car1-qa-redis",
		"Service.v1 car1-qa-redis", "StatefulSet.apps/v1 car1-qa-redis",
	}
	if diff := cmp.Diff(wantDropped, dropped); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	wantChanged := []string{
		"Deployment.apps/v1 car1-qa-celeryd", "Deployment.apps/v1 car1-qa-channel-worker", "Deployment.apps/v1 car1-qa-daphne",
		"Deployment.apps/v1 car1-qa-static", "Deployment.apps/v1 car1-qa-web", "Secret.v1 car1-qa-config",
		"StatefulSet.apps/v1 car1-qa-celerybeat",
	}
	if diff := cmp.Diff(wantChanged, changed); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
	if len(after.Children)+len(dropped) != len(before.Children) {
		t.Errorf("the switch added children: %d before, %d after, %d dropped", len(before.Children), len(after.Children), len(dropped))
	}
	// What changed in the workloads is the config hash alone (and the build inputs the template
	// records, which include it).
	for _, name := range []string{"car1-qa-web", "car1-qa-celeryd"} {
		b := childJSON(t, before, GroupDeployment, name)
		a := childJSON(t, after, GroupDeployment, name)
		a = strings.ReplaceAll(a, templateAnnotation(t, a, AnnotationBuildInputs), templateAnnotation(t, b, AnnotationBuildInputs))
		if strings.ReplaceAll(a, configHashOf(t, a), configHashOf(t, b)) != b {
			t.Errorf("Deployment %s changed beyond its config hash", name)
		}
	}
}

func configHashOf(t *testing.T, deployment string) string {
	t.Helper()
	return templateAnnotation(t, deployment, children.AnnotationConfigHash)
}

func templateAnnotation(t *testing.T, deployment, key string) string {
	t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(deployment), &d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Metadata.Annotations[key]
}
