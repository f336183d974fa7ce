package v1beta1

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The CRD's schema repeats each rule below (pattern, enum, bounds, CEL) so that the API server
// refuses what the hook would refuse; the hook still checks, since a parent may predate a rule or
// be written with validation off. crd_test.go and the API-server tests keep the two in step.

// versionPattern is an image tag that is also a label value: the version lands in
// app.kubernetes.io/version on every workload.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)

// settingPattern is a Python identifier, which is what a Django setting name is.
var settingPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// imagePattern is an image reference without tag or digest.
var imagePattern = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*$`)

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// MaxNameLength bounds the parent's name: it becomes a label value (app.kubernetes.io/instance).
const MaxNameLength = 63

// Validate checks a SummonPlatform as written (before defaulting) and says, per field, what is
// wrong in words a user can act on.
func Validate(p *SummonPlatform) field.ErrorList {
	var errs field.ErrorList
	name := field.NewPath("metadata", "name")
	for _, msg := range validation.IsDNS1035Label(p.Name) {
		errs = append(errs, field.Invalid(name, p.Name, msg))
	}
	return append(errs, validateSpec(&p.Spec, field.NewPath("spec"))...)
}

func validateSpec(s *Spec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Version == "" {
		errs = append(errs, field.Required(path.Child("version"), "set it to the image tag to run"))
	} else if !versionPattern.MatchString(s.Version) {
		errs = append(errs, field.Invalid(path.Child("version"), s.Version,
			"must be an image tag of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
	}
	if s.Image != "" && !imagePattern.MatchString(s.Image) {
		errs = append(errs, field.Invalid(path.Child("image"), s.Image,
			"must be an image repository in lower case without a tag or digest; the tag is spec.version"))
	}
	errs = append(errs, validateNames(s.ImagePullSecrets, path.Child("imagePullSecrets"))...)
	errs = append(errs, validateHosts(s, path)...)
	errs = append(errs, validateIngress(&s.Ingress, path.Child("ingress"))...)

	for _, k := range slices.Sorted(maps.Keys(s.Config)) {
		if !settingPattern.MatchString(k) {
			errs = append(errs, field.Invalid(path.Child("config").Key(k), k, "a setting name must be a Python identifier"))
		}
	}
	errs = append(errs, validateNames(s.Secrets, path.Child("secrets"))...)

	errs = append(errs, validateApp(&s.App, path.Child("app"))...)
	errs = append(errs, validateReplicas(&s.Replicas, path.Child("replicas"))...)
	errs = append(errs, validateScaling(s.Autoscaling.Web, path.Child("autoscaling", "web"))...)
	errs = append(errs, validateScaling(s.Autoscaling.Celeryd, path.Child("autoscaling", "celeryd"))...)
	errs = append(errs, inRange(s.Gunicorn.Workers, 0, 64, path.Child("gunicorn", "workers"))...)
	errs = append(errs, inRange(s.Gunicorn.Threads, 0, 64, path.Child("gunicorn", "threads"))...)
	errs = append(errs, inRange(s.Gunicorn.TimeoutSeconds, 0, 3600, path.Child("gunicorn", "timeoutSeconds"))...)
	errs = append(errs, inRange(s.Celery.Concurrency, 0, 256, path.Child("celery", "concurrency"))...)
	errs = append(errs, validateMigrations(&s.Migrations, path.Child("migrations"))...)
	errs = append(errs, validateBackups(&s.Backups, path.Child("backups"))...)
	errs = append(errs, validateDatabase(&s.Database, path.Child("database"))...)
	errs = append(errs, validateRedis(s.Redis, path.Child("redis"))...)
	if db := s.Database.InCluster; db != nil && db.StorageClass != "" && s.DeletionPolicy != DeletionPolicyDelete {
		errs = append(errs, field.Forbidden(path.Child("database", "inCluster", "storageClass"),
			"only with deletionPolicy Delete: with Retain the volume must outlive its claim, so its StorageClass is the hook's --cnpg-retain-storage-class"))
	}

	switch s.DeletionPolicy {
	case "", DeletionPolicyRetain, DeletionPolicyDelete:
	default:
		errs = append(errs, field.NotSupported(path.Child("deletionPolicy"), s.DeletionPolicy,
			[]string{string(DeletionPolicyRetain), string(DeletionPolicyDelete)}))
	}
	return errs
}

func validateHosts(s *Spec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Hostname != "" {
		errs = append(errs, validateHostname(s.Hostname, path.Child("hostname"))...)
	} else if len(s.Aliases) > 0 {
		errs = append(errs, field.Required(path.Child("hostname"), "aliases need a hostname: set spec.hostname too"))
	}
	seen := map[string]bool{s.Hostname: true}
	for i, a := range s.Aliases {
		p := path.Child("aliases").Index(i)
		if seen[a] {
			errs = append(errs, field.Duplicate(p, a))
			continue
		}
		seen[a] = true
		errs = append(errs, validateHostname(a, p)...)
	}
	return errs
}

func validateHostname(h string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(h) {
		errs = append(errs, field.Invalid(p, h, msg))
	}
	return errs
}

func validateIngress(in *IngressSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if in.ClassName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(in.ClassName) {
			errs = append(errs, field.Invalid(path.Child("className"), in.ClassName, msg))
		}
	}
	if in.TLSSecretName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(in.TLSSecretName) {
			errs = append(errs, field.Invalid(path.Child("tlsSecretName"), in.TLSSecretName, msg))
		}
	}
	if w := in.WebsocketPath; w != "" {
		if !strings.HasPrefix(w, "/") || w == "/" || strings.HasPrefix(w, "/static") || strings.ContainsAny(w, " \t?#") {
			errs = append(errs, field.Invalid(path.Child("websocketPath"), w,
				"must be a path below / (such as /ws/) that is neither / nor under /static"))
		}
	}
	return errs
}

// pythonRef is a dotted Python path, optionally with ":attribute".
var pythonRef = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*)?$`)

