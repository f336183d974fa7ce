package platform

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/gate"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// Condition reasons of BackedUp.
const (
	reasonBackupNever       = "Never"
	reasonBackupUnavailable = "NotAvailable"
	reasonBackingUp         = "BackingUp"
	reasonBackupCompleted   = "Completed"
	reasonBackupFailed      = "BackupFailed"
)

// backupPlan is what the backup before a migration needs in one sync.
type backupPlan struct {
	input *gate.BackupInput
	// explicit is the policy as the spec writes it ("" when left to Summon).
	explicit v1beta1.BackupPolicy
	// target and database are where a dump goes and whose database it copies; set when Summon
	// can take one.
	target   children.DumpTarget
	database *children.DatabaseEnv
	// cnpg says the backup is CloudNativePG's (an own Postgres), not a pg_dump Job.
	cnpg bool
	// keep is spec.backups.keep: how many of CNPG's completed Backups stay, since each is its
	// snapshots.
	keep int
	// jobs are the observed backups, pg_dump Jobs and CNPG Backups, by name.
	jobs map[string]ObservedBackupJob
}

// ObservedBackupJob is one backup Job as observed. summonctl and the dashboard read Jobs through
// BackupJobOf too, so that a backup's state means the same everywhere.
type ObservedBackupJob struct {
	gate.ObservedBackup
	Version     string
	FromVersion string
	Attempt     int32
	Location    string
	CompletedAt *metav1.Time
	obj         metacontroller.Object
}

// BackupJobOf reads a Job as a backup of the instance named instance; ok is false for any other
// Job.
func BackupJobOf(instance string, j *batchv1.Job) (ObservedBackupJob, bool) {
	if j.Labels[children.LabelComponent] != string(children.Backup) || j.Labels[children.LabelInstance] != instance {
		return ObservedBackupJob{}, false
	}
	mj, _ := MigrationJobOf(instance, withComponent(j, children.Migrations))
	b := ObservedBackupJob{
		ObservedBackup: gate.ObservedBackup{Name: j.Name, State: mj.State, Reason: mj.Reason},
		Version:        mj.Version,
		FromVersion:    j.Annotations[children.AnnotationBackupFrom],
		Attempt:        mj.Attempt,
		Location:       j.Annotations[children.AnnotationBackupLocation],
		CompletedAt:    j.Status.CompletionTime,
	}
	return b, true
}

// PostgresBackupOf reads a CNPG Backup as a backup of the instance named instance; ok is false
// for any other object. CNPG (v1.27) writes its phase in status.phase: completed and failed are
// final, and walArchivingFailing too (the backup can't complete while WAL archiving fails);
// every other phase, and none yet, is a backup under way.
func PostgresBackupOf(instance string, obj metacontroller.Object) (ObservedBackupJob, bool) {
	var b struct {
		metav1.ObjectMeta `json:"metadata"`
		Status            struct {
			Phase     string       `json:"phase"`
			Error     string       `json:"error"`
			StoppedAt *metav1.Time `json:"stoppedAt"`
		} `json:"status"`
	}
	if obj["kind"] != children.CNPGBackupKind || decodeTyped(obj, &b) != nil ||
		b.Labels[children.LabelComponent] != string(children.Backup) || b.Labels[children.LabelInstance] != instance {
		return ObservedBackupJob{}, false
	}
	attempt, _ := strconv.Atoi(b.Annotations[children.AnnotationMigrationAttempt])
	out := ObservedBackupJob{
		ObservedBackup: gate.ObservedBackup{Name: b.Name, State: gate.JobActive},
		Version:        b.Labels[children.LabelVersion],
		FromVersion:    b.Annotations[children.AnnotationBackupFrom],
		Attempt:        int32(attempt),
		Location:       b.Annotations[children.AnnotationBackupLocation],
	}
	switch b.Status.Phase {
	case cnpgBackupCompleted:
		out.State = gate.JobSucceeded
		out.CompletedAt = b.Status.StoppedAt
	case cnpgBackupFailed, cnpgBackupWALArchivingFailing:
		out.State = gate.JobFailed
		out.Reason = strings.TrimSpace(b.Status.Phase + ": " + b.Status.Error)
	}
	return out, true
}

