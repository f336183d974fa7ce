package children

import (
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The backup before a migration, for an instance on the shared Postgres: a Job that runs pg_dump
// with the instance's own role (the libpq environment in the Secret Names.Database) and copies the
// dump into the instance's own bucket, with the instance's own IAM key. Nothing of either
// credential is in the Job's spec or argv: both come into the environment from Secrets.
//
// The scripts are constants, and everything that varies reaches them through the environment, so
// a version or a bucket name can never become shell. The test that restores a dump on a real
// PostgreSQL runs these very scripts (test/backup).

// DumpPrefix is where every dump of an instance lives in its bucket.
const DumpPrefix = "backups/"

// DumpKeyPrefix is the prefix of the dumps taken before the migration of one version and attempt:
// backups/<version>/a<attempt>/. The Job adds the UTC time it ran at and .dump; the version is a
// label value, so it is safe in a key.
func DumpKeyPrefix(version string, attempt int32) string {
	return DumpPrefix + version + "/a" + strconv.Itoa(int(attempt)) + "/"
}

// DumpScript dumps the database named by the libpq environment (custom format, without owners or
// grants, so that it restores into any role) into /tmp, copies it to
// s3://$BACKUP_BUCKET/$BACKUP_PREFIX<UTC time>.dump, then deletes the oldest dumps under
// backups/ beyond the newest $BACKUP_KEEP. It needs sh, pg_dump and the AWS CLI. The dump goes
// through a file, not a pipe: POSIX sh has no pipefail, and a pipe would upload half a dump
// of a pg_dump that failed.
const DumpScript = `set -eu
key="${BACKUP_PREFIX}$(date -u +%Y%m%dT%H%M%SZ).dump"
dump="${TMPDIR:-/tmp}/summon-backup.dump"
pg_dump --format=custom --no-owner --no-privileges --file="$dump"
aws s3 cp --only-show-errors "$dump" "s3://${BACKUP_BUCKET}/${key}"
rm -f "$dump"
echo "backup written to s3://${BACKUP_BUCKET}/${key}"
keys=$(aws s3api list-objects-v2 --bucket "$BACKUP_BUCKET" --prefix backups/ --query 'Contents[].Key' --output text |
	tr '\t' '\n' | grep '\.dump$' | awk -F/ '{print $NF " " $0}' | sort | cut -d' ' -f2-) || true
count=$(printf '%s\n' "$keys" | grep -c . || true)
if [ "$count" -gt "$BACKUP_KEEP" ]; then
	printf '%s\n' "$keys" | head -n $((count - BACKUP_KEEP)) | while read -r old; do
		aws s3 rm --only-show-errors "s3://${BACKUP_BUCKET}/${old}"
		echo "deleted the older backup s3://${BACKUP_BUCKET}/${old}"
	done
fi
`

// RestoreScript brings a dump back into the database named by the libpq environment:
// $RESTORE_KEY is a dump's key, or a prefix ending in / whose newest dump is taken. pg_restore
// drops what the dump holds and creates it again, in one transaction: a restore that fails
// leaves the database as it was. Tables a later migration created, which the dump doesn't hold,
// are left in place.
const RestoreScript = `set -eu
key="$RESTORE_KEY"
case "$key" in
*/)
	key=$(aws s3api list-objects-v2 --bucket "$BACKUP_BUCKET" --prefix "$key" --query 'Contents[].Key' --output text |
		tr '\t' '\n' | grep '\.dump$' | sort | tail -n 1) || true
	[ -n "$key" ] || { echo "no dump under s3://${BACKUP_BUCKET}/${RESTORE_KEY}" >&2; exit 1; }
	;;
esac
dump="${TMPDIR:-/tmp}/summon-restore.dump"
aws s3 cp --only-show-errors "s3://${BACKUP_BUCKET}/${key}" "$dump"
pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction --exit-on-error --dbname="$PGDATABASE" "$dump"
rm -f "$dump"
echo "restored s3://${BACKUP_BUCKET}/${key}"
`

// DumpTarget is where an instance's dumps go and what runs them.
type DumpTarget struct {
	// Image has sh, pg_dump and pg_restore of the server's major version or later, and the AWS
	// CLI (the hook's --backup-image).
	Image  string
	Bucket string
	// Region is the bucket's region; empty leaves it to the AWS CLI.
	Region string
}

// Environment of the scripts, beside the libpq and AWS variables.
const (
	envBackupBucket = "BACKUP_BUCKET"
	envBackupPrefix = "BACKUP_PREFIX"
	envBackupKeep   = "BACKUP_KEEP"
	envRestoreKey   = "RESTORE_KEY"
)

// DumpEnv is the script's own environment for a dump, as the Job sets it.
func DumpEnv(bucket, prefix string, keep int32) map[string]string {
	return map[string]string{envBackupBucket: bucket, envBackupPrefix: prefix, envBackupKeep: itoa(keep)}
}

// RestoreEnv is the script's own environment for a restore.
func RestoreEnv(bucket, key string) map[string]string {
	return map[string]string{envBackupBucket: bucket, envRestoreKey: key}
}

// BackupJob dumps the database before the migration of (version, attempt). fromVersion is the
// version that had migrated the database: the one the dump goes back to.
func BackupJob(p Platform, t DumpTarget, version, fromVersion string, attempt int32) *batchv1.Job {
	prefix := DumpKeyPrefix(version, attempt)
	meta := objectMeta(p, p.Names.BackupJob(version, attempt), VersionedLabels(p.Name, Backup, version))
	meta.Annotations = map[string]string{
		AnnotationMigrationAttempt: itoa(attempt),
		AnnotationBackupFrom:       fromVersion,
		AnnotationBackupLocation:   "s3://" + t.Bucket + "/" + prefix,
	}
	return scriptJob(p, t, Backup, meta, DumpScript, DumpEnv(t.Bucket, prefix, *p.Spec.Backups.Keep))
}

// RestoreJob restores one dump (a key, or a prefix whose newest dump is taken). summonctl
// restore creates it while the instance is paused; it is not a child of the SummonPlatform.
func RestoreJob(p Platform, t DumpTarget, key string) *batchv1.Job {
	meta := objectMeta(p, p.Names.RestoreJob(key), Labels(p.Name, Restore))
	return scriptJob(p, t, Restore, meta, RestoreScript, RestoreEnv(t.Bucket, key))
}

// Restore is the Job summonctl restore runs.
const Restore Component = "restore"

func scriptJob(p Platform, t DumpTarget, c Component, meta metav1.ObjectMeta, script string, vars map[string]string) *batchv1.Job {
	env := []corev1.EnvVar{
		secretEnv(AWSAccessKeyIDKey, p.Names.AWSCredentials()),
		secretEnv(AWSSecretAccessKeyKey, p.Names.AWSCredentials()),
	}
	if t.Region != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_DEFAULT_REGION", Value: t.Region})
	}
	for _, k := range []string{envBackupBucket, envBackupPrefix, envBackupKeep, envRestoreKey} {
		if v, ok := vars[k]; ok {
			env = append(env, corev1.EnvVar{Name: k, Value: v})
		}
	}
	env = append(env, corev1.EnvVar{Name: "TMPDIR", Value: "/tmp"}, corev1.EnvVar{Name: "HOME", Value: "/tmp"})
	container := corev1.Container{
		Name:    string(c),
		Image:   t.Image,
		Command: []string{"sh", "-c", script},
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: p.Names.Database()}}}},
		Env:     env,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
	return &batchv1.Job{
		TypeMeta:   typeMeta("batch/v1", "Job"),
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			// One retry: a dump that fails twice has a cause someone must read.
			BackoffLimit:          ptr.To[int32](1),
			ActiveDeadlineSeconds: p.Spec.Migrations.ActiveDeadlineSeconds,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: meta.Labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					Containers:                   []corev1.Container{container},
					Volumes:                      []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
				},
			},
		},
	}
}

func secretEnv(key, secret string) corev1.EnvVar {
	return corev1.EnvVar{Name: key, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

// DatabaseEnv is the libpq environment of a role on a server: what pg_dump and pg_restore read.
type DatabaseEnv struct {
	Host     string
	Port     int32
	User     string
	Password string
	Database string
	SSLMode  string
}

// Vars are the libpq environment variables.
func (d DatabaseEnv) Vars() map[string]string {
	return map[string]string{
		"PGHOST": d.Host, "PGPORT": itoa(d.Port), "PGUSER": d.User, "PGPASSWORD": d.Password,
		"PGDATABASE": d.Database, "PGSSLMODE": d.SSLMode,
	}
}

// DatabaseSecret holds the libpq environment of the instance's own role, for the backup and
// restore Jobs: the same credentials the app's DATABASE_URL carries, in the form pg_dump reads
// without a URL on its command line.
func DatabaseSecret(p Platform, d DatabaseEnv) *corev1.Secret {
	data := map[string][]byte{}
	for k, v := range d.Vars() {
		data[k] = []byte(v)
	}
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, p.Names.Database(), Labels(p.Name, Backup)),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}
