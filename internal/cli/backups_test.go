package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

func TestRestoreRefusesWithoutBackupOrConfirmation(t *testing.T) {
	tests := map[string]struct {
		o    RestoreOptions
		want string
	}{
		"no backup named":     {o: RestoreOptions{Name: "car1-qa", Yes: true}, want: "needs --backup"},
		"no --yes":            {o: RestoreOptions{Name: "car1-qa", Backup: "car1-qa-backup-1"}, want: "add --yes"},
		"named and confirmed": {o: RestoreOptions{Name: "car1-qa", Backup: "car1-qa-backup-1", Yes: true}},
	}
	for sentence, tt := range tests {
		t.Run(sentence, func(t *testing.T) {
			err := tt.o.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestBackupsAndMigrationsTables(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 27, 9, 1, 0, 0, time.UTC))
	sp := &v1beta1.SummonPlatform{}
	sp.Name, sp.Namespace = "car1-qa", "summon-qa"
	sp.Status.Backups = []v1beta1.BackupRecord{
		{Name: "car1-qa-backup-2", Version: "v3", FromVersion: "v2", Phase: "Running", Location: "s3://b/backups/v3/a0/"},
		{Name: "car1-qa-backup-1", Version: "v2", FromVersion: "v1", Phase: "Completed", Location: "s3://b/backups/v2/a0/", CompletedAt: &at},
	}
	sp.Status.Migrations = []v1beta1.MigrationRecord{{Version: "v2", Job: "car1-qa-migrate-1", CompletedAt: &at}}

	var b bytes.Buffer
	if err := writeBackups(&b, sp.Status); err != nil {
		t.Fatal(err)
	}
	want := `NAME              BEFORE VERSION  RESTORES VERSION  PHASE      COMPLETED             LOCATION
car1-qa-backup-2  v3              v2                Running    -                     s3://b/backups/v3/a0/
car1-qa-backup-1  v2              v1                Completed  2026-11-27T09:01:00Z  s3://b/backups/v2/a0/
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("backups (-want +got):\n%s", diff)
	}
	b.Reset()
	if err := writeMigrations(&b, sp); err != nil {
		t.Fatal(err)
	}
	want = `VERSION  ATTEMPT  JOB                COMPLETED             LOGS
v2       0        car1-qa-migrate-1  2026-11-27T09:01:00Z  kubectl logs job/car1-qa-migrate-1 -n summon-qa
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("migrations (-want +got):\n%s", diff)
	}
	b.Reset()
	if err := writeBackups(&b, v1beta1.Status{}); err != nil || !strings.Contains(b.String(), "no backup recorded") {
		t.Errorf("no backups: %q %v", b.String(), err)
	}
}