// CNPG's Backup phases (v1.27) that end a backup.
const (
	cnpgBackupCompleted           = "completed"
	cnpgBackupFailed              = "failed"
	cnpgBackupWALArchivingFailing = "walArchivingFailing"
)

// withComponent is a shallow copy of a Job under another component label, so that one reader of
// a Job's version, attempt and state serves both kinds.
func withComponent(j *batchv1.Job, c children.Component) *batchv1.Job {
	cp := *j
	cp.Labels = map[string]string{}
	for k, v := range j.Labels {
		cp.Labels[k] = v
	}
	cp.Labels[children.LabelComponent] = string(c)
	return &cp
}

// planBackup resolves the backup policy of one instance and reads its backup Jobs. Summon backs
// up a shared database (spec.database.shared) with pg_dump into the instance's bucket, and an own
// Postgres (spec.database.inCluster) with CloudNativePG's volume snapshot Backup; any other
// database is the user's to back up (docs/backups.md). Completed CNPG Backups are read whatever
// the hook's configuration now, so that none is dropped (with its snapshots) because a flag went.
func planBackup(p children.Platform, par parent, seen observation, env Env) backupPlan {
	plan := backupPlan{explicit: p.Spec.Backups.BeforeMigration, keep: int(*p.Spec.Backups.Keep), jobs: map[string]ObservedBackupJob{}}
	for ref, obj := range seen.all {
		var b ObservedBackupJob
		ok := false
		switch ref.group {
		case GroupJob:
			var j batchv1.Job
			if decodeJob(obj, &j) == nil {
				b, ok = BackupJobOf(p.Name, &j)
			}
		case GroupPostgresBackup:
			b, ok = PostgresBackupOf(p.Name, obj)
		}
		if ok {
			b.obj = obj
			plan.jobs[b.Name] = b
		}
	}

	unavailable := ""
	db := p.Spec.Database
	names, _ := namesOf(par, env.Outside)
	switch {
	case db.InCluster != nil && (env.Data.CNPG == nil || env.Data.CNPG.SnapshotClass == ""):
		unavailable = "the hook has no --cnpg-snapshot-class to take CloudNativePG's volume snapshots with"
	case db.InCluster != nil:
		plan.cnpg = true
	case db.Shared == nil:
		unavailable = "Summon backs up only a shared database (spec.database.shared) or an own Postgres (spec.database.inCluster); back this database up before each spec.version change yourself (docs/backups.md)"
	case env.Data.BackupImage == "":
		unavailable = "the hook has no --backup-image to run pg_dump with"
	case !env.Outside.AWS:
		unavailable = "the hook manages no bucket for this instance to keep the dump in (its AWS provider is off)"
	case !env.secrets().Ready():
		unavailable = "the hook has no credential master key (--credential-key-file)"
	default:
		d := sharedDatabase(p, par, env)
		plan.database = &d
		plan.target = children.DumpTarget{Image: env.Data.BackupImage, Bucket: names.Bucket, Region: env.Outside.AWSRegion}
	}

	policy := gate.BackupRequired
	switch plan.explicit {
	case v1beta1.BackupNever:
		policy = gate.BackupOff
	case v1beta1.BackupBestEffort:
		policy = gate.BackupBestEffort
	case "":
		if unavailable != "" {
			policy = gate.BackupOff
		}
	}
	in := &gate.BackupInput{Policy: policy, Unavailable: unavailable}
	current := p.Names.BackupJob(p.Spec.Version, p.Spec.Migrations.Attempt)
	if b, ok := plan.jobs[current]; ok && b.Version == p.Spec.Version && b.Attempt == p.Spec.Migrations.Attempt {
		cur := b.ObservedBackup
		in.Current = &cur
	}
	for _, name := range slices.Sorted(maps.Keys(plan.jobs)) {
		if name != current && plan.jobs[name].State == gate.JobActive {
			in.Running = append(in.Running, name)
		}
	}
	if par.status.MigratedVersion == "" {
		// A database that no version has migrated yet holds nothing to go back to.
		in.Policy = gate.BackupOff
	}
	plan.input = in
	return plan
}

