package platform

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/sync from the scenarios")

// goldenDir holds one folder per case: request.json in, response.json out.
const goldenDir = "../../testdata/sync"

// goldenClock is the hook's clock in every golden case: later than anything in the requests, so a
// condition that changes status shows this time and one that doesn't keeps its own.
var goldenClock = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const (
	v1 = "108912-6e2f8b7-release-2019-8"
	v2 = "109004-a41c9d0-release-2019-9"
)

// goldenCases build each case's request through a history on the simulated cluster. With
// -update they are written to testdata; without, the committed request.json is what runs, so a
// hand-edited request is tested as it is.
var goldenCases = map[string]func(t *testing.T) *metacontroller.SyncRequest{
	// A new SummonPlatform: only the config Secret, Services and Ingress; no workload, no Job.
	"fresh-install": func(t *testing.T) *metacontroller.SyncRequest {
		return sim.NewCluster(platform("car1-qa")).Request()
	},
	// The config Secret now exists: the migration Job for the version starts.
	"migration-starts": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa"))
		c.Sync(hook(c))
		return c.Request()
	},
	"migration-running": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa"))
		syncTimes(c, 2)
		c.StartJob(onlyJob(t, c))
		return c.Request()
	},
	// The Job succeeded: migratedVersion is recorded and every workload is created on the version
	// in the same response; the Job stays until that status comes back.
	"migration-succeeded": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa"))
		syncTimes(c, 2)
		c.CompleteJob(onlyJob(t, c))
		return c.Request()
	},
	// migratedVersion has round-tripped, and the migration is on record in status.migrations: the
	// Job stays, for its logs, and no longer counts for anything but the record.
	"job-kept-as-record-after-round-trip": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa"))
		syncTimes(c, 2)
		c.CompleteJob(onlyJob(t, c))
		c.Sync(hook(c))
		return c.Request()
	},
	"steady-ready": func(t *testing.T) *metacontroller.SyncRequest {
		return installed(t, platform("car1-qa")).Request()
	},
	// A new version: its Job starts, every workload keeps the version it runs.
	"new-version-while-old-serves": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
		return c.Request()
	},
	// The new version's Job failed: phase Error, the old version keeps serving, the Job stays.
	"migration-failed": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
		c.Sync(hook(c))
		c.FailJob(jobFor(t, c, v2))
		return c.Request()
	},
	// Going back to a version that migrated before runs its migrations again (against today's
	// database) before any pod moves back: the invariant holds without a history of versions.
	"back-to-migrated-version": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
		c.Sync(hook(c))
		c.CompleteJob(jobFor(t, c, v2))
		syncTimes(c, 2)
		c.RollOut()
		c.Sync(hook(c))
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = v1 })
		return c.Request()
	},
	// Required on a database Summon doesn't back up (a URL from a Secret): Error, nothing moves.
	"backup-required-but-unavailable": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) { s.Backups.BeforeMigration = v1beta1.BackupRequired })))
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
		return c.Request()
	},
	"paused": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Paused = true; s.Version = v2; s.Replicas.Web = ptr(int32(5)) })
		return c.Request()
	},
	// A spec that slipped past the schema: Error, every child kept exactly as it was applied.
	"invalid-spec": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.CeleryBeat = ptr(int32(2)); s.Version = "release/2019-9" })
		return c.Request()
	},
	"beat-disabled": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.CeleryBeat = ptr(int32(0)) })
		return c.Request()
	},
	// A beat Deployment from an older layout is still there: Summon's beat waits at 0 replicas
	// while the old one is deleted.
	"legacy-beat-observed": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		addLegacyBeat(t, c)
		return c.Request()
	},
	// Autoscaling turned on for an instance running 5 web pods, inside the HPA's bounds: web keeps
	// its 5 (the answer states them, so Metacontroller's merge doesn't drop the field to 1), and
	// celeryd, running 1 with bounds 1 to 8, keeps its 1.
	"autoscaling-on-inside-the-bounds": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(5)) })))
		c.EditSpec(func(s *v1beta1.Spec) {
			s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 3, MaxReplicas: 10}
			s.Autoscaling.Celeryd = &v1beta1.HorizontalScaling{MinReplicas: 1, MaxReplicas: 8, TargetCPUUtilizationPercentage: 60}
		})
		return c.Request()
	},
	// Running 1 web pod, turned on with minReplicas 2: web goes up to 2, as the HPA would.
	"autoscaling-on-below-the-bounds": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 2, MaxReplicas: 10} })
		return c.Request()
	},
	// Running 12 web pods, turned on with maxReplicas 10: web comes down to 10, as the HPA would.
	"autoscaling-on-above-the-bounds": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(12)) })))
		c.EditSpec(func(s *v1beta1.Spec) { s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 3, MaxReplicas: 10} })
		return c.Request()
	},
	// The HPA scaled web from 3 to 7 through the scale subresource: the answer repeats 7 and
	// changes nothing (Summon never fights the HPA).
	"autoscaling-steady-after-the-hpa-scaled-up": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 3, MaxReplicas: 10}
		})))
		scaleLikeTheHPA(t, c, children.Web, 7)
		c.Sync(hook(c))
		return c.Request()
	},
	// A spec that can't be trusted freezes every child as it was applied, except the count the HPA
	// set since: Metacontroller's merge would put the last applied count back over it.
	"autoscaling-frozen-keeps-the-hpa-count": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 3, MaxReplicas: 10}
		})))
		scaleLikeTheHPA(t, c, children.Web, 7)
		c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.CeleryBeat = ptr(int32(2)) })
		return c.Request()
	},
	// Autoscaling turned off while the HPA ran 7 web pods, with replicas.web 4: the HPA goes and
	// web comes to 4 (never below the smaller of the two counts).
	"autoscaling-turned-off": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Autoscaling.Web = &v1beta1.HorizontalScaling{MinReplicas: 3, MaxReplicas: 10}
		})))
		scaleLikeTheHPA(t, c, children.Web, 7)
		c.Sync(hook(c))
		c.EditSpec(func(s *v1beta1.Spec) { s.Autoscaling.Web = nil; s.Replicas.Web = ptr(int32(4)) })
		return c.Request()
	},
	// A setting changed: the config Secret and the config hash in every pod template change.
	"config-change": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) {
			s.Config["DEBUG"] = v1beta1.BoolValue(false)
			s.Config["SITE_NAME"] = v1beta1.StringValue("Car One QA")
		})
		return c.Request()
	},
	// Input Secrets are merged in order over spec.config; the shared database URL is generated.
	"input-secrets-and-shared-database": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Secrets = []string{"car1-qa-inputs", "car1-qa-overrides"}
			s.Database.Shared = &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}
		})))
		c.SetRelatedSecret("car1-qa-inputs", map[string][]byte{"SENTRY_DSN": []byte("https://abc@sentry.example.com/1"), "SITE_NAME": []byte("inputs")})
		c.SetRelatedSecret("car1-qa-overrides", map[string][]byte{"SITE_NAME": []byte("overrides")})
		return c.Request()
	},
	// Every system outside the cluster switched on: the app's settings point at the bucket, the
	// vhost and the database, and the new IAM key is kept in its own Secret.
	"externals-created": func(t *testing.T) *metacontroller.SyncRequest {
		return sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Database.Shared = &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}
		}))).Request()
	},
	// The externals were made for this generation and the key Secret is there: no call needed,
	// and nothing changes.
	"externals-steady": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Database.Shared = &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}
		})))
		converged(t, c, goldenOutside["externals-created"])
		return c.Request()
	},
	// RabbitMQ is down: Error, every child kept, and a retry asked for.
	"externals-failing": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa"))
		converged(t, c, goldenOutside["externals-created"])
		c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(2)) })
		return c.Request()
	},
	// An instance created before the 80-bit names: its status records the names it was given
	// then, and it keeps them (its bucket, its database, its DATABASE_URL), so no data moves.
	"externals-from-before-owner-marks": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Database.Shared = &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}
		})))
		legacy := external.LegacyNamesFor("acme-", "summon-qa", "car1-qa")
		c.Parent.Status.External = &v1beta1.ExternalStatus{Bucket: legacy.Bucket, IAMUser: legacy.IAMUser, RabbitVhost: legacy.RabbitVhost, Database: legacy.Database}
		converged(t, c, goldenOutside["externals-created"])
		return c.Request()
	},
	// The bucket under this instance's name is another instance's: nothing of it is changed, the
	// status says so with a reason of its own and what to do, every child is kept.
	"externals-owned-by-another": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa"))
		converged(t, c, goldenOutside["externals-created"])
		c.EditSpec(func(s *v1beta1.Spec) { s.Replicas.Web = ptr(int32(2)) })
		return c.Request()
	},
	"input-secret-missing": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Secrets = []string{"car1-qa-inputs"} })
		return c.Request()
	},
	// An input Secret that doesn't say it is one is not read: every child is kept as it runs, and
	// the status names the label and the annotation to add.
	"input-secret-not-marked": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Secrets = []string{"team-settings"} })
		c.SetRelatedSecretWithMeta("team-settings", map[string][]byte{"SENTRY_DSN": []byte("https://abc@sentry.example.com/1")}, nil, nil)
		return c.Request()
	},
	// A neighbour's config Secret (Summon's own child) is never an input, label or not: its
	// DATABASE_URL and SECRET_KEY stay out of this instance's config file.
	"input-secret-of-a-neighbour": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) { s.Secrets = []string{"car2-qa-config"} })
		c.SetRelatedSecretWithMeta("car2-qa-config", map[string][]byte{"settings.json": []byte(`{"SECRET_KEY":"car2-secret"}`)},
			map[string]any{children.LabelName: "summon-platform", children.LabelInstance: "car2-qa",
				children.LabelComponent: "config", children.LabelManagedBy: "summon", v1beta1.LabelInput: "true"},
			map[string]any{v1beta1.AnnotationInputFor: "*"})
		return c.Request()
	},
	// An input handed to another instance of the namespace is not this one's.
	"input-secret-for-another-instance": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) {
			s.Database.URLSecret = &v1beta1.SecretKeyRef{Name: "car2-qa-database", Key: "DATABASE_URL"}
		})
		c.SetRelatedSecretWithMeta("car2-qa-database", map[string][]byte{"DATABASE_URL": []byte("postgres://car2:pw@db:5432/car2")},
			map[string]any{v1beta1.LabelInput: "true"}, map[string]any{v1beta1.AnnotationInputFor: "car2-qa, car3-qa"})
		return c.Request()
	},
	// A request without the Job group can't show whether a migration runs: refuse to act.
	"missing-child-group": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		req := c.Request()
		delete(req.Children, GroupJob)
		return req
	},
	// A ConfigMap type added to the CompositeController by hand: kept, and the user is told.
	"unknown-child-type": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		req := c.Request()
		req.Children["ConfigMap.v1"] = metacontroller.ObjectsByName{"summon-qa/car1-qa-extra": {
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "car1-qa-extra", "namespace": "summon-qa", "uid": "cm-1", "resourceVersion": "9"},
			"data":     map[string]any{"note": "added by hand"},
		}}
		return req
	},
	// An own Redis at Ready: its StatefulSet, Service, config Secret and NetworkPolicy, and the
	// cache and Channels URLs in the app config file.
	"redis-on": func(t *testing.T) *metacontroller.SyncRequest {
		return installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) { s.Redis = &v1beta1.Redis{} }))).Request()
	},
	// An external Redis: its URL, read from the Secret spec.redis.urlSecret names, serves the
	// cache and the Channels layer; no Redis child.
	"redis-external": func(t *testing.T) *metacontroller.SyncRequest {
		c := sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Redis = &v1beta1.Redis{URLSecret: &v1beta1.SecretKeyRef{Name: "car1-qa-redis-url", Key: "REDIS_URL"}}
		})))
		c.SetRelatedSecret("car1-qa-redis-url", map[string][]byte{"REDIS_URL": []byte("rediss://:elasticache-token@car1.cache.example.internal:6379/0")})
		return c.Request()
	},
	// From an own Redis to an external one: the Redis children are dropped; the config file (and so
	// its hash in the app pod templates) is the only other thing that changes.
	"redis-to-external": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa", withSpec(func(s *v1beta1.Spec) { s.Redis = &v1beta1.Redis{} })))
		c.SetRelatedSecret("car1-qa-redis-url", map[string][]byte{"REDIS_URL": []byte("rediss://:elasticache-token@car1.cache.example.internal:6379/0")})
		c.EditSpec(func(s *v1beta1.Spec) {
			s.Redis = &v1beta1.Redis{URLSecret: &v1beta1.SecretKeyRef{Name: "car1-qa-redis-url", Key: "REDIS_URL"}}
		})
		return c.Request()
	},
	// An own Postgres (deletionPolicy Retain, so on the hook's retaining StorageClass): the Cluster
	// is there but not ready yet, so the migration waits for it.
	"postgres-in-cluster": func(t *testing.T) *metacontroller.SyncRequest {
		c := withCNPG(sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
			s.Database.InCluster = &v1beta1.InClusterDatabase{}
		}))))
		c.Sync(hook(c))
		return c.Request()
	},
	// A QA instance with its own Redis and Postgres and no input Secret at all, at Ready.
	"qa-own-data-ready": func(t *testing.T) *metacontroller.SyncRequest {
		return installedOn(t, withCNPG(sim.NewCluster(qaWithOwnData("car1-qa")))).Request()
	},
	// An own Postgres asked for on an install without CloudNativePG: Error, every child kept.
	"postgres-without-cnpg": func(t *testing.T) *metacontroller.SyncRequest {
		c := installed(t, platform("car1-qa"))
		c.EditSpec(func(s *v1beta1.Spec) {
			s.Database.InCluster = &v1beta1.InClusterDatabase{}
			s.DeletionPolicy = v1beta1.DeletionPolicyDelete
		})
		return c.Request()
	},
	// The longest legal name: every child name stays within Kubernetes' limits.
	"longest-name": func(t *testing.T) *metacontroller.SyncRequest {
		return installed(t, platform(strings.Repeat("a", 40)+"-"+strings.Repeat("b", 22))).Request()
	},
}

