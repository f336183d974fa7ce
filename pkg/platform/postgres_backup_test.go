package platform

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// withCNPGSnapshots declares CNPG's Cluster and Backup, as the manifests/cnpg component does;
// hook(c) then runs with --cnpg-snapshot-class.
func withCNPGSnapshots(c *sim.Cluster) *sim.Cluster {
	c.Declare(GroupPostgresCluster)
	c.Declare(GroupPostgresBackup)
	return c
}

// ownPostgresTowardV2 installs a QA instance with its own Postgres, on a hook that snapshots it,
// asks for v2 and syncs once: CNPG's Backup exists, the migration waits for it.
func ownPostgresTowardV2(t *testing.T, edit func(*v1beta1.Spec)) *sim.Cluster {
	t.Helper()
	p := qaWithOwnData("car1-qa")
	if edit != nil {
		edit(&p.Spec)
	}
	c := installedOn(t, withCNPGSnapshots(sim.NewCluster(p)))
	if b := c.PostgresBackups(); len(b) > 0 {
		t.Fatalf("a fresh install took a backup: %v", b)
	}
	c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
	c.Sync(hook(c))
	return c
}

func onlyPostgresBackup(t *testing.T, c *sim.Cluster) string {
	t.Helper()
	b := c.PostgresBackups()
	if len(b) != 1 {
		t.Fatalf("want one CNPG Backup, have %v", b)
	}
	return b[0]
}

// postgresBackupGoldenCases are the golden cases of CNPG's Backup before a migration; they run
// with testCNPGSnapshots.
var postgresBackupGoldenCases = map[string]func(t *testing.T) *metacontroller.SyncRequest{
	// A new version on an own Postgres: CNPG snapshots it, no migration Job yet, v1 serves.
	"postgres-backup-running": func(t *testing.T) *metacontroller.SyncRequest {
		c := ownPostgresTowardV2(t, nil)
		c.StartPostgresBackup(onlyPostgresBackup(t, c))
		return c.Request()
	},
	// The snapshot completed: the migration Job starts; the Backup stays, since it owns its
	// snapshots.
	"postgres-backup-completed-migration-starts": func(t *testing.T) *metacontroller.SyncRequest {
		c := ownPostgresTowardV2(t, nil)
		c.CompletePostgresBackup(onlyPostgresBackup(t, c))
		return c.Request()
	},
	// The snapshot failed: Error, no migration Job, every workload on v1.
	"postgres-backup-failed": func(t *testing.T) *metacontroller.SyncRequest {
		c := ownPostgresTowardV2(t, nil)
		c.FailPostgresBackup(onlyPostgresBackup(t, c), "cannot create the VolumeSnapshot: no VolumeSnapshotClass csi-snapshots")
		return c.Request()
	},
}

