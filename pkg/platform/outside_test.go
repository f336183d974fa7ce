package platform

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

func TestPlanEnsure(t *testing.T) {
	outside := goldenOutside["externals-created"]
	steady := func(t *testing.T) *sim.Cluster {
		c := sim.NewCluster(platform("car1-qa"))
		converged(t, c, outside)
		return c
	}
	tests := map[string]struct {
		setup  func(t *testing.T) *sim.Cluster
		needed bool
	}{
		"a new instance calls out": {
			setup: func(t *testing.T) *sim.Cluster { return sim.NewCluster(platform("car1-qa")) }, needed: true,
		},
		"a steady instance makes no call": {setup: steady},
		"a spec change calls out": {
			setup: func(t *testing.T) *sim.Cluster {
				c := steady(t)
				c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(3)) })
				return c
			},
			needed: true,
		},
		"a lost credentials Secret calls out": {
			setup: func(t *testing.T) *sim.Cluster {
				c := steady(t)
				delete(c.Children[GroupSecret], "summon-qa/car1-qa-aws")
				return c
			},
			needed: true,
		},
		"a status that lost the condition calls out": {
			setup: func(t *testing.T) *sim.Cluster {
				c := steady(t)
				c.Parent.Status.Conditions = nil
				return c
			},
			needed: true,
		},
		"a paused instance makes no call": {
			setup: func(t *testing.T) *sim.Cluster {
				c := sim.NewCluster(platform("car1-qa"))
				c.EditSpec(func(s *v1beta1.Spec) { s.Paused = true })
				return c
			},
		},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			c := tt.setup(t)
			env := testEnv(c.Clock)
			env.Outside = outside
			env.Outside.Ensured = nil
			plan := PlanEnsure(c.Request(), env)
			if plan.Needed != tt.needed {
				t.Errorf("PlanEnsure needed = %v (%s), want %v", plan.Needed, plan.Reason, tt.needed)
			}
		})
	}
}

// TestSteadySyncsCallNothing runs 100 syncs of a Ready instance with every system switched on
// and counts the syncs that would call out: there must be none.
func TestSteadySyncsCallNothing(t *testing.T) {
	outside := goldenOutside["externals-created"]
	c := sim.NewCluster(platform("car1-qa"))
	converged(t, c, outside)
	calls := 0
	for range 100 {
		c.Sync(func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
			env := testEnv(c.Clock)
			env.Outside = outside
			env.Outside.Ensured = nil
			if PlanEnsure(req, env).Needed {
				calls++
				env.Outside.Ensured = outside.Ensured
			}
			return Sync(req, env)
		})
	}
	if calls != 0 {
		t.Errorf("%d of 100 steady syncs called out; want 0", calls)
	}
	if c.Parent.Status.Phase != v1beta1.PhaseReady {
		t.Errorf("phase %s after steady syncs: %s", c.Parent.Status.Phase, c.Parent.Status.Message)
	}
}

// TestFailingSystemBacksOff: while a system stays down, the retry interval grows and every child
// stays.
func TestFailingSystemBacksOff(t *testing.T) {
	c := sim.NewCluster(platform("car1-qa"))
	converged(t, c, goldenOutside["externals-created"])
	before := c.Names()
	c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(2)) })
	failing := goldenOutside["externals-failing"]
	var waits []float64
	for range 6 {
		c.Clock = c.Clock.Add(20 * time.Second)
		resp := c.Sync(func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
			env := testEnv(c.Clock)
			env.Outside = failing
			return Sync(req, env)
		})
		waits = append(waits, resp.ResyncAfterSeconds)
		if st := status(t, resp); st.Phase != v1beta1.PhaseError {
			t.Fatalf("phase %s, want Error", st.Phase)
		}
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] < waits[i-1] {
			t.Errorf("retry interval shrank: %v", waits)
		}
	}
	if waits[len(waits)-1] <= waits[0] {
		t.Errorf("retry interval did not grow: %v", waits)
	}
	if after := c.Names(); len(after) != len(before) {
		t.Errorf("children changed while failing:\nbefore %v\nafter  %v", before, after)
	}
}

// TestStatusNeverHoldsASecret looks for every secret Summon knows (derived passwords, SECRET_KEY,
// the IAM secret key) in the status of every golden response.
func TestStatusNeverHoldsASecret(t *testing.T) {
	for name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			var req metacontroller.SyncRequest
			readJSON(t, goldenDir+"/"+name+"/request.json", &req)
			env := goldenEnv(name)
			resp := Sync(&req, env)
			body := string(encode(t, resp.Status))
			par, _ := decodeParent(req.Parent)
			uid := string(par.meta.UID)
			secrets := []string{goldenOutside["externals-created"].Ensured.NewAccessKey.Secret}
			for _, purpose := range []string{credentials.DjangoSecretKey, credentials.DatabasePassword, credentials.RabbitMQPassword} {
				secrets = append(secrets, env.Credentials.Derive(uid, purpose))
			}
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("status holds a secret: %s", body)
				}
			}
		})
	}
}

func TestNoImageAnywhereIsAnErrorThatKeepsTheChildren(t *testing.T) {
	c := installed(t, platform("car1-qa"))
	env := testEnv(c.Clock)
	env.Defaults.Image = ""
	resp := Sync(c.Request(), env)
	st := status(t, resp)
	if st.Phase != v1beta1.PhaseError || !strings.Contains(st.Message, "--default-image") {
		t.Errorf("phase %s %q, want Error naming --default-image", st.Phase, st.Message)
	}
	if len(resp.Children) != len(c.Names()) {
		t.Errorf("kept %d of %d children", len(resp.Children), len(c.Names()))
	}
}

// TestStaleViewsAgreeOnPasswords: two hook replicas answer the same stale request (the config
// Secret not yet observed, the externals' record lost), at different times. Both write the same
// passwords into the config, and those are the passwords the providers set: derivation leaves no
// interleaving in which the Secret and RabbitMQ or Postgres disagree.
func TestStaleViewsAgreeOnPasswords(t *testing.T) {
	outside := goldenOutside["externals-created"]
	c := sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
		s.Database.Shared = &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}
	})))
	converged(t, c, outside)
	stale := c.Request()
	delete(stale.Children[GroupSecret], "summon-qa/car1-qa-config")

	configOf := func(at time.Time) (string, providerPasswords) {
		env := testEnv(at)
		env.Outside = outside
		plan := PlanEnsure(stale, env)
		resp := Sync(stale, env)
		for _, obj := range resp.Children {
			if nameOf(obj) == "car1-qa-config" {
				data := obj["data"].(map[string]any)
				return data["summon-platform.yml"].(string), providerPasswords{plan.Instance.DatabasePassword, plan.Instance.RabbitPassword}
			}
		}
		t.Fatal("no config Secret in the answer")
		return "", providerPasswords{}
	}
	first, set1 := configOf(c.Clock)
	second, set2 := configOf(c.Clock.Add(time.Hour))
	if first != second {
		t.Fatal("two replicas wrote different config files for the same instance")
	}
	if set1 != set2 {
		t.Fatal("two replicas would set different passwords in Postgres or RabbitMQ")
	}
	file := decodeBase64(t, first)
	for _, pw := range []string{set1.database, set1.rabbit} {
		if pw == "" || !strings.Contains(file, pw) {
			t.Errorf("the config file does not hold the password the providers set")
		}
	}
}

// providerPasswords are the passwords the providers would set.
type providerPasswords struct{ database, rabbit string }

func decodeBase64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