// goldenOutside switches on the systems outside the cluster for the cases that need them; every
// other case runs with none, the default of a local run.
var goldenOutside = map[string]Outside{
	"input-secrets-and-shared-database": {Postgres: true},
	"externals-created":                 allOutside(&Ensured{NewAccessKey: &AccessKey{ID: "AKIAEXAMPLEKEY000001", Secret: "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"}}),
	"externals-steady":                  allOutside(nil),
	"externals-failing":                 allOutside(&Ensured{Failures: []Failure{{System: "RabbitMQ", Message: `RabbitMQ: creating vhost "summon-qa.car1-qa": dial tcp 127.0.0.1:15672: connect: connection refused`, Retryable: true}}}),
	"externals-from-before-owner-marks": allOutside(nil),
	"externals-owned-by-another": allOutside(&Ensured{Failures: []Failure{{System: "AWS", NotOurs: external.OwnedByAnotherInstance,
		Message: `AWS S3: checking the owner of bucket "acme-summon-qa-car1-qa-b3eldqx6hggxeg2f": it belongs to another SummonPlatform, which still exists: Summon changes nothing of it; give this SummonPlatform another name, or ask an operator`}}}),
}

func allOutside(e *Ensured) Outside {
	return Outside{AWS: true, RabbitMQ: true, Postgres: true, BucketPrefix: "acme-", AWSRegion: "eu-west-1", RabbitAMQPAddr: "rabbitmq.shared.svc:5672", Ensured: e}
}

