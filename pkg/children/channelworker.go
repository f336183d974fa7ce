package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// ChannelWorkerDeployment runs Channels' background workers on the configured channel names.
func ChannelWorkerDeployment(p Platform, r Release) *appsv1.Deployment {
	s := p.Spec
	c := corev1.Container{
		Command:   append([]string{"python", "manage.py", "runworker"}, s.App.ChannelLayers...),
		Resources: s.Resources.ChannelWorker,
	}
	return appDeployment(p, ChannelWorker, r, *s.Replicas.ChannelWorker, appPodTemplate(p, ChannelWorker, r, c))
}