// TestTheMigrationWaitsForCNPGsBackupPhase sets every phase CNPG (v1.27) writes on the Backup of
// v2: the migration starts only on completed, a failed one stops the deploy with v1 serving, and
// every other phase (or none yet) is a backup under way.
func TestTheMigrationWaitsForCNPGsBackupPhase(t *testing.T) {
	for _, tc := range []struct {
		phase     string
		migrates  bool
		wantPhase v1beta1.Phase
	}{
		{"", false, v1beta1.PhaseMigrating},
		{"pending", false, v1beta1.PhaseMigrating},
		{"started", false, v1beta1.PhaseMigrating},
		{"running", false, v1beta1.PhaseMigrating},
		{"finalizing", false, v1beta1.PhaseMigrating},
		{"completed", true, v1beta1.PhaseMigrating},
		{"failed", false, v1beta1.PhaseError},
		{"walArchivingFailing", false, v1beta1.PhaseError},
	} {
		t.Run(fmt.Sprintf("a Backup in phase %q migrates: %v", tc.phase, tc.migrates), func(t *testing.T) {
			c := ownPostgresTowardV2(t, nil)
			name := onlyPostgresBackup(t, c)
			if tc.phase != "" {
				c.Get(sim.PostgresBackup, name)["status"] = map[string]any{"phase": tc.phase, "error": "snapshot error"}
			}
			for range 2 {
				st := status(t, c.Sync(hook(c)))
				if st.Phase != tc.wantPhase {
					t.Fatalf("phase %s (%s), want %s", st.Phase, st.Message, tc.wantPhase)
				}
			}
			migrating := slices.ContainsFunc(c.MigrationJobs(), func(n string) bool {
				return labelsOf(c.Get(GroupJob, n))[children.LabelVersion] == v2
			})
			if migrating != tc.migrates {
				t.Errorf("v2's migration Job exists: %v, want %v", migrating, tc.migrates)
			}
			if c.Get(sim.PostgresBackup, name) == nil {
				t.Error("the Backup was dropped from the answer, and its snapshots with it")
			}
			for _, g := range []string{GroupDeployment, GroupStatefulSet} {
				c.Each(g, func(key string, obj metacontroller.Object) {
					if v := labelsOf(obj)[children.LabelVersion]; v == v2 && !tc.migrates {
						t.Errorf("%s %s runs v2 before its backup completed", g, key)
					}
				})
			}
		})
	}
}

// TestOnlyTheNewestCNPGBackupsStay runs more version bumps than spec.backups.keep: the newest
// Backups stay in the answer (each owns its snapshots), the older ones leave it and so go.
func TestOnlyTheNewestCNPGBackupsStay(t *testing.T) {
	c := installedOn(t, withCNPGSnapshots(sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
		s.Database.InCluster = &v1beta1.InClusterDatabase{}
		s.DeletionPolicy = v1beta1.DeletionPolicyDelete
		s.Backups.Keep = ptrTo(int32(2))
	})))))
	var taken []string
	for i := range 4 {
		version := fmt.Sprintf("v%d", i+2)
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = version })
		c.Sync(hook(c))
		name := children.NamesFor("car1-qa").BackupJob(version, 0)
		if c.Get(sim.PostgresBackup, name) == nil {
			t.Fatalf("%s: no Backup %s; Backups %v", version, name, c.PostgresBackups())
		}
		taken = append(taken, name)
		c.CompletePostgresBackup(name)
		c.Sync(hook(c))
		c.CompleteJob(children.NamesFor("car1-qa").MigrationJob(version, 0))
		syncTimes(c, 2)
		c.RollOut()
		if st := status(t, c.Sync(hook(c))); st.Phase != v1beta1.PhaseReady || st.DeployedVersion != version {
			t.Fatalf("%s: %s, deployed %s: %s", version, st.Phase, st.DeployedVersion, st.Message)
		}
	}
	want := slices.Sorted(slices.Values(taken[len(taken)-2:]))
	if got := c.PostgresBackups(); !slices.Equal(got, want) {
		t.Errorf("Backups after 4 bumps with keep 2: %v, want the newest %v", got, want)
	}
	var recorded []string
	for _, r := range c.Parent.Status.Backups {
		recorded = append(recorded, r.Name)
	}
	if !slices.Equal(recorded, []string{taken[3], taken[2]}) {
		t.Errorf("status.backups %v, want the newest two, newest first", recorded)
	}
}

