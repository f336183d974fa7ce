// Package gate holds Summon's two safety rules as pure functions: the migration gate (no pod runs
// a version before that version's migrations have succeeded) and the Celerybeat singleton (never
// two beats). It sees the world only through its arguments and performs no I/O.
package gate

import (
	"fmt"
	"slices"
	"strings"
)

// JobState is what an observed migration Job has come to.
type JobState int

const (
	JobActive JobState = iota
	JobSucceeded
	JobFailed
)

// String is the state in words, as the Job's own conditions would say it.
func (s JobState) String() string {
	switch s {
	case JobActive:
		return "Active"
	case JobSucceeded:
		return "Succeeded"
	case JobFailed:
		return "Failed"
	}
	return fmt.Sprintf("JobState(%d)", int(s))
}

// MigrationJob is one observed migration Job.
type MigrationJob struct {
	Name    string
	Version string
	Attempt int32
	State   JobState
	// Reason says why a failed Job failed, in the Job's own words.
	Reason string
	// UID is the Job object's uid: a Job kept as the record of an earlier migration is known by
	// it, so that a new Job of the same name is never taken for the old one.
	UID string
	// Record says the Job carries the mark of a record (kept for its logs), which outlives a
	// lost status.
	Record bool
}

// isRecord says whether a Job is the record of an earlier migration.
func (j MigrationJob) isRecord(records []string) bool {
	return j.Record || (j.UID != "" && slices.Contains(records, j.UID))
}

// MigrationInput is what the gate needs to know about one instance.
type MigrationInput struct {
	// Version and Attempt name the migration the spec asks for.
	Version string
	Attempt int32
	// MigratedVersion is status.migratedVersion as the request carries it: recorded and
	// round-tripped.
	MigratedVersion string
	// Jobs are the observed migration Jobs.
	Jobs []MigrationJob
	// Waiting names what a migration still needs before it may start (the app config Secret, the
	// external resources), in words for the status; empty when everything exists.
	Waiting string
	// Running is the version each app component's workload runs, as observed; a component
	// without a workload is absent.
	Running map[string]string
	// Components are every app component the instance runs.
	Components []string
	// Records are the uids of the succeeded migration Jobs kept as the record of earlier
	// migrations (status.migrations). Such a Job is never the spec's version's success: it is
	// evidence of a migration that ran against an older database.
	Records []string
	// Backup is the backup the migration waits for; nil (or Policy Off) takes none.
	Backup *BackupInput
}

// Stage is where the migration of the spec's version stands.
type Stage int

const (
	// StagePreparing: the migration can't start until its inputs exist.
	StagePreparing Stage = iota
	// StageMigrating: the migration runs, or waits for an older one to finish.
	StageMigrating
	// StageMigrated: the spec's version has migrated; workloads may run it.
	StageMigrated
	// StageFailed: the spec's version failed to migrate; nothing moves until the user acts.
	StageFailed
	// StageBackingUp: the backup before the migration runs; the migration starts once it has
	// completed.
	StageBackingUp
)

// MigrationDecision is what the gate allows.
type MigrationDecision struct {
	Stage Stage
	// MigratedVersion is the status.migratedVersion to write. It changes in the same response
	// that first sees a successful Job.
	MigratedVersion string
	// CreateJob asks for a new Job for (Version, Attempt).
	CreateJob bool
	// KeepJobs are observed migration Jobs to return as observed; every other one is dropped.
	KeepJobs []string
	// RecordJobs are those of KeepJobs kept only as records: they are returned with the record
	// mark.
	RecordJobs []string
	// Targets is the version each app component's workload runs; a component that may not run
	// yet is absent.
	Targets map[string]string
	// Message says, in words for the user, what the migration waits for or why it failed.
	Message string
	// Backup is what happens to the backup before the migration.
	Backup BackupDecision
}