func validateApp(a *App, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, ref := range []struct{ name, v string }{{"wsgi", a.WSGI}, {"asgi", a.ASGI}, {"celeryApp", a.CeleryApp}} {
		if ref.v != "" && !pythonRef.MatchString(ref.v) {
			errs = append(errs, field.Invalid(path.Child(ref.name), ref.v, "must be a Python module path such as myproject.wsgi:application"))
		}
	}
	if h := a.HealthPath; h != "" && (!strings.HasPrefix(h, "/") || strings.ContainsAny(h, " \t?#")) {
		errs = append(errs, field.Invalid(path.Child("healthPath"), h, "must be an absolute URL path such as /healthz/"))
	}
	for i, c := range a.ChannelLayers {
		if !settingPattern.MatchString(c) {
			errs = append(errs, field.Invalid(path.Child("channelLayers").Index(i), c, "must be a channel name made of letters, digits and '_'"))
		}
	}
	return errs
}

func validateNames(names []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, n := range names {
		p := path.Index(i)
		if seen[n] {
			errs = append(errs, field.Duplicate(p, n))
			continue
		}
		seen[n] = true
		for _, msg := range validation.IsDNS1123Subdomain(n) {
			errs = append(errs, field.Invalid(p, n, msg))
		}
	}
	return errs
}

func validateReplicas(r *Replicas, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, c := range []struct {
		name string
		v    *int32
	}{
		{"web", r.Web}, {"daphne", r.Daphne}, {"channelWorker", r.ChannelWorker},
		{"celeryd", r.Celeryd}, {"static", r.Static},
	} {
		if c.v != nil {
			errs = append(errs, inRange(*c.v, 0, 1000, path.Child(c.name))...)
		}
	}
	if b := r.CeleryBeat; b != nil && *b != 0 && *b != 1 {
		errs = append(errs, field.Invalid(path.Child("celeryBeat"), *b,
			"must be 0 or 1: a second beat would run every scheduled task twice"))
	}
	return errs
}

func validateScaling(h *HorizontalScaling, path *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, inRange(h.MinReplicas, 1, 1000, path.Child("minReplicas"))...)
	errs = append(errs, inRange(h.MaxReplicas, 1, 1000, path.Child("maxReplicas"))...)
	if h.MaxReplicas < h.MinReplicas {
		errs = append(errs, field.Invalid(path.Child("maxReplicas"), h.MaxReplicas, "must be at least minReplicas"))
	}
	errs = append(errs, inRange(h.TargetCPUUtilizationPercentage, 0, 100, path.Child("targetCPUUtilizationPercentage"))...)
	return errs
}

