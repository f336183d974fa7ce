package v1beta1

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// HookDefaults are the defaults that come from the hook's configuration rather than the API.
type HookDefaults struct {
	// Image is the repository used when spec.image is empty.
	Image string `json:"image,omitempty"`
}

// DefaultBackupsKept is how many backups an instance keeps unless spec.backups.keep says.
const DefaultBackupsKept = 5

// MigrationRecordsKept is how many succeeded migration Jobs an instance keeps for their logs.
const MigrationRecordsKept = 3

// Defaulted returns a copy of the spec with every default filled in. It never changes the input:
// the parent as observed must stay untouched so that status echoes what the user wrote.
func (s Spec) Defaulted(hook HookDefaults) Spec {
	out := s
	if out.Image == "" {
		out.Image = hook.Image
	}
	if out.DeletionPolicy == "" {
		out.DeletionPolicy = DeletionPolicyRetain
	}
	if out.Ingress.WebsocketPath == "" {
		out.Ingress.WebsocketPath = "/ws/"
	}

	out.Replicas.Web = orInt32(out.Replicas.Web, 1)
	out.Replicas.Daphne = orInt32(out.Replicas.Daphne, 1)
	out.Replicas.ChannelWorker = orInt32(out.Replicas.ChannelWorker, 1)
	out.Replicas.Celeryd = orInt32(out.Replicas.Celeryd, 1)
	out.Replicas.Static = orInt32(out.Replicas.Static, 1)
	out.Replicas.CeleryBeat = orInt32(out.Replicas.CeleryBeat, 1)

	out.Resources.Web = orResources(out.Resources.Web, "250m", "512Mi", "1Gi")
	out.Resources.Daphne = orResources(out.Resources.Daphne, "100m", "256Mi", "512Mi")
	out.Resources.ChannelWorker = orResources(out.Resources.ChannelWorker, "100m", "256Mi", "512Mi")
	out.Resources.Celeryd = orResources(out.Resources.Celeryd, "250m", "512Mi", "1Gi")
	out.Resources.Static = orResources(out.Resources.Static, "50m", "64Mi", "128Mi")
	out.Resources.CeleryBeat = orResources(out.Resources.CeleryBeat, "50m", "256Mi", "512Mi")

	out.Autoscaling.Web = defaultScaling(out.Autoscaling.Web)
	out.Autoscaling.Celeryd = defaultScaling(out.Autoscaling.Celeryd)

	if out.App.WSGI == "" {
		out.App.WSGI = "summon_platform.wsgi:application"
	}
	if out.App.ASGI == "" {
		out.App.ASGI = "summon_platform.asgi:application"
	}
	if out.App.CeleryApp == "" {
		out.App.CeleryApp = "summon_platform"
	}
	if out.App.HealthPath == "" {
		out.App.HealthPath = "/healthz/"
	}
	if len(out.App.ChannelLayers) == 0 {
		out.App.ChannelLayers = []string{"default"}
	}
	if out.Gunicorn.Workers == 0 {
		out.Gunicorn.Workers = 2
	}
	if out.Gunicorn.Threads == 0 {
		out.Gunicorn.Threads = 4
	}
	if out.Gunicorn.TimeoutSeconds == 0 {
		out.Gunicorn.TimeoutSeconds = 30
	}
	if out.Celery.Concurrency == 0 {
		out.Celery.Concurrency = 2
	}

	if len(out.Migrations.Command) == 0 {
		out.Migrations.Command = []string{"python", "manage.py", "migrate", "--noinput"}
	}
	out.Migrations.BackoffLimit = orInt32(out.Migrations.BackoffLimit, 2)
	if out.Migrations.ActiveDeadlineSeconds == nil {
		d := int64(1800)
		out.Migrations.ActiveDeadlineSeconds = &d
	}
	// Migrations load every model and often a data migration's worth of rows: give them room.
	out.Migrations.Resources = orResources(out.Migrations.Resources, "250m", "1Gi", "2Gi")

	out.Backups.Keep = orInt32(out.Backups.Keep, DefaultBackupsKept)

	if sh := out.Database.Shared; sh != nil {
		c := *sh
		if c.Port == 0 {
			c.Port = 5432
		}
		if c.SSLMode == "" {
			c.SSLMode = "require"
		}
		out.Database.Shared = &c
	}
	if db := out.Database.InCluster; db != nil {
		c := *db
		c.StorageSize = orQuantity(c.StorageSize, "1Gi")
		out.Database.InCluster = &c
	}
	if r := out.Redis; r.InCluster() {
		c := *r
		c.CacheMemory = orQuantity(c.CacheMemory, "256Mi")
		c.ChannelsMemory = orQuantity(c.ChannelsMemory, "64Mi")
		out.Redis = &c
	}
	return out
}

func orQuantity(q *resource.Quantity, def string) *resource.Quantity {
	if q != nil {
		c := q.DeepCopy()
		return &c
	}
	d := defaultQuantity(def)
	return &d
}

// parsedDefaults holds each default quantity of this file parsed once (string → Quantity): they
// are a handful of constants, and parsing them on every sync was a twentieth of a fresh install's
// core.
var parsedDefaults sync.Map

// defaultQuantity is resource.MustParse(def), parsed once; each caller gets its own copy.
func defaultQuantity(def string) resource.Quantity {
	if q, ok := parsedDefaults.Load(def); ok {
		return q.(resource.Quantity).DeepCopy()
	}
	q := resource.MustParse(def)
	parsedDefaults.Store(def, q)
	return q.DeepCopy()
}

func orInt32(p *int32, def int32) *int32 {
	if p != nil {
		v := *p
		return &v
	}
	return &def
}

// orResources fills requests and a memory limit only when the user set nothing at all: a partial
// setting is the user's choice and is kept as written.
func orResources(r corev1.ResourceRequirements, cpu, memRequest, memLimit string) corev1.ResourceRequirements {
	if len(r.Requests) > 0 || len(r.Limits) > 0 || len(r.Claims) > 0 {
		return r
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    defaultQuantity(cpu),
			corev1.ResourceMemory: defaultQuantity(memRequest),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: defaultQuantity(memLimit),
		},
	}
}

func defaultScaling(h *HorizontalScaling) *HorizontalScaling {
	if h == nil {
		return nil
	}
	c := *h
	if c.TargetCPUUtilizationPercentage == 0 {
		c.TargetCPUUtilizationPercentage = 75
	}
	return &c
}
