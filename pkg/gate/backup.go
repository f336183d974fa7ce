package gate

import (
	"fmt"
	"strings"
)

// BackupPolicy says whether a migration waits for a backup of the database.
type BackupPolicy int

const (
	// BackupOff takes no backup.
	BackupOff BackupPolicy = iota
	// BackupRequired takes one and migrates only once it has completed: a failed backup stops the
	// deploy, and the running version keeps serving.
	BackupRequired
	// BackupBestEffort takes one and migrates once it has finished, completed or not.
	BackupBestEffort
)

// BackupState is what an observed backup has come to.
type BackupState = JobState

// ObservedBackup is the backup of the spec's version and attempt, as observed.
type ObservedBackup struct {
	Name  string
	State BackupState
	// Reason says why a failed backup failed, in its own words.
	Reason string
}

// BackupInput is what the gate knows of the backup before the spec's version's migration.
type BackupInput struct {
	Policy BackupPolicy
	// Unavailable says why no backup can be taken (no backup image, no bucket, a database kind
	// Summon doesn't back up); empty when one can.
	Unavailable string
	// Current is the backup of (Version, Attempt) as observed, or nil.
	Current *ObservedBackup
	// Running names every other backup Job still running (an earlier version's or attempt's).
	Running []string
}

// BackupDecision is what the gate asks of the backup.
type BackupDecision struct {
	// Create asks for the backup of (Version, Attempt).
	Create bool
	// Keep returns the observed backup as it is.
	Keep bool
	// KeepRunning returns the backup Jobs of BackupInput.Running as they are.
	KeepRunning bool
	// Warning says, for a best-effort backup, that the migration runs without one and why.
	Warning string
}

// backupFirst decides the step before a migration Job is created: the backup, taken and waited
// for as the policy says. It is the only place the gate creates a Job.
func backupFirst(in MigrationInput, d *MigrationDecision) {
	start := func() {
		d.Stage = StageMigrating
		d.CreateJob = true
		d.Message = fmt.Sprintf("starting the migrations of version %s", in.Version)
	}
	b := in.Backup
	// No Job starts beside a dump in flight, whatever the policy says now: a spec that changed
	// its version, attempt or policy, or a status that was lost, must not put a migration or a
	// second dump beside one still reading the database.
	if b != nil && len(b.Running) > 0 {
		d.Stage = StageBackingUp
		d.Backup.KeepRunning = true
		d.Message = fmt.Sprintf("waiting for the backup Job %s to finish before the migrations of version %s",
			strings.Join(b.Running, ", "), in.Version)
		return
	}
	cur := b.currentRunning()
	if b == nil || b.Policy == BackupOff {
		if cur != nil {
			d.Stage = StageBackingUp
			d.Backup.Keep = true
			d.Message = fmt.Sprintf("waiting for the backup Job %s to finish before the migrations of version %s", cur.Name, in.Version)
			return
		}
		start()
		return
	}
	cur = b.Current
	switch {
	case cur == nil && b.Unavailable != "":
		if b.Policy == BackupBestEffort {
			d.Backup.Warning = "no backup before the migrations of version " + in.Version + ": " + b.Unavailable
			start()
			return
		}
		d.Stage = StageFailed
		d.Message = fmt.Sprintf("the migrations of version %s need a backup first (spec.backups.beforeMigration: Required), and none can be taken: %s; "+
			"the running version keeps serving. Fix that, or set spec.backups.beforeMigration to BestEffort or Never", in.Version, b.Unavailable)
	case cur == nil:
		d.Stage = StageBackingUp
		d.Backup.Create = true
		d.Message = fmt.Sprintf("taking a backup of the database before the migrations of version %s", in.Version)
	case cur.State == JobActive:
		d.Stage = StageBackingUp
		d.Backup.Keep = true
		d.Message = fmt.Sprintf("taking a backup of the database before the migrations of version %s (%s)", in.Version, cur.Name)
	case cur.State == JobSucceeded:
		d.Backup.Keep = true
		start()
	case b.Policy == BackupBestEffort:
		d.Backup.Keep = true
		d.Backup.Warning = fmt.Sprintf("the backup before the migrations of version %s failed (%s: %s); migrating without it (spec.backups.beforeMigration: BestEffort)",
			in.Version, cur.Name, reasonOr(cur.Reason))
		start()
	default:
		d.Backup.Keep = true
		d.Stage = StageFailed
		d.Message = fmt.Sprintf("the backup before the migrations of version %s failed (%s: %s); the migrations did not start and the running version keeps serving. "+
			"Read its logs, then retry with summonctl retry-migration (it raises spec.migrations.attempt), or set spec.backups.beforeMigration to BestEffort",
			in.Version, cur.Name, reasonOr(cur.Reason))
	}
}

// currentRunning is the backup of the spec's version and attempt while it runs, or nil.
func (b *BackupInput) currentRunning() *ObservedBackup {
	if b == nil || b.Current == nil || b.Current.State != JobActive {
		return nil
	}
	return b.Current
}

func reasonOr(reason string) string {
	if reason == "" {
		return "it failed"
	}
	return strings.TrimSuffix(reason, ".")
}
