package children

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Where the app config file lives in every app container (docs/app-image.md).
const (
	ConfigMountPath = "/etc/summon"
	ConfigFileName  = "summon-platform.yml"
	ConfigEnv       = "SUMMON_CONFIG_FILE"
	httpPortName    = "http"
	appPort         = 8000
)

// appPodTemplate is the pod template every app workload and the migration Job share: the image of
// the release, the config file mounted read-only, the config hash that rolls pods when the config
// changes, and a restricted security context.
func appPodTemplate(p Platform, c Component, r Release, container corev1.Container, extraVolumes ...corev1.Volume) corev1.PodTemplateSpec {
	container.Name = string(c)
	container.Image = p.Image(r.Version)
	container.Env = append([]corev1.EnvVar{{Name: ConfigEnv, Value: ConfigMountPath + "/" + ConfigFileName}}, container.Env...)
	container.VolumeMounts = append([]corev1.VolumeMount{
		{Name: "config", MountPath: ConfigMountPath, ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
	}, container.VolumeMounts...)
	container.SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}

	volumes := append([]corev1.Volume{
		// Readable by any user: the image's user is not known here (no runAsUser or fsGroup is
		// set), and the pod is the instance's alone. Writable by none.
		{Name: "config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  p.Names.Config(),
			DefaultMode: ptr.To[int32](0o444),
		}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}, extraVolumes...)

	var pullSecrets []corev1.LocalObjectReference
	for _, s := range p.Spec.ImagePullSecrets {
		pullSecrets = append(pullSecrets, corev1.LocalObjectReference{Name: s})
	}

	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      VersionedLabels(p.Name, c, r.Version),
			Annotations: map[string]string{AnnotationConfigHash: r.ConfigHash},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{container},
			Volumes:    volumes,
			// The app never calls the Kubernetes API, and Django gains nothing from one
			// environment variable per Service in the namespace.
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			ImagePullSecrets:             pullSecrets,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
}

// httpPort is the one port of a serving container.
func httpPort() []corev1.ContainerPort {
	return []corev1.ContainerPort{{Name: httpPortName, ContainerPort: appPort, Protocol: corev1.ProtocolTCP}}
}

// tcpProbe checks that a server accepts connections on its port.
func tcpProbe(period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(httpPortName)}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
	}
}

// drainSeconds is how long a serving pod keeps accepting connections after it is told to stop.
// Deleting a pod and removing it from the Service's endpoints happen at the same time, not one
// after the other: kube-proxy (and an Ingress controller) stop sending it traffic a moment later,
// and a server that stops accepting at once refuses the requests still routed to it. Measured on
// a real node (docs/reliability.md): without this delay, 6, 14 and 1 of ~450 requests failed per
// rollout of 3 gunicorn pods; with 2 s, none. 5 s leaves room for a busier kube-proxy and an
// Ingress controller's own endpoint update.
const drainSeconds = 5

// drainBeforeStop delays the container's SIGTERM by drainSeconds with Kubernetes' own sleep
// action (no binary needed in the image; Kubernetes 1.30+), and sets the pod's grace period to
// that delay plus stopSeconds, the time the server needs after SIGTERM to finish the requests in
// hand: the kubelet counts the preStop hook inside the grace period, and kills what is still
// running at its end.
func drainBeforeStop(tpl *corev1.PodTemplateSpec, stopSeconds int64) {
	c := &tpl.Spec.Containers[0]
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: drainSeconds}}}
	tpl.Spec.TerminationGracePeriodSeconds = ptr.To(drainSeconds + stopSeconds)
}
