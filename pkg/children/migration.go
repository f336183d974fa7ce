package children

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// MigrationJob runs one version's migrations, once. It is named per version and attempt because a
// Job's pod template is immutable. It has no ttlSecondsAfterFinished on purpose: the finished Job
// is the evidence the gate reads, and a Job that vanished before its success was recorded would
// be created again and run the migrations a second time.
func MigrationJob(p Platform, r Release, attempt int32) *batchv1.Job {
	m := p.Spec.Migrations
	c := corev1.Container{
		Command:   m.Command,
		Resources: m.Resources,
	}
	tpl := appPodTemplate(p, Migrations, r, c)
	tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	meta := objectMeta(p, p.Names.MigrationJob(r.Version, attempt), VersionedLabels(p.Name, Migrations, r.Version))
	meta.Annotations = map[string]string{AnnotationMigrationAttempt: itoa(attempt)}
	return &batchv1.Job{
		TypeMeta:   typeMeta("batch/v1", "Job"),
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			BackoffLimit:          m.BackoffLimit,
			ActiveDeadlineSeconds: m.ActiveDeadlineSeconds,
			Template:              tpl,
		},
	}
}
