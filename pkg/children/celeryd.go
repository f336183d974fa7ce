package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// celerydGracePeriod lets a worker finish the task in hand on a rollout: Celery's warm shutdown
// waits for running tasks, and the default 30 s cuts long ones off mid-way.
const celerydGracePeriod = 300

// CeleryWorkerDeployment is the Deployment of Celery workers. replicas is the spec's count, or,
// while an HPA scales celeryd, the count the core hands over to it.
func CeleryWorkerDeployment(p Platform, r Release, replicas int32) *appsv1.Deployment {
	s := p.Spec
	c := corev1.Container{
		Command: []string{
			"celery", "--app=" + s.App.CeleryApp, "worker",
			"--loglevel=INFO",
			"--concurrency=" + itoa(s.Celery.Concurrency),
		},
		Resources: s.Resources.Celeryd,
	}
	tpl := appPodTemplate(p, Celeryd, r, c)
	tpl.Spec.TerminationGracePeriodSeconds = ptr.To[int64](celerydGracePeriod)
	return appDeployment(p, Celeryd, r, replicas, tpl)
}
