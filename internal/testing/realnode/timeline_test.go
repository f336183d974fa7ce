package realnode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

func TestEndpointsAreDescribedByTheConditionsKubeProxyReads(t *testing.T) {
	endpoint := func(pod string, ready, serving, terminating bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses: []string{"198.18.0.9"},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod},
			Conditions: discoveryv1.EndpointConditions{
				Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating),
			},
		}
	}
	for _, tc := range []struct {
		name      string
		endpoints []discoveryv1.Endpoint
		want      string
	}{
		{"a slice with no endpoint says so", nil, "no endpoints"},
		{"a ready pod is ready, whatever its serving condition says", []discoveryv1.Endpoint{endpoint("web-1", true, true, false)}, "web-1 ready"},
		{"a deleted pod still serving is terminating and serving", []discoveryv1.Endpoint{endpoint("web-2", false, true, true)}, "web-2 terminating,serving"},
		{"a starting pod is not ready", []discoveryv1.Endpoint{endpoint("web-3", false, false, false)}, "web-3 not ready"},
		{"endpoints are sorted by pod", []discoveryv1.Endpoint{endpoint("web-b", true, true, false), endpoint("web-a", false, false, true)}, "web-a terminating; web-b ready"},
		{"an endpoint without a pod is named by its address", []discoveryv1.Endpoint{{Addresses: []string{"198.18.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}, "198.18.0.7 ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeEndpoints(&discoveryv1.EndpointSlice{Endpoints: tc.endpoints}); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
