package platform

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// FindBackup is the record of a backup in a status, by its name (the backup Job's) or, as
// summonctl backups lists them, by the version it preceded when that names one backup.
func FindBackup(st v1beta1.Status, name string) (v1beta1.BackupRecord, error) {
	var byVersion []v1beta1.BackupRecord
	for _, r := range st.Backups {
		if r.Name == name {
			return r, nil
		}
		if r.Version == name {
			byVersion = append(byVersion, r)
		}
	}
	if len(byVersion) == 1 {
		return byVersion[0], nil
	}
	if len(byVersion) > 1 {
		return v1beta1.BackupRecord{}, fmt.Errorf("%d backups precede version %s: name one by its NAME (summonctl backups lists them)", len(byVersion), name)
	}
	return v1beta1.BackupRecord{}, fmt.Errorf("no backup %s in the instance's status: summonctl backups lists them", name)
}

// RestoreJob is the Job summonctl restore runs to bring one backup back into an instance's
// database: the dump under the record's location goes back with pg_restore, with the instance's
// own credentials (the Secrets the backup Job read). image is a backup image (the hook's
// --backup-image); region is the bucket's.
func RestoreJob(sp *v1beta1.SummonPlatform, rec v1beta1.BackupRecord, image, region string) (*batchv1.Job, error) {
	if err := Restorable(rec); err != nil {
		return nil, err
	}
	bucket, prefix, _ := splitS3(rec.Location)
	if image == "" {
		return nil, fmt.Errorf("no image to run pg_restore with: give the hook's --backup-image")
	}
	p := children.NewPlatform(sp.Name, sp.Namespace, sp.Spec.Defaulted(v1beta1.HookDefaults{}))
	return children.RestoreJob(p, children.DumpTarget{Image: image, Bucket: bucket, Region: region}, prefix), nil
}

// Restorable says whether a restore Job can bring the backup back: a completed dump with an
// s3:// location. nil if it can; otherwise why not, in words for the user. summonctl restore and
// the dashboard's restore command both go by it.
func Restorable(rec v1beta1.BackupRecord) error {
	if rec.Phase != v1beta1.BackupPhaseCompleted {
		return fmt.Errorf("backup %s is %s, not Completed: there is no dump to restore", rec.Name, rec.Phase)
	}
	if strings.HasPrefix(rec.Location, children.PostgresBackupLocation("")) {
		return fmt.Errorf("backup %s is CloudNativePG's volume snapshot of an own Postgres: it comes back as a new Cluster recovered from it, "+
			"not through a restore Job (docs/backups.md, \"An own Postgres\")", rec.Name)
	}
	if _, _, ok := splitS3(rec.Location); !ok {
		return fmt.Errorf("backup %s has no s3:// location (%q)", rec.Name, rec.Location)
	}
	return nil
}

func splitS3(location string) (bucket, key string, ok bool) {
	rest, ok := strings.CutPrefix(location, "s3://")
	if !ok {
		return "", "", false
	}
	bucket, key, ok = strings.Cut(rest, "/")
	return bucket, key, ok && bucket != "" && key != ""
}