// goldenCNPG are the cases whose hook has CloudNativePG (and whose CompositeController declares
// its Cluster); every other case runs on an install without it.
var goldenCNPG = map[string]bool{"postgres-in-cluster": true, "qa-own-data-ready": true}

func goldenEnv(name string) Env {
	env := testEnv(goldenClock)
	env.Outside = goldenOutside[name]
	env.Rollout = goldenWaves[name]
	if goldenCNPG[name] {
		env.Data.CNPG = testCNPG
	}
	if _, ok := backupGoldenCases[name]; ok {
		env = backupEnv(goldenClock)
	}
	if _, ok := postgresBackupGoldenCases[name]; ok {
		env.Data.CNPG = testCNPGSnapshots
	}
	return env
}

// withCNPG declares CNPG's Cluster in the simulated CompositeController, as the manifests/cnpg
// component does; hook(c) then runs with CloudNativePG on.
func withCNPG(c *sim.Cluster) *sim.Cluster {
	c.Declare(GroupPostgresCluster)
	return c
}

// qaWithOwnData is a QA instance that needs nothing from outside the cluster: its own Redis and
// Postgres, no input Secret, data deleted with it.
func qaWithOwnData(name string) *v1beta1.SummonPlatform {
	return platform(name, withSpec(func(s *v1beta1.Spec) {
		s.Redis = &v1beta1.Redis{}
		s.Database.InCluster = &v1beta1.InClusterDatabase{}
		s.DeletionPolicy = v1beta1.DeletionPolicyDelete
	}))
}

