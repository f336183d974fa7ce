package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const beatStateDir = "/var/lib/celerybeat"

// BeatStatefulSet is the Celerybeat StatefulSet. A StatefulSet, not a Deployment: its one pod is ordinal 0,
// and a rollout deletes that pod before it starts the next, so two beats never overlap (a
// Deployment's surge would run both and every scheduled task twice). replicas is 0 or 1, decided
// by the gate's beat singleton. It has no PDB: a PDB on a singleton blocks every node drain.
func BeatStatefulSet(p Platform, r Release, replicas int32) *appsv1.StatefulSet {
	s := p.Spec
	c := corev1.Container{
		Command: []string{
			"celery", "--app=" + s.App.CeleryApp, "beat",
			"--loglevel=INFO",
			"--schedule=" + beatStateDir + "/schedule",
			// Beat writes a pid file in its working directory by default; the root filesystem is
			// read-only.
			"--pidfile=/tmp/celerybeat.pid",
		},
		Resources:    s.Resources.CeleryBeat,
		VolumeMounts: []corev1.VolumeMount{{Name: "beat-state", MountPath: beatStateDir}},
	}
	state := corev1.Volume{Name: "beat-state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	return &appsv1.StatefulSet{
		TypeMeta:   typeMeta("apps/v1", "StatefulSet"),
		ObjectMeta: objectMeta(p, p.Names.Of(CeleryBeat), VersionedLabels(p.Name, CeleryBeat, r.Version)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:             &replicas,
			ServiceName:          p.Names.Of(CeleryBeat),
			Selector:             &metav1.LabelSelector{MatchLabels: SelectorLabels(p.Name, CeleryBeat)},
			Template:             appPodTemplate(p, CeleryBeat, r, c, state),
			PodManagementPolicy:  appsv1.OrderedReadyPodManagement,
			RevisionHistoryLimit: ptr.To[int32](revisionHistory),
		},
	}
}
