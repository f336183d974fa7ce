package children

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// revisionHistory keeps three old revisions per workload: hundreds of instances with Kubernetes'
// default of ten old ReplicaSets each clutter every list call.
const revisionHistory = 3

// appDeployment wraps an app pod template in a Deployment. It always states replicas, even while
// an HPA scales the component: a field that leaves Metacontroller's answer is removed by its
// three-way merge, and the API server then defaults it to 1 (see platform.HandOverReplicas).
func appDeployment(p Platform, c Component, r Release, replicas int32, tpl corev1.PodTemplateSpec) *appsv1.Deployment {
	maxSurge := intstr.FromString("25%")
	maxUnavailable := intstr.FromInt32(0)
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: objectMeta(p, p.Names.Of(c), VersionedLabels(p.Name, c, r.Version)),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(p.Name, c)},
			Template: tpl,
			// Never fewer ready pods than asked for during a rollout.
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &maxSurge, MaxUnavailable: &maxUnavailable},
			},
			RevisionHistoryLimit: ptr.To[int32](revisionHistory),
		},
	}
}

// objectMeta is the metadata of every child: its name, the parent's namespace, its labels.
func objectMeta(p Platform, name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: labels}
}