func TestGolden(t *testing.T) {
	for _, cases := range []map[string]func(*testing.T) *metacontroller.SyncRequest{backupGoldenCases, postgresBackupGoldenCases} {
		maps.Copy(goldenCases, cases)
	}
	if *update {
		for name, build := range goldenCases {
			writeJSON(t, filepath.Join(goldenDir, name, "request.json"), build(t))
		}
	}
	for name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(goldenDir, name)
			var req metacontroller.SyncRequest
			readJSON(t, filepath.Join(dir, "request.json"), &req)
			resp := Sync(&req, goldenEnv(name))
			if *update {
				writeJSON(t, filepath.Join(dir, "response.json"), resp)
			}
			var want, got any
			wantBytes, err := os.ReadFile(filepath.Join(dir, "response.json"))
			if err != nil {
				t.Fatalf("reading golden file: %v (run go test ./pkg/platform -update to write it)", err)
			}
			if err := json.Unmarshal(wantBytes, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(encode(t, resp), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("response differs from %s/response.json (-want +got):\n%s", dir, diff)
			}
		})
	}
}

// TestGoldenCasesAreAllListed keeps testdata and the scenarios in step: a folder without a
// scenario would never be checked.
func TestGoldenCasesAreAllListed(t *testing.T) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, backup := backupGoldenCases[e.Name()]
		_, postgresBackup := postgresBackupGoldenCases[e.Name()]
		if _, ok := goldenCases[e.Name()]; !ok && !backup && !postgresBackup {
			t.Errorf("testdata/sync/%s has no scenario in goldenCases", e.Name())
		}
	}
}

