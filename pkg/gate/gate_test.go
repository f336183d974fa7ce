package gate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var components = []string{"web", "celeryd", "celerybeat"}

func running(v string) map[string]string {
	return map[string]string{"web": v, "celeryd": v, "celerybeat": v}
}

func job(name, version string, attempt int32, state JobState) MigrationJob {
	return MigrationJob{Name: name, Version: version, Attempt: attempt, State: state}
}

func TestMigrationGate(t *testing.T) {
	tests := map[string]struct {
		in   MigrationInput
		want MigrationDecision
	}{
		"a fresh install waits for its config before migrating": {
			in:   MigrationInput{Version: "v1", Waiting: "the app config Secret", Components: components},
			want: MigrationDecision{Stage: StagePreparing, Targets: map[string]string{}},
		},
		"a fresh install with its config starts the first migration and runs no workload": {
			in:   MigrationInput{Version: "v1", Components: components},
			want: MigrationDecision{Stage: StageMigrating, CreateJob: true, Targets: map[string]string{}},
		},
		"a running migration keeps its Job and no workload runs yet": {
			in:   MigrationInput{Version: "v1", Components: components, Jobs: []MigrationJob{job("m1", "v1", 0, JobActive)}},
			want: MigrationDecision{Stage: StageMigrating, KeepJobs: []string{"m1"}, Targets: map[string]string{}},
		},
		"a succeeded Job records the version and moves every workload in the same decision": {
			in: MigrationInput{Version: "v1", Components: components, Jobs: []MigrationJob{job("m1", "v1", 0, JobSucceeded)}},
			want: MigrationDecision{Stage: StageMigrated, MigratedVersion: "v1", KeepJobs: []string{"m1"},
				Targets: map[string]string{"web": "v1", "celeryd": "v1", "celerybeat": "v1"}},
		},
		"the succeeded Job is dropped once migratedVersion has come back": {
			in: MigrationInput{Version: "v1", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Jobs: []MigrationJob{job("m1", "v1", 0, JobSucceeded)}},
			want: MigrationDecision{Stage: StageMigrated, MigratedVersion: "v1", Targets: running("v1")},
		},
		"a new version keeps every workload on the version it runs": {
			in:   MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1")},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", CreateJob: true, Targets: running("v1")},
		},
		"a failed migration keeps its Job and the old version, and is not retried": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Jobs: []MigrationJob{job("m2", "v2", 0, JobFailed)}},
			want: MigrationDecision{Stage: StageFailed, MigratedVersion: "v1", KeepJobs: []string{"m2"}, Targets: running("v1")},
		},
		"a new attempt after a failure drops the failed Job and starts a fresh one": {
			in: MigrationInput{Version: "v2", Attempt: 1, MigratedVersion: "v1", Components: components, Running: running("v1"),
				Jobs: []MigrationJob{job("m2", "v2", 0, JobFailed)}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", CreateJob: true, Targets: running("v1")},
		},
		"a new version waits while an older migration still runs": {
			in: MigrationInput{Version: "v3", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Jobs: []MigrationJob{job("m2", "v2", 0, JobActive)}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", KeepJobs: []string{"m2"}, Targets: running("v1")},
		},
		"a workload that went missing comes back on the last migrated version": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components,
				Running: map[string]string{"web": "v1"}, Jobs: []MigrationJob{job("m2", "v2", 0, JobActive)}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", KeepJobs: []string{"m2"},
				Targets: map[string]string{"web": "v1", "celeryd": "v1", "celerybeat": "v1"}},
		},
		"a kept record of an earlier migration never counts as the success of the same version now": {
			in: MigrationInput{Version: "v1", MigratedVersion: "v2", Components: components, Running: running("v2"),
				Records: []string{"uid-m1", "uid-m2"},
				Jobs:    []MigrationJob{{Name: "m1", Version: "v1", State: JobSucceeded, UID: "uid-m1"}, {Name: "m2", Version: "v2", State: JobSucceeded, UID: "uid-m2"}}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v2", KeepJobs: []string{"m2"}, RecordJobs: []string{"m2"}, Targets: running("v2")},
		},
		"a Job marked as a record never counts, even when the status that listed it is lost": {
			in: MigrationInput{Version: "v1", Components: components, Running: running("v2"),
				Jobs: []MigrationJob{{Name: "m1", Version: "v1", State: JobSucceeded, UID: "uid-m1", Record: true}}},
			want: MigrationDecision{Stage: StageMigrating, Targets: running("v2")},
		},
		"a fresh Job of a version whose old record is gone counts": {
			in: MigrationInput{Version: "v1", MigratedVersion: "v2", Components: components, Running: running("v2"),
				Records: []string{"uid-m1-old", "uid-m2"},
				Jobs:    []MigrationJob{{Name: "m1", Version: "v1", State: JobSucceeded, UID: "uid-m1-new"}, {Name: "m2", Version: "v2", State: JobSucceeded, UID: "uid-m2"}}},
			want: MigrationDecision{Stage: StageMigrated, MigratedVersion: "v1", KeepJobs: []string{"m1", "m2"}, RecordJobs: []string{"m2"}, Targets: running("v1")},
		},
		"records of earlier migrations are kept and do not hold a new one back": {
			in: MigrationInput{Version: "v3", MigratedVersion: "v2", Components: components, Running: running("v2"),
				Records: []string{"uid-m2"}, Jobs: []MigrationJob{{Name: "m2", Version: "v2", State: JobSucceeded, UID: "uid-m2"}}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v2", CreateJob: true, KeepJobs: []string{"m2"}, RecordJobs: []string{"m2"}, Targets: running("v2")},
		},
		"a succeeded Job that is no record is dropped": {
			in: MigrationInput{Version: "v3", MigratedVersion: "v2", Components: components, Running: running("v2"),
				Jobs: []MigrationJob{{Name: "m2", Version: "v2", State: JobSucceeded, UID: "uid-m2"}}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v2", CreateJob: true, Targets: running("v2")},
		},
		"a required backup is taken before the migration, and nothing moves": {
			in:   MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"), Backup: &BackupInput{Policy: BackupRequired}},
			want: MigrationDecision{Stage: StageBackingUp, MigratedVersion: "v1", Backup: BackupDecision{Create: true}, Targets: running("v1")},
		},
		"a running backup holds the migration back": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Backup: &BackupInput{Policy: BackupRequired, Current: &ObservedBackup{Name: "b2", State: JobActive}}},
			want: MigrationDecision{Stage: StageBackingUp, MigratedVersion: "v1", Backup: BackupDecision{Keep: true}, Targets: running("v1")},
		},
		"a completed backup starts the migration": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Backup: &BackupInput{Policy: BackupRequired, Current: &ObservedBackup{Name: "b2", State: JobSucceeded}}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", CreateJob: true, Backup: BackupDecision{Keep: true}, Targets: running("v1")},
		},
		"a failed required backup stops the deploy and the old version keeps serving": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Backup: &BackupInput{Policy: BackupRequired, Current: &ObservedBackup{Name: "b2", State: JobFailed}}},
			want: MigrationDecision{Stage: StageFailed, MigratedVersion: "v1", Backup: BackupDecision{Keep: true}, Targets: running("v1")},
		},
		"a failed best-effort backup lets the migration run, with a warning": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Backup: &BackupInput{Policy: BackupBestEffort, Current: &ObservedBackup{Name: "b2", State: JobFailed}}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", CreateJob: true, Backup: BackupDecision{Keep: true, Warning: "w"}, Targets: running("v1")},
		},
		"a required backup that can't be taken stops the deploy": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Backup: &BackupInput{Policy: BackupRequired, Unavailable: "no bucket"}},
			want: MigrationDecision{Stage: StageFailed, MigratedVersion: "v1", Targets: running("v1")},
		},
		"backups off: the migration starts at once": {
			in:   MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"), Backup: &BackupInput{Policy: BackupOff}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", CreateJob: true, Targets: running("v1")},
		},
		"a backup still running from an earlier attempt holds back the next backup and every migration": {
			in: MigrationInput{Version: "v2", Attempt: 1, MigratedVersion: "v1", Components: components, Running: running("v1"),
				Backup: &BackupInput{Policy: BackupRequired, Running: []string{"b2-attempt-0"}}},
			want: MigrationDecision{Stage: StageBackingUp, MigratedVersion: "v1", Backup: BackupDecision{KeepRunning: true}, Targets: running("v1")},
		},
		"backups turned off (or the status lost) don't start a migration beside the backup still running": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Backup: &BackupInput{Policy: BackupOff, Current: &ObservedBackup{Name: "b2", State: JobActive}}},
			want: MigrationDecision{Stage: StageBackingUp, MigratedVersion: "v1", Backup: BackupDecision{Keep: true}, Targets: running("v1")},
		},
		"the backup stays while its migration runs": {
			in: MigrationInput{Version: "v2", MigratedVersion: "v1", Components: components, Running: running("v1"),
				Jobs:   []MigrationJob{job("m2", "v2", 0, JobActive)},
				Backup: &BackupInput{Policy: BackupRequired, Current: &ObservedBackup{Name: "b2", State: JobSucceeded}}},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v1", KeepJobs: []string{"m2"}, Backup: BackupDecision{Keep: true}, Targets: running("v1")},
		},
		"going back to an earlier version migrates it again before any pod moves back": {
			in:   MigrationInput{Version: "v1", MigratedVersion: "v2", Components: components, Running: running("v2")},
			want: MigrationDecision{Stage: StageMigrating, MigratedVersion: "v2", CreateJob: true, Targets: running("v2")},
		},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			got := MigrationGate(tt.in)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(MigrationDecision{}, "Message"), cmpopts.EquateEmpty(),
				cmp.Comparer(func(a, b BackupDecision) bool {
					return a.Create == b.Create && a.Keep == b.Keep && (a.Warning == "") == (b.Warning == "")
				})); diff != "" {
				t.Errorf("MigrationGate (-want +got):\n%s", diff)
			}
			if got.Stage != StageMigrated && got.Message == "" {
				t.Error("a decision that holds the version back must say why")
			}
		})
	}
}

func TestBeatSingleton(t *testing.T) {
	tests := map[string]struct {
		want          int32
		otherObserved bool
		replicas      int32
	}{
		"one beat is asked for and none other runs": {want: 1, replicas: 1},
		"beat is switched off":                      {want: 0, replicas: 0},
		"another beat workload is still observed":   {want: 1, otherObserved: true, replicas: 0},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			if got := BeatReplicas(tt.want, tt.otherObserved); got != tt.replicas {
				t.Errorf("BeatReplicas(%d, %v) = %d, want %d", tt.want, tt.otherObserved, got, tt.replicas)
			}
		})
	}
}

func TestCapBeatsNeverAllowsTwo(t *testing.T) {
	tests := map[string]struct{ in, want []int32 }{
		"no beat":                           {nil, []int32{}},
		"one beat keeps its replica":        {[]int32{1}, []int32{1}},
		"a beat asking for three gets one":  {[]int32{3}, []int32{1}},
		"two running beats: the first wins": {[]int32{1, 1}, []int32{1, 0}},
		"a stopped beat leaves room":        {[]int32{0, 1}, []int32{0, 1}},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, CapBeats(tt.in), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("CapBeats(%v) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