// TestSnapshotsOfARetainedInstanceOutliveIt: CNPG's snapshots are owned by their Backup when the
// instance's data goes with it, and by nothing when it is kept (deletionPolicy Retain); without
// a snapshot class the Cluster asks for no backup at all.
func TestSnapshotsOfARetainedInstanceOutliveIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy v1beta1.DeletionPolicy
		class  string
		want   string
	}{
		{"an instance deleted with its data gives its snapshots to their Backup", v1beta1.DeletionPolicyDelete, "csi-snapshots", "backup"},
		{"a retained instance leaves its snapshots to nobody", v1beta1.DeletionPolicyRetain, "csi-snapshots", "none"},
		{"a hook without a snapshot class configures no backup", v1beta1.DeletionPolicyDelete, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := children.NewPlatform("car1-qa", "summon-qa", v1beta1.Spec{
				Version: v1, Database: v1beta1.Database{InCluster: &v1beta1.InClusterDatabase{}}, DeletionPolicy: tc.policy,
			}.Defaulted(v1beta1.HookDefaults{}))
			spec := children.PostgresCluster(p, "", tc.class).Object["spec"].(map[string]any)
			backup, _ := spec["backup"].(map[string]any)
			if tc.want == "" {
				if backup != nil {
					t.Fatalf("spec.backup %v, want none", backup)
				}
				return
			}
			vs := backup["volumeSnapshot"].(map[string]any)
			if vs["snapshotOwnerReference"] != tc.want || vs["className"] != tc.class {
				t.Errorf("spec.backup.volumeSnapshot %v, want owner %s and class %s", vs, tc.want, tc.class)
			}
		})
	}
}

// TestAnOwnPostgresWithoutSnapshotsSaysWhy: a hook without --cnpg-snapshot-class takes no backup
// of an own Postgres; a spec that requires one stops the deploy and says what to set.
func TestAnOwnPostgresWithoutSnapshotsSaysWhy(t *testing.T) {
	c := installedOn(t, withCNPG(sim.NewCluster(platform("car1-qa", withSpec(func(s *v1beta1.Spec) {
		s.Database.InCluster = &v1beta1.InClusterDatabase{}
		s.DeletionPolicy = v1beta1.DeletionPolicyDelete
		s.Backups.BeforeMigration = v1beta1.BackupRequired
	})))))
	c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
	st := status(t, c.Sync(hook(c)))
	if st.Phase != v1beta1.PhaseError || !strings.Contains(st.Message, "--cnpg-snapshot-class") {
		t.Errorf("a required backup without a snapshot class: %s: %s", st.Phase, st.Message)
	}
	for _, j := range c.MigrationJobs() {
		if labelsOf(c.Get(GroupJob, j))[children.LabelVersion] == v2 {
			t.Errorf("v2's migration Job %s without the required backup", j)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestRestoreRefusesASnapshotBackup: summonctl restore brings back dumps; a CNPG snapshot comes
// back as a new Cluster, and the refusal says so instead of failing on a missing s3:// location.
func TestRestoreRefusesASnapshotBackup(t *testing.T) {
	c := ownPostgresTowardV2(t, nil)
	name := onlyPostgresBackup(t, c)
	c.CompletePostgresBackup(name)
	c.Sync(hook(c))
	rec, err := FindBackup(c.Parent.Status, name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RestoreJob(c.Parent, rec, testBackupImage, "eu-west-1")
	if err == nil || !strings.Contains(err.Error(), "new Cluster") {
		t.Errorf("restoring a CNPG snapshot backup: %v, want a refusal that says how it comes back", err)
	}
}

// TestSnapshotsStayWhenTheHookLosesItsSnapshotClass: a hook started again without
// --cnpg-snapshot-class takes no new backup, but keeps answering with the completed Backups (and
// so their snapshots); dropping them would delete every copy at once.
func TestSnapshotsStayWhenTheHookLosesItsSnapshotClass(t *testing.T) {
	c := ownPostgresTowardV2(t, nil)
	name := onlyPostgresBackup(t, c)
	c.CompletePostgresBackup(name)
	c.Sync(hook(c))
	withoutClass := func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
		env := envFor(c)
		env.Data.CNPG = testCNPG
		return Sync(req, env)
	}
	for range 3 {
		c.Sync(withoutClass)
	}
	if c.Get(sim.PostgresBackup, name) == nil {
		t.Errorf("the completed Backup %s left the answer once the hook lost its snapshot class", name)
	}
}