// installed runs a fresh install to Ready.
func installed(t *testing.T, p *v1beta1.SummonPlatform) *sim.Cluster {
	t.Helper()
	return installedOn(t, sim.NewCluster(p))
}

// installedOn runs a fresh install on a simulated cluster to Ready. CloudNativePG, when the
// cluster has it, reports the instance's Postgres ready as soon as it exists.
func installedOn(t *testing.T, c *sim.Cluster) *sim.Cluster {
	t.Helper()
	syncTimes(c, 1)
	c.PostgresReady()
	syncTimes(c, 1)
	c.CompleteJob(onlyJob(t, c))
	syncTimes(c, 2)
	c.RollOut()
	resp := c.Sync(hook(c))
	if st := status(t, resp); st.Phase != v1beta1.PhaseReady {
		t.Fatalf("install did not reach Ready: %s: %s", st.Phase, st.Message)
	}
	return c
}

// converged installs with the given systems outside the cluster, as the hook would: calls made
// (and succeeding) only when PlanEnsure asks for them.
func converged(t *testing.T, c *sim.Cluster, outside Outside) {
	t.Helper()
	step := func() *metacontroller.SyncResponse {
		return c.Sync(func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
			env := testEnv(c.Clock)
			env.Outside = outside
			env.Outside.Ensured = nil
			if PlanEnsure(req, env).Needed {
				env.Outside.Ensured = outside.Ensured
			}
			return Sync(req, env)
		})
	}
	for range 2 {
		step()
	}
	c.CompleteJob(onlyJob(t, c))
	step()
	step()
	c.RollOut()
	if st := status(t, step()); st.Phase != v1beta1.PhaseReady {
		t.Fatalf("install did not reach Ready: %s: %s", st.Phase, st.Message)
	}
}

func syncTimes(c *sim.Cluster, n int) {
	for range n {
		c.Sync(hook(c))
	}
}

func onlyJob(t *testing.T, c *sim.Cluster) string {
	t.Helper()
	jobs := c.MigrationJobs()
	if len(jobs) != 1 {
		t.Fatalf("want one migration Job, have %v", jobs)
	}
	return jobs[0]
}

func jobFor(t *testing.T, c *sim.Cluster, version string) string {
	t.Helper()
	for _, name := range c.MigrationJobs() {
		if labelsOf(c.Get(GroupJob, name))[children.LabelVersion] == version {
			return name
		}
	}
	t.Fatalf("no migration Job for version %s among %v", version, c.MigrationJobs())
	return ""
}

// scaleLikeTheHPA scales a workload as the HPA controller does and lets the rollout finish.
func scaleLikeTheHPA(t *testing.T, c *sim.Cluster, comp children.Component, n int64) {
	t.Helper()
	name := children.NamesFor(c.Parent.Name).Of(comp)
	if c.Get(GroupDeployment, name) == nil {
		t.Fatalf("no %s Deployment to scale", comp)
	}
	c.Scale(GroupDeployment, name, n)
	c.RollOut()
}

// addLegacyBeat puts a beat Deployment of an older layout into the cluster, running.
func addLegacyBeat(t *testing.T, c *sim.Cluster) {
	t.Helper()
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: c.Parent.Name + "-beat", Namespace: c.Parent.Namespace, Labels: map[string]string{"app": "beat"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "beat"}},
		},
	}
	d.Spec.Template.Labels = map[string]string{"app": "beat"}
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, containerFor(c.Parent.Spec.Version))
	obj, err := children.ToObject(d)
	if err != nil {
		t.Fatal(err)
	}
	obj["status"] = map[string]any{"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}
	c.Children[GroupDeployment][c.Parent.Namespace+"/"+d.Name] = obj
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file: %v (run go test ./pkg/platform -update to write it)", err)
	}
	if err := metacontroller.Decode(b, into); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
}

func ptr[T any](v T) *T { return &v }
