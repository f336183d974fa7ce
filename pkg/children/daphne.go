package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// DaphneDeployment is the Deployment that serves websockets (Django Channels) on the websocket path.
func DaphneDeployment(p Platform, r Release) *appsv1.Deployment {
	s := p.Spec
	c := corev1.Container{
		Command: []string{
			"daphne", "--bind=0.0.0.0", "--port=" + itoa(appPort),
			// Daphne sits behind the Ingress: trust its X-Forwarded-* headers.
			"--proxy-headers",
			s.App.ASGI,
		},
		Ports:          httpPort(),
		Resources:      s.Resources.Daphne,
		ReadinessProbe: tcpProbe(10, 3),
		LivenessProbe:  tcpProbe(20, 6),
	}
	return appDeployment(p, Daphne, r, *s.Replicas.Daphne, appPodTemplate(p, Daphne, r, c))
}
