package children

// Component is one part of an instance. Its value appears in names and in the
// app.kubernetes.io/component label.
type Component string

const (
	Web           Component = "web"
	Daphne        Component = "daphne"
	ChannelWorker Component = "channel-worker"
	Celeryd       Component = "celeryd"
	CeleryBeat    Component = "celerybeat"
	Static        Component = "static"
	Migrations    Component = "migrations"
	// Backup is the Job that dumps the database before a migration (pkg/children/backup.go).
	Backup    Component = "backup"
	AppConfig Component = "config"
	Routing   Component = "ingress"
	// Redis and Postgres are the data services Summon may run inside the cluster for an
	// instance. They run no app image and carry no app version.
	Redis    Component = "redis"
	Postgres Component = "postgres"
)

// AppComponents are the long-running workloads that run the app image, in a fixed order.
var AppComponents = []Component{Web, Daphne, ChannelWorker, Celeryd, CeleryBeat, Static}

// Label and annotation keys. The app.kubernetes.io ones follow Kubernetes' recommended labels.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelVersion   = "app.kubernetes.io/version"

	AnnotationConfigHash       = "summon.forklift.dev/config-hash"
	AnnotationRedisConfigHash  = "summon.forklift.dev/redis-config-hash"
	AnnotationMigrationAttempt = "summon.forklift.dev/migration-attempt"
	// AnnotationMigrationRecord marks a succeeded migration Job that Summon keeps only as the
	// record of an earlier migration: it never again counts as a success, even if the status
	// that lists it is lost.
	AnnotationMigrationRecord = "summon.forklift.dev/migration-record"
	// AnnotationBackupFrom is the version that had migrated the database a backup copies.
	AnnotationBackupFrom = "summon.forklift.dev/backup-from-version"
	// AnnotationBackupLocation is where a backup's dump goes (s3://bucket/prefix/).
	AnnotationBackupLocation = "summon.forklift.dev/backup-location"

	appName   = "summon-platform"
	managedBy = "summon"
)

// SelectorLabels select a component's pods. They never change for the life of an instance:
// a Deployment's selector is immutable, so a version or config never goes in here.
func SelectorLabels(instance string, c Component) map[string]string {
	return map[string]string{
		LabelName:      appName,
		LabelInstance:  instance,
		LabelComponent: string(c),
	}
}

// Labels are the labels of an object (and its pod template) that runs no particular version.
func Labels(instance string, c Component) map[string]string {
	l := SelectorLabels(instance, c)
	l[LabelManagedBy] = managedBy
	return l
}

// VersionedLabels add the app version to Labels, for workloads and their pods.
func VersionedLabels(instance string, c Component, version string) map[string]string {
	l := Labels(instance, c)
	l[LabelVersion] = version
	return l
}

// MadeBySummon says whether an object's labels are those Summon puts on the children it builds.
func MadeBySummon(labels map[string]string) bool {
	return labels[LabelManagedBy] == managedBy || labels[LabelName] == appName
}
