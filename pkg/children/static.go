package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// StaticRoot is where the image keeps the collected static files (docs/app-image.md).
const StaticRoot = "/var/www"

// staticStopSeconds is Caddy's time to stop after SIGTERM.
const staticStopSeconds = 10

// StaticDeployment is the Deployment that serves the static files collected into the image. It runs
// the app image, so it moves with the version like every other app workload.
func StaticDeployment(p Platform, r Release) *appsv1.Deployment {
	s := p.Spec
	c := corev1.Container{
		Command:        []string{"caddy", "file-server", "--root=" + StaticRoot, "--listen=:" + itoa(appPort)},
		Ports:          httpPort(),
		Resources:      s.Resources.Static,
		ReadinessProbe: tcpProbe(10, 3),
		LivenessProbe:  tcpProbe(20, 6),
	}
	tpl := appPodTemplate(p, Static, r, c)
	// Caddy finishes the file transfers in hand on SIGTERM; static files are small.
	drainBeforeStop(&tpl, staticStopSeconds)
	return appDeployment(p, Static, r, *s.Replicas.Static, tpl)
}
