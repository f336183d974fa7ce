package children

import (
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// The instance's own Postgres is a CloudNativePG Cluster (postgresql.cnpg.io/v1) of one instance.
// It is built as unstructured JSON rather than with CNPG's Go types: importing CNPG's module would
// pull its operator's dependencies into the hook for one small object. The server-side dry run of
// the golden children against CNPG's own CRD (test/integration, CRDs of the release pinned in
// hack/cnpg-crds.sh, v1.27.1) is the check that the fields are CNPG's.
//
// CNPG bootstraps the database with initdb: database app, owned by the role app, whose password is
// the one in the basic-auth Secret PostgresOwnerSecret builds (derived by pkg/credentials, so it is
// the same on every sync). CNPG serves the primary through the Service <cluster>-rw, with TLS on.
//
// CNPG puts a controller reference to the Cluster on its PVC, so deleting the Cluster deletes the
// PVC, and the volume then goes as its StorageClass's reclaimPolicy says. The Cluster is a child of
// the SummonPlatform and is garbage-collected with it; what outlives the instance under
// deletionPolicy Retain is therefore the volume, on a StorageClass whose reclaimPolicy is Retain
// (the hook's --cnpg-retain-storage-class). See docs/behaviour.md, "An own Postgres".

// CNPG's API, as the Cluster child and its status speak it.
const (
	CNPGAPIVersion  = "postgresql.cnpg.io/v1"
	CNPGClusterKind = "Cluster"
	CNPGBackupKind  = "Backup"
	// CNPGClusterLabel is on every pod of a CNPG Cluster, with the Cluster's name as its value.
	CNPGClusterLabel = "cnpg.io/cluster"
)

// The database and its owner inside the instance's own Postgres. The Postgres is the instance's
// alone, so they need no instance name in them.
const (
	PostgresDatabase = "app"
	PostgresOwner    = "app"
	postgresPort     = 5432
)

// PostgresCluster is the CNPG Cluster of an instance's own Postgres. storageClass is the volume's
// StorageClass; empty means the cluster's default. snapshotClass is the VolumeSnapshotClass its
// backups use (the hook's --cnpg-snapshot-class); empty: it takes none.
func PostgresCluster(p Platform, storageClass, snapshotClass string) *unstructured.Unstructured {
	db := p.Spec.Database.InCluster
	storage := map[string]any{"size": db.StorageSize.String()}
	if storageClass != "" {
		storage["storageClass"] = storageClass
	}
	cluster := cnpgObject(CNPGClusterKind, objectMeta(p, p.Names.Of(Postgres), Labels(p.Name, Postgres)), map[string]any{
		"instances": int64(1),
		"storage":   storage,
		"bootstrap": map[string]any{"initdb": map[string]any{
			"database": PostgresDatabase,
			"owner":    PostgresOwner,
			"secret":   map[string]any{"name": p.Names.PostgresOwner()},
		}},
		// Requests and a memory limit, as every app pod has: a QA database is small, and one
		// without requests is the first pod a busy node evicts.
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "100m", "memory": "256Mi"},
			"limits":   map[string]any{"memory": "512Mi"},
		},
	})
	if snapshotClass != "" {
		cluster.Object["spec"].(map[string]any)["backup"] = map[string]any{"volumeSnapshot": map[string]any{
			"className":              snapshotClass,
			"snapshotOwnerReference": snapshotOwner(p),
		}}
	}
	return cluster
}

// snapshotOwner is who owns the VolumeSnapshots of the instance's backups. With deletionPolicy
// Delete, their Backup: a Backup Summon stops keeping (beyond spec.backups.keep, or with the
// instance) takes its snapshots with it. With Retain, nobody: they outlive the instance as its
// volume does, and are the team's to delete (docs/backups.md).
func snapshotOwner(p Platform) string {
	if p.Spec.DeletionPolicy == v1beta1.DeletionPolicyRetain {
		return "none"
	}
	return "backup"
}

// PostgresBackup is CloudNativePG's own backup of the instance's Postgres before the migration of
// (version, attempt): a volume snapshot of the primary, online, with the Cluster's snapshot class.
// It carries the same name, labels and annotations as a pg_dump backup Job, so that the gate,
// the status and summonctl read both the same way. fromVersion is the version that had migrated
// the database.
func PostgresBackup(p Platform, version, fromVersion string, attempt int32) *unstructured.Unstructured {
	meta := objectMeta(p, p.Names.BackupJob(version, attempt), VersionedLabels(p.Name, Backup, version))
	meta.Annotations = map[string]string{
		AnnotationMigrationAttempt: itoa(attempt),
		AnnotationBackupFrom:       fromVersion,
		AnnotationBackupLocation:   PostgresBackupLocation(meta.Name),
	}
	return cnpgObject(CNPGBackupKind, meta, map[string]any{
		"cluster": map[string]any{"name": p.Names.Of(Postgres)},
		"method":  "volumeSnapshot",
		"online":  true,
		// The backup gates a deploy: a checkpoint spread over minutes would hold it that long.
		"onlineConfiguration": map[string]any{"immediateCheckpoint": true},
	})
}

// cnpgObject is one of CNPG's objects, as unstructured JSON (see the top of this file).
func cnpgObject(kind string, meta metav1.ObjectMeta, spec map[string]any) *unstructured.Unstructured {
	m := map[string]any{"name": meta.Name, "namespace": meta.Namespace, "labels": stringsToAny(meta.Labels)}
	if len(meta.Annotations) > 0 {
		m["annotations"] = stringsToAny(meta.Annotations)
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": CNPGAPIVersion, "kind": kind, "metadata": m, "spec": spec}}
}

// PostgresBackupLocation is where a CNPG backup is, as kubectl names it: its snapshots carry the
// label cnpg.io/backupName with the same name.
func PostgresBackupLocation(name string) string {
	return "backups.postgresql.cnpg.io/" + name
}

// PostgresOwnerSecret is the basic-auth Secret CNPG reads the owner's password from when it
// bootstraps the database.
func PostgresOwnerSecret(p Platform, password string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, p.Names.PostgresOwner(), Labels(p.Name, Postgres)),
		Type:       corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{
			corev1.BasicAuthUsernameKey: []byte(PostgresOwner),
			corev1.BasicAuthPasswordKey: []byte(password),
		},
	}
}

// PostgresURL is the app's DATABASE_URL for its own Postgres: the owner, on the primary's Service.
// CNPG serves TLS with a certificate of its own CA, so the app requires TLS without verifying it.
func PostgresURL(p Platform, password string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(PostgresOwner, password),
		Host:     serviceHost(p, p.Names.Of(Postgres)+"-rw") + ":" + strconv.Itoa(postgresPort),
		Path:     "/" + PostgresDatabase,
		RawQuery: "sslmode=require",
	}
	return u.String()
}

func stringsToAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