// sharedDatabase is the libpq environment of the instance's own role on the shared server: the
// same credentials as its DATABASE_URL.
func sharedDatabase(p children.Platform, par parent, env Env) children.DatabaseEnv {
	sh := p.Spec.Database.Shared
	names, _ := namesOf(par, env.Outside)
	return children.DatabaseEnv{
		Host:     sh.Host,
		Port:     sh.Port,
		User:     names.DatabaseRole,
		Password: env.secrets().Derive(string(par.meta.UID), credentials.DatabasePassword),
		Database: names.Database,
		SSLMode:  sh.SSLMode,
	}
}

// addBackup puts the backup children the gate's decision asks for into the answer: the libpq
// Secret whenever Summon can take a dump (the restore needs it too), and the backup Job of the
// spec's version while the gate keeps it.
func (b backupPlan) addBackup(d *desired, p children.Platform, par parent, dec gate.MigrationDecision) {
	if b.database != nil {
		d.add(children.DatabaseSecret(p, *b.database))
	}
	name := p.Names.BackupJob(p.Spec.Version, p.Spec.Migrations.Attempt)
	if dec.Backup.KeepRunning {
		for _, running := range b.input.Running {
			d.keep(b.jobs[running].obj)
		}
	}
	switch {
	case dec.Backup.Create && b.cnpg:
		d.add(children.PostgresBackup(p, p.Spec.Version, par.status.MigratedVersion, p.Spec.Migrations.Attempt))
	case dec.Backup.Create:
		d.add(children.BackupJob(p, b.target, p.Spec.Version, par.status.MigratedVersion, p.Spec.Migrations.Attempt))
	case dec.Backup.Keep:
		d.keep(b.jobs[name].obj)
	}
	for _, kept := range b.retainedPostgresBackups() {
		d.keep(kept.obj)
	}
}

// retainedPostgresBackups are the newest spec.backups.keep of CNPG's completed Backups. A dump
// lives in the bucket whatever becomes of its Job, but a CNPG Backup owns its snapshots: one that
// leaves the answer is deleted, and its snapshots with it. That is how the older ones go.
func (b backupPlan) retainedPostgresBackups() []ObservedBackupJob {
	var done []ObservedBackupJob
	for _, j := range b.jobs {
		if j.obj != nil && j.obj["kind"] == children.CNPGBackupKind && j.State == gate.JobSucceeded {
			done = append(done, j)
		}
	}
	slices.SortFunc(done, func(x, y ObservedBackupJob) int {
		if c := timeOf(y.CompletedAt).Compare(timeOf(x.CompletedAt)); c != 0 {
			return c
		}
		return strings.Compare(y.Name, x.Name)
	})
	return done[:min(len(done), b.keep)]
}