func validateMigrations(m *Migrations, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, c := range m.Command {
		if c == "" {
			errs = append(errs, field.Invalid(path.Child("command").Index(i), c, "must not be empty"))
		}
	}
	if m.BackoffLimit != nil {
		errs = append(errs, inRange(*m.BackoffLimit, 0, 10, path.Child("backoffLimit"))...)
	}
	if d := m.ActiveDeadlineSeconds; d != nil && (*d < 60 || *d > 86400) {
		errs = append(errs, field.Invalid(path.Child("activeDeadlineSeconds"), *d, "must be between 60 and 86400"))
	}
	if m.Attempt < 0 {
		errs = append(errs, field.Invalid(path.Child("attempt"), m.Attempt, "must not be negative"))
	}
	return errs
}

func validateBackups(b *Backups, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch b.BeforeMigration {
	case "", BackupRequired, BackupBestEffort, BackupNever:
	default:
		errs = append(errs, field.NotSupported(path.Child("beforeMigration"), b.BeforeMigration,
			[]string{string(BackupRequired), string(BackupBestEffort), string(BackupNever)}))
	}
	if b.Keep != nil {
		errs = append(errs, inRange(*b.Keep, 1, 100, path.Child("keep"))...)
	}
	return errs
}

func validateDatabase(d *Database, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	kinds := 0
	for _, set := range []bool{d.Shared != nil, d.URLSecret != nil, d.InCluster != nil} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		errs = append(errs, field.Forbidden(path, "set one of shared, urlSecret and inCluster, not more"))
	}
	if sh := d.Shared; sh != nil {
		p := path.Child("shared")
		if sh.Host == "" {
			errs = append(errs, field.Required(p.Child("host"), "the shared Postgres server's host name"))
		} else if net.ParseIP(sh.Host) == nil {
			errs = append(errs, validateHostname(sh.Host, p.Child("host"))...)
		}
		if sh.Port != 0 {
			errs = append(errs, inRange(sh.Port, 1, 65535, p.Child("port"))...)
		}
		if sh.SSLMode != "" && !slices.Contains(sslModes, sh.SSLMode) {
			errs = append(errs, field.NotSupported(p.Child("sslMode"), sh.SSLMode, sslModes))
		}
	}
	errs = append(errs, validateSecretKeyRef(d.URLSecret, path.Child("urlSecret"), "the Secret key that holds the database URL")...)
	if db := d.InCluster; db != nil {
		p := path.Child("inCluster")
		if q := db.StorageSize; q != nil && q.Cmp(minStorage) < 0 {
			errs = append(errs, field.Invalid(p.Child("storageSize"), q.String(), "must be at least "+minStorage.String()))
		}
		if db.StorageClass != "" {
			errs = append(errs, validateHostname(db.StorageClass, p.Child("storageClass"))...)
		}
	}
	return errs
}

// Bounds of the sizes of the data services inside the cluster. A Redis below minRedisMemory has
// little room left once its own structures are counted; the CRD repeats these bounds.
var (
	minStorage     = resource.MustParse("256Mi")
	minRedisMemory = resource.MustParse("16Mi")
	maxRedisMemory = resource.MustParse("64Gi")
)

func validateRedis(r *Redis, path *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if r.URLSecret != nil && (r.CacheMemory != nil || r.ChannelsMemory != nil) {
		errs = append(errs, field.Forbidden(path, "urlSecret names an external Redis, and cacheMemory and channelsMemory size the one Summon runs: set one or the other"))
	}
	errs = append(errs, validateSecretKeyRef(r.URLSecret, path.Child("urlSecret"), "the Secret key that holds the Redis URL")...)
	for _, m := range []struct {
		name string
		q    *resource.Quantity
	}{{"cacheMemory", r.CacheMemory}, {"channelsMemory", r.ChannelsMemory}} {
		if m.q != nil && (m.q.Cmp(minRedisMemory) < 0 || m.q.Cmp(maxRedisMemory) > 0) {
			errs = append(errs, field.Invalid(path.Child(m.name), m.q.String(),
				"must be between "+minRedisMemory.String()+" and "+maxRedisMemory.String()))
		}
	}
	return errs
}

func validateSecretKeyRef(ref *SecretKeyRef, p *field.Path, keyHelp string) field.ErrorList {
	if ref == nil {
		return nil
	}
	errs := validateNames([]string{ref.Name}, p.Child("name"))
	if ref.Key == "" {
		errs = append(errs, field.Required(p.Child("key"), keyHelp))
	}
	return errs
}

func inRange(v, lo, hi int32, p *field.Path) field.ErrorList {
	if v < lo || v > hi {
		return field.ErrorList{field.Invalid(p, v, fmt.Sprintf("must be between %d and %d", lo, hi))}
	}
	return nil
}