// MigrationGate decides which version each workload may run and what happens to migration Jobs.
//
// A version is migrated when status.migratedVersion names it or its Job is seen succeeded. Until
// then, every workload keeps the version it runs, and a component with no workload is created
// only on the last migrated version (never, on a fresh install). A succeeded Job is kept until its
// success has come back in status, so a lost status write can't make the migration run twice. A
// failed Job is kept for its logs and never retried by itself. Only one migration runs at a time:
// two concurrent migrate commands on one database can deadlock or half-apply.
func MigrationGate(in MigrationInput) MigrationDecision {
	d := MigrationDecision{MigratedVersion: in.MigratedVersion}
	current, other := splitJobs(in)

	var waitFor []string
	for _, j := range other {
		if j.State == JobActive {
			d.KeepJobs = append(d.KeepJobs, j.Name)
			waitFor = append(waitFor, j.Name)
		} else if j.State == JobSucceeded && slices.Contains(in.Records, j.UID) && j.UID != "" {
			// The record of an earlier migration: kept for its logs, never a success of this one.
			d.KeepJobs = append(d.KeepJobs, j.Name)
			d.RecordJobs = append(d.RecordJobs, j.Name)
		}
	}
	if current != nil && current.isRecord(in.Records) {
		// The Job of the spec's version and attempt is the record of an earlier migration of the
		// same version (a way back to it): the database has moved on since, so it migrates again.
		// Jobs are immutable, so the old Job goes first and a fresh one of the same name follows.
		d.Stage = StageMigrating
		d.Message = fmt.Sprintf("removing the record of an earlier migration of version %s (Job %s) before migrating it again",
			in.Version, current.Name)
		slices.Sort(d.KeepJobs)
		d.Targets = targets(in, d)
		return d
	}

	switch {
	case in.MigratedVersion == in.Version:
		d.Stage = StageMigrated
	case current != nil && current.State == JobSucceeded:
		d.Stage = StageMigrated
		d.MigratedVersion = in.Version
		d.KeepJobs = append(d.KeepJobs, current.Name)
	case current != nil && current.State == JobFailed:
		d.Stage = StageFailed
		d.KeepJobs = append(d.KeepJobs, current.Name)
		d.Message = failedMessage(current)
	case current != nil:
		d.Stage = StageMigrating
		d.KeepJobs = append(d.KeepJobs, current.Name)
		d.Message = fmt.Sprintf("running the migrations of version %s (Job %s)", in.Version, current.Name)
	case in.Waiting != "":
		d.Stage = StagePreparing
		d.Message = "waiting for " + in.Waiting + " before migrating"
	case len(waitFor) > 0:
		d.Stage = StageMigrating
		d.Message = fmt.Sprintf("waiting for the earlier migration Job %s to finish before migrating version %s",
			strings.Join(waitFor, ", "), in.Version)
	default:
		backupFirst(in, &d)
	}
	if current != nil && in.Backup != nil && in.Backup.Current != nil {
		// The backup of a migration that runs (or ran) stays until the migration is decided: it
		// is the copy to go back to.
		d.Backup.Keep = true
	}
	slices.Sort(d.KeepJobs)
	slices.Sort(d.RecordJobs)
	d.Targets = targets(in, d)
	return d
}

// splitJobs separates the Job for the spec's version and attempt from every other one.
func splitJobs(in MigrationInput) (current *MigrationJob, other []MigrationJob) {
	for i, j := range in.Jobs {
		if j.Version == in.Version && j.Attempt == in.Attempt && in.MigratedVersion != in.Version {
			current = &in.Jobs[i]
			continue
		}
		other = append(other, j)
	}
	return current, other
}

func targets(in MigrationInput, d MigrationDecision) map[string]string {
	t := map[string]string{}
	for _, c := range in.Components {
		switch {
		case d.Stage == StageMigrated:
			t[c] = in.Version
		case in.Running[c] != "":
			t[c] = in.Running[c]
		case in.MigratedVersion != "":
			// A workload that went missing comes back on the last migrated version: the database
			// has its migrations, and the others run it (or are about to).
			t[c] = in.MigratedVersion
		}
	}
	return t
}

func failedMessage(j *MigrationJob) string {
	reason := j.Reason
	if reason == "" {
		reason = "it failed"
	}
	return fmt.Sprintf("the migrations of version %s failed (Job %s: %s); the running version keeps serving. "+
		"Read the logs with kubectl logs job/%s, then retry with summonctl retry-migration (it raises spec.migrations.attempt), or set spec.version to a fixed version",
		j.Version, j.Name, strings.TrimSuffix(reason, "."), j.Name)
}