// backupRecords is status.backups after this sync: every observed backup Job's state over the
// records carried, newest first, at most keep.
func (b backupPlan) backupRecords(carried []v1beta1.BackupRecord, keep int32) []v1beta1.BackupRecord {
	out := slices.Clone(carried)
	for _, name := range slices.Sorted(maps.Keys(b.jobs)) {
		j := b.jobs[name]
		rec := v1beta1.BackupRecord{
			Name: j.Name, Version: j.Version, FromVersion: j.FromVersion, Attempt: j.Attempt,
			Phase: backupPhase(j.State), Location: j.Location, CompletedAt: j.CompletedAt,
		}
		if i := slices.IndexFunc(out, func(r v1beta1.BackupRecord) bool { return r.Name == rec.Name }); i >= 0 {
			out[i] = rec
		} else {
			out = append([]v1beta1.BackupRecord{rec}, out...)
		}
	}
	if len(out) > int(keep) {
		out = out[:keep]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func backupPhase(s gate.BackupState) string {
	switch s {
	case gate.JobSucceeded:
		return v1beta1.BackupPhaseCompleted
	case gate.JobFailed:
		return v1beta1.BackupPhaseFailed
	}
	return v1beta1.BackupPhaseRunning
}

// backedUpCondition says what became of the backup before the spec's version's migration. It is
// written only while a migration is being decided; otherwise it stays as it was, about the last
// one.
func (b backupPlan) backedUpCondition(c *conditions, dec gate.MigrationDecision, par parent, version string) {
	if par.status.MigratedVersion == "" || par.status.MigratedVersion == version || dec.Stage == gate.StageMigrated {
		return
	}
	in := b.input
	switch {
	case dec.Backup.Warning != "":
		c.set(v1beta1.ConditionBackedUp, false, reasonBackupFailed, dec.Backup.Warning)
	case in.Policy == gate.BackupOff && b.explicit == v1beta1.BackupNever:
		c.set(v1beta1.ConditionBackedUp, false, reasonBackupNever, "spec.backups.beforeMigration is Never: version "+version+" migrates without a backup")
	case in.Policy == gate.BackupOff:
		c.set(v1beta1.ConditionBackedUp, false, reasonBackupUnavailable, "no backup before the migrations of version "+version+": "+in.Unavailable)
	case in.Current == nil && in.Unavailable != "":
		c.set(v1beta1.ConditionBackedUp, false, reasonBackupUnavailable, dec.Message)
	case in.Current == nil || in.Current.State == gate.JobActive:
		c.set(v1beta1.ConditionBackedUp, false, reasonBackingUp, "taking a backup of the database before the migrations of version "+version)
	case in.Current.State == gate.JobSucceeded:
		c.set(v1beta1.ConditionBackedUp, true, reasonBackupCompleted,
			"the backup before the migrations of version "+version+" completed ("+in.Current.Name+", "+b.jobs[in.Current.Name].Location+")")
	default:
		c.set(v1beta1.ConditionBackedUp, false, reasonBackupFailed, dec.Message)
	}
}

// migrationRecords is status.migrations after this sync: a migration whose success this sync
// first sees goes first; at most v1beta1.MigrationRecordsKept stay, and their Jobs with them.
func migrationRecords(carried []v1beta1.MigrationRecord, seen observation, dec gate.MigrationDecision, par parent, version string, attempt int32) []v1beta1.MigrationRecord {
	out := slices.Clone(carried)
	if dec.MigratedVersion != par.status.MigratedVersion && dec.MigratedVersion == version {
		for _, j := range seen.jobs {
			if j.Version != version || j.Attempt != attempt || j.State != gate.JobSucceeded || slices.Contains(recordUIDs(carried), j.UID) {
				continue
			}
			rec := v1beta1.MigrationRecord{Version: j.Version, Attempt: j.Attempt, Job: j.Name, JobUID: j.UID, CompletedAt: seen.completed[j.Name]}
			// A record of the same Job name (an earlier migration of this version) is gone with
			// its Job.
			out = slices.DeleteFunc(out, func(r v1beta1.MigrationRecord) bool { return r.Job == j.Name })
			out = append([]v1beta1.MigrationRecord{rec}, out...)
		}
	}
	if len(out) > v1beta1.MigrationRecordsKept {
		out = out[:v1beta1.MigrationRecordsKept]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func recordUIDs(records []v1beta1.MigrationRecord) []string {
	out := make([]string, 0, len(records))
	for _, r := range records {
		if r.JobUID != "" {
			out = append(out, r.JobUID)
		}
	}
	return out
}

// markedRecord is a kept migration Job, as last applied, with the record mark: only metadata
// changes, which a Job allows.
func markedRecord(observed metacontroller.Object) metacontroller.Object {
	out := children.AsObserved(observed)
	metacontroller.SetAnnotation(out, children.AnnotationMigrationRecord, "true")
	return out
}

func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}
