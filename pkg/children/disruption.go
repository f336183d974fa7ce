package children

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// PodDisruptionBudget lets node drains take one pod of a serving component at a time. It returns
// nil for a component that may run a single pod: a PDB there would block every drain.
func PodDisruptionBudget(p Platform, c Component) *policyv1.PodDisruptionBudget {
	if minPods(p, c) < 2 {
		return nil
	}
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   typeMeta("policy/v1", "PodDisruptionBudget"),
		ObjectMeta: objectMeta(p, p.Names.Of(c), Labels(p.Name, c)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &one,
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(p.Name, c)},
		},
	}
}

// minPods is the fewest pods a serving component is asked to run.
func minPods(p Platform, c Component) int32 {
	r := p.Spec.Replicas
	switch c {
	case Web:
		if h := p.Spec.Autoscaling.Web; h != nil {
			return h.MinReplicas
		}
		return *r.Web
	case Daphne:
		return *r.Daphne
	case Static:
		return *r.Static
	}
	return 0
}

// HorizontalPodAutoscaler scales web or celeryd on CPU when the spec asks for it, else nil.
func HorizontalPodAutoscaler(p Platform, c Component) *autoscalingv2.HorizontalPodAutoscaler {
	h := p.Spec.Autoscaling.Web
	if c == Celeryd {
		h = p.Spec.Autoscaling.Celeryd
	}
	if h == nil || (c != Web && c != Celeryd) {
		return nil
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   typeMeta("autoscaling/v2", "HorizontalPodAutoscaler"),
		ObjectMeta: objectMeta(p, p.Names.Of(c), Labels(p.Name, c)),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: p.Names.Of(c)},
			MinReplicas:    ptr.To(h.MinReplicas),
			MaxReplicas:    h.MaxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   "cpu",
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(h.TargetCPUUtilizationPercentage)},
				},
			}},
		},
	}
}
