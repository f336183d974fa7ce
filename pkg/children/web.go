package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// WebDeployment is the gunicorn Deployment that serves Django's HTTP traffic. replicas is the
// spec's count, or, while an HPA scales web, the count the core hands over to it.
func WebDeployment(p Platform, r Release, replicas int32) *appsv1.Deployment {
	s := p.Spec
	c := corev1.Container{
		// Workers and threads are explicit: gunicorn's default of one sync worker leaves most of
		// the pod's CPU request idle.
		Command: []string{
			"gunicorn",
			"--bind=0.0.0.0:" + itoa(appPort),
			"--workers=" + itoa(s.Gunicorn.Workers),
			"--threads=" + itoa(s.Gunicorn.Threads),
			"--timeout=" + itoa(s.Gunicorn.TimeoutSeconds),
			// On SIGTERM, gunicorn lets its workers finish the requests in hand for this long
			// (its default is 30 s whatever the request timeout): no request outlives --timeout
			// anyway, and the pod's grace period is sized from it.
			"--graceful-timeout=" + itoa(s.Gunicorn.TimeoutSeconds),
			// The root filesystem is read-only; gunicorn's heartbeat files go to the tmp volume.
			"--worker-tmp-dir=/tmp",
			"--access-logfile=-",
			s.App.WSGI,
		},
		Ports:          httpPort(),
		Resources:      s.Resources.Web,
		StartupProbe:   withThresholds(webProbe(p), 5, 60),
		ReadinessProbe: withThresholds(webProbe(p), 10, 3),
		LivenessProbe:  withThresholds(webProbe(p), 20, 6),
	}
	tpl := appPodTemplate(p, Web, r, c)
	// The graceful timeout, and a few seconds for the arbiter to reap its workers and exit.
	drainBeforeStop(&tpl, int64(s.Gunicorn.TimeoutSeconds)+5)
	return appDeployment(p, Web, r, replicas, tpl)
}

// webProbe asks Django's health endpoint the way the Ingress would. Behind TLS termination Django
// sees X-Forwarded-Proto: without it SECURE_SSL_REDIRECT answers every probe with a redirect, and
// without a Host in ALLOWED_HOSTS it answers 400.
func webProbe(p Platform) *corev1.Probe {
	headers := []corev1.HTTPHeader{{Name: "X-Forwarded-Proto", Value: "https"}}
	if p.Spec.Hostname != "" {
		headers = append(headers, corev1.HTTPHeader{Name: "Host", Value: p.Spec.Hostname})
	}
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path:        p.Spec.App.HealthPath,
			Port:        intstr.FromString(httpPortName),
			HTTPHeaders: headers,
		}},
		TimeoutSeconds: 5,
	}
}

func withThresholds(pr *corev1.Probe, period, failures int32) *corev1.Probe {
	pr.PeriodSeconds = period
	pr.FailureThreshold = failures
	return pr
}
