package children

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ServingComponents are the components that receive HTTP traffic through the Ingress.
var ServingComponents = []Component{Web, Daphne, Static}

// ServiceFor is the ClusterIP Service in front of a serving component.
func ServiceFor(p Platform, c Component) *corev1.Service {
	return clusterIPService(p, c, []corev1.ServicePort{{
		Name:       httpPortName,
		Port:       80,
		TargetPort: intstr.FromString(httpPortName),
		Protocol:   corev1.ProtocolTCP,
	}})
}

// clusterIPService is the ClusterIP Service of a component's pods, on the given ports.
func clusterIPService(p Platform, c Component, ports []corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(p, p.Names.Of(c), Labels(p.Name, c)),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: SelectorLabels(p.Name, c),
			Ports:    ports,
		},
	}
}

// BeatService is the headless Service that a StatefulSet must name; beat serves nothing.
func BeatService(p Platform) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(p, p.Names.Of(CeleryBeat), Labels(p.Name, CeleryBeat)),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  SelectorLabels(p.Name, CeleryBeat),
		},
	}
}
