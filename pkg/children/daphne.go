package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// daphneStopSeconds is Daphne's time to stop after SIGTERM (see DaphneDeployment).
const daphneStopSeconds = 25

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
	tpl := appPodTemplate(p, Daphne, r, c)
	// On SIGTERM Daphne stops listening, closes its websockets (clients reconnect to another
	// pod) and gives the application up to --application-close-timeout (10 s) to finish: 25 s
	// leaves room for the HTTP requests it also serves.
	drainBeforeStop(&tpl, daphneStopSeconds)
	return appDeployment(p, Daphne, r, *s.Replicas.Daphne, tpl)
}
