package platform

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// testBackupImage is the hook's --backup-image in the tests that take backups.
const testBackupImage = "registry.example.com/summon-backup:16"

// backupOutside is a hook with every system outside the cluster, whose ensure succeeds.
var backupOutside = allOutside(&Ensured{NewAccessKey: &AccessKey{ID: "AKIAEXAMPLEKEY000001", Secret: "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"}})

// backupEnv is the Env of a hook that backs up shared databases: --backup-image, a bucket per
// instance, the shared Postgres.
func backupEnv(now time.Time) Env {
	env := testEnv(now)
	env.Outside = backupOutside
	env.Data.BackupImage = testBackupImage
	return env
}

// backupHook is the hook of backupEnv, calling outside only when PlanEnsure asks, as the hook
// does.
func backupHook(c *sim.Cluster) func(*metacontroller.SyncRequest) *metacontroller.SyncResponse {
	return func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
		env := backupEnv(c.Clock)
		if !PlanEnsure(req, env).Needed {
			env.Outside.Ensured = nil
		}
		return Sync(req, env)
	}
}

// onShared is a platform on the shared Postgres.
func onShared(name string, edit func(*v1beta1.Spec)) *v1beta1.SummonPlatform {
	return platform(name, withSpec(func(s *v1beta1.Spec) {
		s.Database.Shared = &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}
		if edit != nil {
			edit(s)
		}
	}))
}

// installedWithBackups runs a fresh install on the shared Postgres to Ready with backupHook: the
// first migration takes no backup (the database holds nothing yet).
func installedWithBackups(t *testing.T, p *v1beta1.SummonPlatform) *sim.Cluster {
	t.Helper()
	c := sim.NewCluster(p)
	c.Sync(backupHook(c))
	c.Sync(backupHook(c))
	if b := c.BackupJobs(); len(b) > 0 {
		t.Fatalf("a fresh install took a backup: %v", b)
	}
	c.CompleteJob(onlyJob(t, c))
	c.Sync(backupHook(c))
	c.Sync(backupHook(c))
	c.RollOut()
	if st := status(t, c.Sync(backupHook(c))); st.Phase != v1beta1.PhaseReady {
		t.Fatalf("install did not reach Ready: %s: %s", st.Phase, st.Message)
	}
	return c
}

// towardV2 installs on the shared Postgres, asks for v2 and syncs once: the backup Job exists.
func towardV2(t *testing.T, edit func(*v1beta1.Spec)) *sim.Cluster {
	t.Helper()
	c := installedWithBackups(t, onShared("car1-qa", edit))
	c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
	c.Sync(backupHook(c))
	return c
}

func onlyBackup(t *testing.T, c *sim.Cluster) string {
	t.Helper()
	b := c.BackupJobs()
	if len(b) != 1 {
		t.Fatalf("want one backup Job, have %v", b)
	}
	return b[0]
}

// backupGoldenCases are the golden cases of the backup before a migration; they run with
// backupEnv.
var backupGoldenCases = map[string]func(t *testing.T) *metacontroller.SyncRequest{
	// A new version on the shared Postgres: the pg_dump Job runs, no migration Job yet, the old
	// version serves.
	"backup-running": func(t *testing.T) *metacontroller.SyncRequest {
		c := towardV2(t, nil)
		c.StartJob(onlyBackup(t, c))
		return c.Request()
	},
	// The dump completed: the migration Job starts, the backup is on record.
	"backup-completed-migration-starts": func(t *testing.T) *metacontroller.SyncRequest {
		c := towardV2(t, nil)
		c.CompleteJob(onlyBackup(t, c))
		return c.Request()
	},
	// The dump failed: Error, no migration Job, every workload on the old version.
	"backup-failed": func(t *testing.T) *metacontroller.SyncRequest {
		c := towardV2(t, nil)
		c.FailJob(onlyBackup(t, c))
		return c.Request()
	},
	// Best effort: the dump failed and the migration starts anyway, with BackedUp False.
	"backup-best-effort-failed": func(t *testing.T) *metacontroller.SyncRequest {
		c := towardV2(t, func(s *v1beta1.Spec) { s.Backups.BeforeMigration = v1beta1.BackupBestEffort })
		c.FailJob(onlyBackup(t, c))
		return c.Request()
	},
	// Backups never taken (spec.backups.beforeMigration: Never): the migration starts at once.
	"backup-never": func(t *testing.T) *metacontroller.SyncRequest {
		c := installedWithBackups(t, onShared("car1-qa", func(s *v1beta1.Spec) { s.Backups.BeforeMigration = v1beta1.BackupNever }))
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = v2 })
		return c.Request()
	},
}

