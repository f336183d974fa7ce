package testcluster

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

func smokeDeployment(namespace string) *appsv1.Deployment {
	labels := map[string]string{"app": "smoke"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "smoke", Image: "registry.example.com/smoke:1"}}},
			},
		},
	}
}

// PodStage is a kwok Stage for pods that match labels: after delay, they move to phase (Succeeded
// or Failed; a Failed pod's container exits 1 with reason). Its weight is 1, so where it matches
// it wins over the module's stages, whose weight is 0; kwok moves a pod through the first stage
// only once it is Running, as pod-ready leaves it. Create it with the dynamic client and
// StageGVR before the pods it is for.
func PodStage(name string, labels map[string]string, phase corev1.PodPhase, delayMillis int64, reason string) *unstructured.Unstructured {
	expr := []any{
		map[string]any{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
		map[string]any{"key": ".status.phase", "operator": "In", "values": []any{"Running"}},
	}
	for k, v := range labels {
		expr = append(expr, map[string]any{"key": `.metadata.labels["` + k + `"]`, "operator": "In", "values": []any{v}})
	}
	exitCode, ready := "0", "true"
	if phase == corev1.PodFailed {
		exitCode, ready = "1", "false"
	}
	if reason == "" {
		reason = "Completed"
	}
	// The same status shape as the module's pod-complete and pod-container-running-failed stages.
	template := `{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: ` + ready + `
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: ` + exitCode + `
      finishedAt: {{ $now | Quote }}
      reason: ` + reason + `
      startedAt: {{ $now | Quote }}
{{ end }}
phase: ` + string(phase) + `
`
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": StageGVR.GroupVersion().String(),
		"kind":       "Stage",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"resourceRef": map[string]any{"apiGroup": "v1", "kind": "Pod"},
			"selector":    map[string]any{"matchExpressions": expr},
			"weight":      int64(1),
			"delay":       map[string]any{"durationMilliseconds": delayMillis},
			"next":        map[string]any{"statusTemplate": template},
		},
	}}
}

// DerivedStage is a copy of one of the installed stages (base, as read from the cluster, e.g.
// "pod-ready") that acts only on pods with labels, after delay, under a name of its own. Its
// weight is 1, so it wins over base (weight 0) wherever both match: a test makes, say, its web
// pods take a while to become Ready, as real ones do.
func DerivedStage(base *unstructured.Unstructured, name string, labels map[string]string, delayMillis int64) *unstructured.Unstructured {
	s := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": base.GetAPIVersion(),
		"kind":       base.GetKind(),
		"metadata":   map[string]any{"name": name},
		"spec":       deepCopyMap(base.Object["spec"]),
	}}
	expr, _, _ := unstructured.NestedSlice(s.Object, "spec", "selector", "matchExpressions")
	for k, v := range labels {
		expr = append(expr, map[string]any{"key": `.metadata.labels["` + k + `"]`, "operator": "In", "values": []any{v}})
	}
	_ = unstructured.SetNestedSlice(s.Object, expr, "spec", "selector", "matchExpressions")
	_ = unstructured.SetNestedField(s.Object, int64(1), "spec", "weight")
	_ = unstructured.SetNestedMap(s.Object, map[string]any{"durationMilliseconds": delayMillis}, "spec", "delay")
	return s
}

func deepCopyMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return runtime.DeepCopyJSON(m)
}
