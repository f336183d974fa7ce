// Package v1beta1 holds the SummonPlatform API (summon.forklift.dev/v1beta1): the Go types that
// manifests/crd.yaml describes, and the pure defaulting and validation that the sync hook applies
// before it trusts a spec. It performs no I/O.
package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group, Version and Kind name the parent resource. They are the only place these strings live.
const (
	Group    = "summon.forklift.dev"
	Version  = "v1beta1"
	Kind     = "SummonPlatform"
	Resource = "summonplatforms"
)

// APIVersion is the apiVersion field of every SummonPlatform.
const APIVersion = Group + "/" + Version

// SummonPlatform is one single-tenant Django instance: its web, websocket and worker processes, its
// migrations, and the resources outside the cluster that it owns.
type SummonPlatform struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   Spec   `json:"spec"`
	Status Status `json:"status,omitempty"`
}

// Spec is what the platform team asks for. Every field but Version has a default.
type Spec struct {
	// Version is the image tag to run. A change runs that version's migrations first and moves
	// the workloads only once they have succeeded. It is also a label value, so it is at most 63
	// characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
	Version string `json:"version"`
	// Image is the image repository, without a tag. Defaults to the hook's --default-image.
	Image string `json:"image,omitempty"`
	// ImagePullSecrets names Secrets in the namespace used to pull Image.
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`

	// Hostname is the public host name that the Ingress serves. Without it there is no Ingress.
	Hostname string `json:"hostname,omitempty"`
	// Aliases are further host names served by the same Ingress and certificate.
	Aliases []string `json:"aliases,omitempty"`
	// Ingress tunes the one Ingress of the instance.
	Ingress IngressSpec `json:"ingress,omitempty"`

	// Config holds Django settings (string, bool or number values) written into the app config
	// file. Input Secrets and generated settings are merged over it.
	Config map[string]ConfigValue `json:"config,omitempty"`
	// Secrets names input Secrets in the namespace whose keys are merged into the app config file
	// in order, later ones winning. They are how credentials that Summon does not create reach
	// the app (e.g. DATABASE_URL when no shared database is configured).
	Secrets []string `json:"secrets,omitempty"`

	// Replicas per component. CeleryBeat may only be 0 or 1: two beats run every task twice.
	Replicas Replicas `json:"replicas,omitempty"`
	// Resources per component.
	Resources ComponentResources `json:"resources,omitempty"`
	// Autoscaling turns on HorizontalPodAutoscalers for web and celeryd.
	Autoscaling Autoscaling `json:"autoscaling,omitempty"`
	// App names the Python entry points inside the image.
	App App `json:"app,omitempty"`
	// Gunicorn tunes the web processes.
	Gunicorn Gunicorn `json:"gunicorn,omitempty"`
	// Celery tunes the Celery workers.
	Celery Celery `json:"celery,omitempty"`

	// Migrations tunes the per-version migration Job.
	Migrations Migrations `json:"migrations,omitempty"`
	// Backups says whether each version's migration waits for a backup of the database, and how
	// many backups are kept (docs/backups.md).
	Backups Backups `json:"backups,omitempty"`
	// Database says where the instance's Postgres database lives.
	Database Database `json:"database,omitempty"`
	// Redis asks for the instance's cache and Channels layer: a Redis that Summon runs for the
	// instance alone, or an external one. Without it, their URLs come from the input Secrets.
	Redis *Redis `json:"redis,omitempty"`

	// DeletionPolicy says what happens to the data outside the cluster (bucket, vhost, database)
	// when the SummonPlatform is deleted. Access (IAM user, RabbitMQ user, database login) is
	// always revoked.
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
	// Paused freezes the instance: the hook keeps every child exactly as observed.
	Paused bool `json:"paused,omitempty"`
}

// IngressSpec tunes the Ingress.
type IngressSpec struct {
	// ClassName is the IngressClass to use; empty means the cluster default.
	ClassName string `json:"className,omitempty"`
	// Annotations are copied onto the Ingress (e.g. cert-manager's cluster-issuer).
	Annotations map[string]string `json:"annotations,omitempty"`
	// TLSSecretName holds the certificate for Hostname and Aliases. Defaults to <name>-tls.
	TLSSecretName string `json:"tlsSecretName,omitempty"`
	// WebsocketPath is routed to Daphne. Defaults to /ws/.
	WebsocketPath string `json:"websocketPath,omitempty"`
}

// Replicas is the replica count per component. A nil field takes the default.
type Replicas struct {
	Web           *int32 `json:"web,omitempty"`
	Daphne        *int32 `json:"daphne,omitempty"`
	ChannelWorker *int32 `json:"channelWorker,omitempty"`
	Celeryd       *int32 `json:"celeryd,omitempty"`
	Static        *int32 `json:"static,omitempty"`
	CeleryBeat    *int32 `json:"celeryBeat,omitempty"`
}

// ComponentResources are the container resources per component.
type ComponentResources struct {
	Web           corev1.ResourceRequirements `json:"web,omitempty"`
	Daphne        corev1.ResourceRequirements `json:"daphne,omitempty"`
	ChannelWorker corev1.ResourceRequirements `json:"channelWorker,omitempty"`
	Celeryd       corev1.ResourceRequirements `json:"celeryd,omitempty"`
	Static        corev1.ResourceRequirements `json:"static,omitempty"`
	CeleryBeat    corev1.ResourceRequirements `json:"celeryBeat,omitempty"`
}

// Autoscaling configures HorizontalPodAutoscalers. A nil component has none.
type Autoscaling struct {
	Web     *HorizontalScaling `json:"web,omitempty"`
	Celeryd *HorizontalScaling `json:"celeryd,omitempty"`
}

// HorizontalScaling is a CPU-driven HorizontalPodAutoscaler.
type HorizontalScaling struct {
	MinReplicas int32 `json:"minReplicas"`
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetCPUUtilizationPercentage defaults to 75.
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// App names the Python entry points inside the image (see docs/app-image.md).
type App struct {
	// WSGI is gunicorn's application. Defaults to summon_platform.wsgi:application.
	WSGI string `json:"wsgi,omitempty"`
	// ASGI is Daphne's application. Defaults to summon_platform.asgi:application.
	ASGI string `json:"asgi,omitempty"`
	// CeleryApp is Celery's --app. Defaults to summon_platform.
	CeleryApp string `json:"celeryApp,omitempty"`
	// HealthPath is the web health check endpoint. Defaults to /healthz/.
	HealthPath string `json:"healthPath,omitempty"`
	// ChannelLayers are the channel names that the channel workers consume. Defaults to [default].
	ChannelLayers []string `json:"channelLayers,omitempty"`
}

// Gunicorn sizes each web pod explicitly: gunicorn's own default (one sync worker) wastes a pod.
type Gunicorn struct {
	Workers int32 `json:"workers,omitempty"`
	Threads int32 `json:"threads,omitempty"`
	// TimeoutSeconds is gunicorn's worker timeout.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// Celery tunes the Celery workers.
type Celery struct {
	Concurrency int32 `json:"concurrency,omitempty"`
}

// Migrations tunes the migration Job that each new version runs before any pod runs it.
type Migrations struct {
	// Command runs the migrations. Defaults to python manage.py migrate --noinput.
	Command []string `json:"command,omitempty"`
	// BackoffLimit bounds the retries of a failing migration. Defaults to 2.
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
	// ActiveDeadlineSeconds bounds how long a migration may run. Defaults to 1800.
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
	// Resources of the migration container; migrations often need more memory than a web pod.
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// Attempt names a fresh Job for the same version. A failed migration is never retried by
	// itself: raise Attempt (or change Version) once the cause is fixed.
	Attempt int32 `json:"attempt,omitempty"`
}

// Backups tunes the backup taken before each version's migration.
type Backups struct {
	// BeforeMigration is Required (no migration without a completed backup), BestEffort (the
	// migration runs even if the backup fails, with a warning) or Never. Unset, it is Required when
	// Summon can back up the instance's database (a shared database with the hook's
	// --backup-image) and none otherwise, which the BackedUp condition says.
	BeforeMigration BackupPolicy `json:"beforeMigration,omitempty"`
	// Keep is how many backups are kept per instance. Defaults to 5.
	Keep *int32 `json:"keep,omitempty"`
}

// BackupPolicy says whether a migration waits for a backup.
type BackupPolicy string

const (
	BackupRequired   BackupPolicy = "Required"
	BackupBestEffort BackupPolicy = "BestEffort"
	// BackupNever takes no backup. (Not "Off": YAML 1.1 reads an unquoted Off as false.)
	BackupNever BackupPolicy = "Never"
)

// Database says where the Postgres database lives. At most one of Shared, URLSecret and InCluster
// is set; with none, DATABASE_URL must come from an input Secret.
type Database struct {
	// Shared is a Postgres server shared by many instances; Summon creates a role and a database
	// for this instance on it.
	Shared *SharedDatabase `json:"shared,omitempty"`
	// URLSecret names a key of a Secret in the namespace that holds a full database URL.
	URLSecret *SecretKeyRef `json:"urlSecret,omitempty"`
	// InCluster is a Postgres of the instance's own, run by CloudNativePG inside the cluster: for
	// QA and review instances that should not wait for a database to be provisioned elsewhere.
	InCluster *InClusterDatabase `json:"inCluster,omitempty"`
}

// InClusterDatabase sizes the instance's own Postgres (a CloudNativePG Cluster of one instance).
type InClusterDatabase struct {
	// StorageSize is the size of its volume. Defaults to 1Gi.
	StorageSize *resource.Quantity `json:"storageSize,omitempty"`
	// StorageClass is the volume's StorageClass; empty means the cluster's default. Only with
	// deletionPolicy Delete: with Retain the volume must outlive its claim, so its class is the one
	// the hook names (--cnpg-retain-storage-class).
	StorageClass string `json:"storageClass,omitempty"`
}

// Redis is the instance's cache and Channels layer. With URLSecret it is an external Redis;
// without, Summon runs two Redis servers for the instance in one pod (see pkg/children/redis.go).
type Redis struct {
	// URLSecret names a key of a Secret in the namespace that holds the URL of an external Redis
	// (e.g. ElastiCache), used by both the cache and the Channels layer.
	URLSecret *SecretKeyRef `json:"urlSecret,omitempty"`
	// CacheMemory is the memory of the cache server: its container's request and limit, with
	// maxmemory set below it. Defaults to 256Mi.
	CacheMemory *resource.Quantity `json:"cacheMemory,omitempty"`
	// ChannelsMemory is the memory of the Channels layer's server. Defaults to 64Mi.
	ChannelsMemory *resource.Quantity `json:"channelsMemory,omitempty"`
}

// InCluster says whether Summon runs this Redis itself.
func (r *Redis) InCluster() bool { return r != nil && r.URLSecret == nil }

// SharedDatabase gives the coordinates the app uses to reach the shared server.
type SharedDatabase struct {
	Host string `json:"host"`
	// Port defaults to 5432.
	Port int32 `json:"port,omitempty"`
	// SSLMode defaults to require.
	SSLMode string `json:"sslMode,omitempty"`
}

// SecretKeyRef names one key of one Secret in the parent's namespace.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// DeletionPolicy says what finalize does with the data outside the cluster.
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps the bucket, the vhost and the database (for an in-cluster
	// database, its volume).
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete removes them.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// Phase is where the instance is in its state machine (DESIGN.md 5.1).
type Phase string

const (
	PhaseInitializing Phase = "Initializing"
	PhaseMigrating    Phase = "Migrating"
	PhaseDeploying    Phase = "Deploying"
	PhaseReady        Phase = "Ready"
	PhaseError        Phase = "Error"
)

// Status is everything the hook remembers between syncs: Metacontroller replaces the whole status
// with what the hook returns, so every field here is echoed back on every response.
type Status struct {
	// ObservedGeneration is written by Metacontroller, not by the hook.
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
	Phase              Phase  `json:"phase,omitempty"`
	Message            string `json:"message,omitempty"`
	// MigratedVersion is the version whose migrations most recently succeeded.
	MigratedVersion string `json:"migratedVersion,omitempty"`
	// DeployedVersion is the version that every app workload was last seen rolled out on.
	DeployedVersion string             `json:"deployedVersion,omitempty"`
	Conditions      []metav1.Condition `json:"conditions,omitempty"`
	// Components reports each app workload as observed.
	Components map[string]ComponentStatus `json:"components,omitempty"`
	// External names the instance's resources outside the cluster (no secrets).
	External *ExternalStatus `json:"external,omitempty"`
	// Backups are the backups taken before migrations, newest first, at most spec.backups.keep.
	Backups []BackupRecord `json:"backups,omitempty"`
	// Migrations are the last migrations that succeeded, newest first; their Jobs (and logs) are
	// kept while they are listed here.
	Migrations []MigrationRecord `json:"migrations,omitempty"`
	// Builders says which of Summon's builder revisions the app workloads were built with, and
	// whether a newer one is held back until the instance's wave opens (docs/upgrading.md).
	Builders *BuildersStatus `json:"builders,omitempty"`
}

// BuildersStatus names the builder revisions of an instance's app workloads. A builder revision
// stands for the pod templates one build of Summon makes; a Summon release that changes them
// rolls them out in waves.
type BuildersStatus struct {
	// Revision is the builder revision the app workloads run: Available unless Held. Empty while
	// held on workloads built before Summon recorded revisions.
	Revision string `json:"revision,omitempty"`
	// Available is the revision of the hook that wrote this status.
	Available string `json:"available,omitempty"`
	// Held says that the app workloads keep Revision until the instance's wave opens.
	Held bool `json:"held,omitempty"`
	// HeldComponents names the app workloads held, in the order of the components.
	HeldComponents []string `json:"heldComponents,omitempty"`
}

// BackupRecord is one backup taken before a migration.
type BackupRecord struct {
	// Name is the backup's Job.
	Name string `json:"name"`
	// Version is the version whose migration the backup preceded.
	Version string `json:"version"`
	// FromVersion is the version that had migrated the database when it was backed up: the one
	// to go back to with it.
	FromVersion string `json:"fromVersion,omitempty"`
	Attempt     int32  `json:"attempt,omitempty"`
	// Phase is Running, Completed or Failed.
	Phase string `json:"phase"`
	// Location is where the backup lives: the object-store prefix of a dump.
	Location string `json:"location,omitempty"`
	// CompletedAt is when the backup completed, as its Job reports it.
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// MigrationRecord is one migration that succeeded.
type MigrationRecord struct {
	Version string `json:"version"`
	Attempt int32  `json:"attempt,omitempty"`
	// Job is the migration Job, kept for its logs while the record is listed.
	Job string `json:"job"`
	// JobUID tells the kept Job from a later one of the same name.
	JobUID string `json:"jobUID,omitempty"`
	// CompletedAt is when the Job completed, as it reports it.
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// Backup phases, as status.backups reports them.
const (
	BackupPhaseRunning   = "Running"
	BackupPhaseCompleted = "Completed"
	BackupPhaseFailed    = "Failed"
)

// ExternalStatus names the resources outside the cluster that Summon manages for the instance.
type ExternalStatus struct {
	Bucket      string `json:"bucket,omitempty"`
	IAMUser     string `json:"iamUser,omitempty"`
	RabbitVhost string `json:"rabbitVhost,omitempty"`
	Database    string `json:"database,omitempty"`
}

// ComponentStatus is one app workload as observed.
type ComponentStatus struct {
	Desired int32  `json:"desired"`
	Ready   int32  `json:"ready"`
	Updated int32  `json:"updated"`
	Version string `json:"version,omitempty"`
}

// Condition types, reasons and the annotation keys that the hook owns.
const (
	ConditionReady    = "Ready"
	ConditionMigrated = "Migrated"
	ConditionDeployed = "Deployed"
	ConditionValid    = "SpecValid"
	ConditionPaused   = "Paused"
	// ConditionExternal is True once the resources outside the cluster exist for the current
	// generation; its observedGeneration tells the hook when the spec changed since.
	ConditionExternal = "ExternalResourcesReady"
	// ConditionBackedUp says whether the backup before the spec's version's migration was taken,
	// and, when none is, why.
	ConditionBackedUp = "BackedUp"
	// ConditionBuildersUpToDate is False while the app workloads are held on an older builder
	// revision than the hook's (reason Held), until the instance's wave opens.
	ConditionBuildersUpToDate = "BuildersUpToDate"
)

// AnnotationAdoptFromUID, on a SummonPlatform, names the UID of a deleted one whose data outside
// the cluster (kept by deletionPolicy Retain) this one takes over: its bucket, vhost and database
// are marked as this one's on the next sync. Without it a recreated SummonPlatform (a new UID)
// is refused that data, so retained data changes hands only on purpose. See docs/security.md.
const AnnotationAdoptFromUID = "summon.forklift.dev/adopt-from-uid"
