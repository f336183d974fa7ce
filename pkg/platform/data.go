package platform

import (
	"errors"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// The child groups of the data services, beside those of observed.go.
const (
	GroupNetworkPolicy = "NetworkPolicy.networking.k8s.io/v1"
	// GroupPostgresCluster is declared only by the manifests/cnpg component (DeclaredGroups).
	GroupPostgresCluster = "Cluster.postgresql.cnpg.io/v1"
	// GroupPostgresBackup is CNPG's Backup, which the manifests/cnpg component declares too; the
	// hook needs it only when it backs own Postgres up (--cnpg-snapshot-class).
	GroupPostgresBackup = "Backup.postgresql.cnpg.io/v1"
)

// DataServices is what the hook knows of the data services it may run inside the cluster for an
// instance: the image of an own Redis, and whether CloudNativePG is there for an own Postgres.
type DataServices struct {
	// RedisImage is the image of every instance's own Redis (--redis-image).
	RedisImage string `json:"redisImage,omitempty"`
	// BackupImage runs the backup before each migration of an instance on the shared Postgres
	// (--backup-image): sh, pg_dump and pg_restore, and the AWS CLI. Empty: Summon takes no backup.
	BackupImage string `json:"backupImage,omitempty"`
	// CNPG is set when CloudNativePG is installed and the CompositeController declares its Cluster
	// child type (the manifests/cnpg component, which also sets --cnpg-namespace). Without it an
	// instance can't have an own Postgres, and no request carries the Cluster group.
	CNPG *CNPG `json:"cnpg,omitempty"`
}

// CNPG is the CloudNativePG install as the hook sees it.
type CNPG struct {
	// OperatorNamespace is where CNPG's operator runs: the instances' NetworkPolicies admit it.
	OperatorNamespace string `json:"operatorNamespace"`
	// RetainStorageClass is a StorageClass whose reclaimPolicy is Retain, for the volumes of the
	// instances whose deletionPolicy is Retain. Empty: such an instance can't have an own Postgres.
	RetainStorageClass string `json:"retainStorageClass,omitempty"`
	// SnapshotClass is the VolumeSnapshotClass of the backups before migrations (CNPG's Backup,
	// method volumeSnapshot). Empty: Summon takes no backup of an own Postgres.
	SnapshotClass string `json:"snapshotClass,omitempty"`
}

// DeclaredGroups are every child group Summon owns, for a hook configured with data: those of
// manifests/compositecontroller.yaml, and CNPG's Cluster (and its Backup, when the hook takes
// backups with it) when the manifests/cnpg component adds them. A request without one of them
// can't show what runs, so the hook refuses to act on it. The Cluster group is optional because
// Metacontroller stops a CompositeController, for every parent, when it declares a child type the
// API server doesn't serve. Backup is asked for only with a snapshot class, so that a new hook
// beside an older cnpg component (without Backup) still syncs every instance.
func DeclaredGroups(data DataServices) []string {
	groups := []string{
		GroupDeployment, GroupStatefulSet, GroupService, GroupSecret,
		GroupIngress, GroupPDB, GroupHPA, GroupJob, GroupNetworkPolicy,
	}
	if data.CNPG != nil {
		groups = append(groups, GroupPostgresCluster)
		if data.CNPG.SnapshotClass != "" {
			groups = append(groups, GroupPostgresBackup)
		}
	}
	return groups
}

// dataPlan is what the data services inside the cluster add to one sync.
type dataPlan struct {
	// children are built children: the Redis and Postgres objects and their NetworkPolicies.
	children []any
	// settings point the app at them.
	settings map[string]string
	// waiting names what a migration must wait for, in words for the status: the own Postgres
	// until CNPG reports it ready.
	waiting string
	// pending names the data services that are not ready yet; the instance is not Ready until
	// they are.
	pending []string
}

// planData decides the data services of an instance: its own Redis or an external one, and its own
// Postgres. A spec that asks for what the hook can't provide gives a reason (ProviderMissing,
// InputMissing) and an error that says what to do.
func planData(p children.Platform, par parent, req *metacontroller.SyncRequest, env Env) (dataPlan, string, error) {
	plan := dataPlan{settings: map[string]string{}}
	uid := string(par.meta.UID)
	s := p.Spec
	if r := s.Redis; r.InCluster() {
		if env.Data.RedisImage == "" {
			return plan, reasonProviderMissing, fmt.Errorf("spec.redis asks for a Redis of the instance's own, but the hook has no --redis-image: " +
				"start it with one, or name an external Redis in spec.redis.urlSecret")
		}
		if !env.Credentials.Ready() {
			return plan, reasonInputMissing, fmt.Errorf("spec.redis needs a generated password, but the hook has no credential master key: " +
				"start it with --credential-key-file, or name an external Redis in spec.redis.urlSecret")
		}
		password := env.Credentials.Derive(uid, credentials.RedisPassword)
		secret := children.RedisConfigSecret(p, password)
		hash := children.RedisConfigHash(secret)
		plan.children = append(plan.children, secret, children.RedisService(p),
			children.RedisStatefulSet(p, env.Data.RedisImage, hash), children.RedisNetworkPolicy(p))
		maps.Copy(plan.settings, children.RedisSettings(p, password))
		if !redisReady(p, req.Children, hash) {
			plan.pending = append(plan.pending, string(children.Redis))
		}
	} else if r != nil {
		u, err := secretValue(req.Related, p, *r.URLSecret, "spec.redis.urlSecret")
		if err != nil {
			return plan, inputReason(err), err
		}
		// One external Redis serves both; an input Secret may still give the Channels layer a
		// Redis of its own, since input Secrets win.
		plan.settings[children.RedisCacheURLSetting] = u
		plan.settings[children.RedisChannelsURLSetting] = u
	}

	if db := s.Database.InCluster; db != nil {
		cnpg := env.Data.CNPG
		if cnpg == nil {
			return plan, reasonProviderMissing, fmt.Errorf("spec.database.inCluster needs CloudNativePG, which this install has off: install CloudNativePG " +
				"and add the manifests/cnpg component (it declares the Cluster child type and starts the hook with --cnpg-namespace), " +
				"or use spec.database.shared or spec.database.urlSecret")
		}
		class := db.StorageClass
		if s.DeletionPolicy == v1beta1.DeletionPolicyRetain {
			if cnpg.RetainStorageClass == "" {
				return plan, reasonProviderMissing, fmt.Errorf("spec.database.inCluster with deletionPolicy Retain keeps its data on a volume that outlives the instance, " +
					"and the hook has no StorageClass for that: start it with --cnpg-retain-storage-class (a StorageClass whose reclaimPolicy is Retain), " +
					"or set deletionPolicy: Delete for a throwaway database")
			}
			class = cnpg.RetainStorageClass
		}
		if !env.Credentials.Ready() {
			return plan, reasonInputMissing, fmt.Errorf("spec.database.inCluster needs a generated password, but the hook has no credential master key: " +
				"start it with --credential-key-file")
		}
		cluster := observedPostgres(p, req.Children)
		if cluster != nil {
			// CNPG gives a StorageClass to a volume when it creates it and never moves the volume;
			// a Cluster that said another class than its volume's would mislead whoever reads it.
			class = observedStorageClass(cluster)
		}
		password := env.Credentials.Derive(uid, credentials.InClusterDatabasePassword)
		plan.children = append(plan.children, children.PostgresOwnerSecret(p, password),
			children.PostgresCluster(p, class, cnpg.SnapshotClass), children.PostgresNetworkPolicy(p, cnpg.OperatorNamespace))
		plan.settings[SettingDatabaseURL] = children.PostgresURL(p, password)
		if !postgresReady(cluster) {
			plan.waiting = "the Postgres cluster " + p.Names.Of(children.Postgres)
			plan.pending = append(plan.pending, string(children.Postgres))
		}
	}
	return plan, "", nil
}

// secretValue reads one key of an input Secret that the customize hook relates.
func secretValue(related metacontroller.RelativeObjects, p children.Platform, ref v1beta1.SecretKeyRef, field string) (string, error) {
	data, err := inputSecret(related, p, ref.Name, field)
	if errors.Is(err, errInputAbsent) {
		return "", fmt.Errorf("the Secret %s (%s) was not found in namespace %s: create it", ref.Name, field, p.Namespace)
	}
	if err != nil {
		return "", err
	}
	v, ok := data[ref.Key]
	if !ok {
		return "", fmt.Errorf("the Secret %s has no key %s (%s.key)", ref.Name, ref.Key, field)
	}
	return string(v), nil
}

// redisReady says whether the instance's Redis runs its current config: the StatefulSet's
// controller has seen the template with this config hash and its one pod is ready.
func redisReady(p children.Platform, observed metacontroller.RelativeObjects, configHash string) bool {
	obj := observed[GroupStatefulSet][p.Namespace+"/"+p.Names.Of(children.Redis)]
	if obj == nil {
		return false
	}
	var s appsv1.StatefulSet
	if err := decodeTyped(obj, &s); err != nil {
		return false
	}
	st := s.Status
	return s.Spec.Template.Annotations[children.AnnotationRedisConfigHash] == configHash &&
		st.ObservedGeneration >= s.Generation && st.UpdatedReplicas >= 1 && st.ReadyReplicas >= 1 && st.Replicas == 1
}

// observedPostgres is the instance's CNPG Cluster as observed, or nil.
func observedPostgres(p children.Platform, observed metacontroller.RelativeObjects) metacontroller.Object {
	return observed[GroupPostgresCluster][p.Namespace+"/"+p.Names.Of(children.Postgres)]
}

// postgresReady reads CNPG's own verdict (v1.27): its Ready condition, which CNPG sets True
// exactly while the phase is "Cluster in healthy state", and one ready instance. CNPG writes no
// observedGeneration, so the condition is taken as it stands.
func postgresReady(cluster metacontroller.Object) bool {
	var c struct {
		Status struct {
			ReadyInstances int `json:"readyInstances"`
			Conditions     []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if cluster == nil || decodeTyped(cluster, &c) != nil || c.Status.ReadyInstances < 1 {
		return false
	}
	for _, cond := range c.Status.Conditions {
		if cond.Type == "Ready" {
			return cond.Status == "True"
		}
	}
	return false
}

// observedStorageClass is spec.storage.storageClass of an observed CNPG Cluster ("" when unset).
func observedStorageClass(cluster metacontroller.Object) string {
	spec, _ := cluster["spec"].(map[string]any)
	storage, _ := spec["storage"].(map[string]any)
	class, _ := storage["storageClass"].(string)
	return class
}

// dataNames are the children of the data services, which Summon drops when the spec no longer
// asks for them.
func dataNames(p children.Platform) []childRef {
	redis, postgres := p.Names.Of(children.Redis), p.Names.Of(children.Postgres)
	return []childRef{
		{GroupSecret, redis}, {GroupService, redis}, {GroupStatefulSet, redis}, {GroupNetworkPolicy, redis},
		{GroupSecret, p.Names.PostgresOwner()}, {GroupPostgresCluster, postgres}, {GroupNetworkPolicy, postgres},
	}
}