// TestFailedBackupKeepsTheOldVersionServing runs the history of a failed dump on: whatever the
// cluster does next, no workload leaves v1 and no migration Job starts until the user acts, and
// a new attempt takes a fresh backup before its migration.
func TestFailedBackupKeepsTheOldVersionServing(t *testing.T) {
	c := towardV2(t, nil)
	c.FailJob(onlyBackup(t, c))
	for i := range 3 {
		resp := c.Sync(backupHook(c))
		st := status(t, resp)
		if st.Phase != v1beta1.PhaseError || !MigrationFailed(st) {
			t.Fatalf("sync %d after the failed backup: phase %s (%s), want Error with Migrated False/MigrationFailed", i, st.Phase, st.Message)
		}
		if jobs := c.MigrationJobs(); slices.ContainsFunc(jobs, func(n string) bool { return labelsOf(c.Get(GroupJob, n))[children.LabelVersion] == v2 }) {
			t.Fatalf("a migration Job of v2 started after its backup failed: %v", jobs)
		}
		c.RollOut()
		for comp, cs := range st.Components {
			if cs.Version != v1 {
				t.Fatalf("%s runs %s after the failed backup, want %s", comp, cs.Version, v1)
			}
		}
	}
	// The user retries: a fresh backup first, then the migration.
	c.EditSpec(func(s *v1beta1.Spec) { s.Migrations.Attempt = 1 })
	c.Sync(backupHook(c))
	fresh := children.NamesFor(c.Parent.Name).BackupJob(v2, 1)
	if c.Get(GroupJob, fresh) == nil {
		t.Fatalf("a new attempt took no fresh backup: backup Jobs %v", c.BackupJobs())
	}
	c.CompleteJob(fresh)
	c.Sync(backupHook(c))
	if c.Get(GroupJob, children.NamesFor(c.Parent.Name).MigrationJob(v2, 1)) == nil {
		t.Fatalf("the completed backup did not start the migration: Jobs %v", c.MigrationJobs())
	}
	st := c.Parent.Status
	if cond := meta.FindStatusCondition(st.Conditions, v1beta1.ConditionBackedUp); cond == nil || cond.Status != "True" {
		t.Errorf("BackedUp after the completed backup: %+v", cond)
	}
	if len(st.Backups) != 2 || st.Backups[0].Name != fresh || st.Backups[0].Phase != v1beta1.BackupPhaseCompleted || st.Backups[1].Phase != v1beta1.BackupPhaseFailed {
		t.Errorf("status.backups, newest first: %+v", st.Backups)
	}
	if st.Backups[0].FromVersion != v1 || st.Backups[0].Location != "s3://"+backupOutside.ExternalNames("summon-qa", "car1-qa").Bucket+"/backups/"+v2+"/a1/" {
		t.Errorf("the backup's record: from %q at %q", st.Backups[0].FromVersion, st.Backups[0].Location)
	}
}

// TestMigrationRecordsAreKeptAndNeverCountAgain goes v1 → v2 → v3 → v4 → back to v2: the last three
// migration Jobs stay for their logs, the oldest goes, and going back to v2 runs its migrations
// again with a fresh Job rather than counting the kept one.
func TestMigrationRecordsAreKeptAndNeverCountAgain(t *testing.T) {
	c := installed(t, platform("car1-qa"))
	migrate := func(version string) {
		t.Helper()
		c.EditSpec(func(s *v1beta1.Spec) { s.Version = version })
		for range 4 {
			c.Sync(hook(c))
			if name := children.NamesFor(c.Parent.Name).MigrationJob(version, 0); c.Get(GroupJob, name) != nil {
				if c.Parent.Status.MigratedVersion != version {
					c.CompleteJob(name)
				}
			}
		}
		c.RollOut()
		c.Sync(hook(c))
		c.Sync(hook(c))
		if st := c.Parent.Status; st.Phase != v1beta1.PhaseReady || st.MigratedVersion != version {
			t.Fatalf("after migrating %s: %s, migrated %s: %s", version, st.Phase, st.MigratedVersion, st.Message)
		}
	}
	migrate("v2")
	migrate("v3")
	migrate("v4")
	names := children.NamesFor(c.Parent.Name)
	want := []string{names.MigrationJob("v4", 0), names.MigrationJob("v3", 0), names.MigrationJob("v2", 0)}
	var got []string
	for _, r := range c.Parent.Status.Migrations {
		got = append(got, r.Job)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("status.migrations %v, want %v", got, want)
	}
	kept := c.MigrationJobs()
	slices.Sort(kept)
	slices.Sort(want)
	if !slices.Equal(kept, want) {
		t.Fatalf("kept migration Jobs %v, want %v (the first one, of %s, gone)", kept, want, v1)
	}

	// Back to v2: its kept Job succeeded once, against an older database. It must not count.
	old := c.Get(GroupJob, names.MigrationJob("v2", 0))["metadata"].(map[string]any)["uid"]
	c.EditSpec(func(s *v1beta1.Spec) { s.Version = "v2" })
	resp := c.Sync(hook(c))
	if st := status(t, resp); st.MigratedVersion != "v4" || st.Phase != v1beta1.PhaseMigrating {
		t.Fatalf("going back to v2 counted its kept Job: %s, migrated %s: %s", st.Phase, st.MigratedVersion, st.Message)
	}
	c.Sync(hook(c))
	job := c.Get(GroupJob, names.MigrationJob("v2", 0))
	if job == nil {
		t.Fatal("no fresh migration Job for v2")
	}
	if uid := job["metadata"].(map[string]any)["uid"]; uid == old {
		t.Fatal("the Job of v2 is still the kept one")
	}
	if st := c.Parent.Status; st.MigratedVersion != "v4" {
		t.Fatalf("v2 migrated before its fresh Job ran: %s", st.MigratedVersion)
	}
}

func TestRestoreJobRefusesWhatCantBeRestored(t *testing.T) {
	sp := onShared("car1-qa", nil)
	ok := v1beta1.BackupRecord{Name: "b1", Version: v2, FromVersion: v1, Phase: v1beta1.BackupPhaseCompleted, Location: "s3://bucket/backups/" + v2 + "/a0/"}
	tests := map[string]struct {
		rec   v1beta1.BackupRecord
		image string
		want  string
	}{
		"a failed backup has no dump":     {rec: func() v1beta1.BackupRecord { r := ok; r.Phase = v1beta1.BackupPhaseFailed; return r }(), image: testBackupImage, want: "not Completed"},
		"a record without a location":     {rec: func() v1beta1.BackupRecord { r := ok; r.Location = ""; return r }(), image: testBackupImage, want: "no s3:// location"},
		"no image to run pg_restore with": {rec: ok, want: "no image"},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			if _, err := RestoreJob(sp, tt.rec, tt.image, "eu-west-1"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("RestoreJob = %v, want an error saying %q", err, tt.want)
			}
		})
	}
	job, err := RestoreJob(sp, ok, testBackupImage, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["BACKUP_BUCKET"] != "bucket" || env["RESTORE_KEY"] != "backups/"+v2+"/a0/" {
		t.Errorf("the restore Job's target: %v", env)
	}
	if job.Labels["controller-uid"] != "" || len(job.OwnerReferences) > 0 {
		t.Error("the restore Job would be adopted by Metacontroller as a child of the instance")
	}
}

func TestFindBackupByNameOrVersion(t *testing.T) {
	st := v1beta1.Status{Backups: []v1beta1.BackupRecord{{Name: "b2", Version: "v3"}, {Name: "b1", Version: "v2"}, {Name: "b0", Version: "v2"}}}
	if r, err := FindBackup(st, "b1"); err != nil || r.Name != "b1" {
		t.Errorf("by name: %+v %v", r, err)
	}
	if r, err := FindBackup(st, "v3"); err != nil || r.Name != "b2" {
		t.Errorf("by the one version: %+v %v", r, err)
	}
	if _, err := FindBackup(st, "v2"); err == nil || !strings.Contains(err.Error(), "2 backups") {
		t.Errorf("two backups of a version: %v", err)
	}
	if _, err := FindBackup(st, "nope"); err == nil {
		t.Error("an unknown backup is found")
	}
}
