package children

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Only the instance reaches its data: a NetworkPolicy in front of each data service that Summon
// runs for it admits its app pods and its migration Jobs, and nobody else. One policy per service,
// because a policy selects its pods with one selector, and the Redis pod and CNPG's pods have no
// label in common; each policy admits only the ports its service listens on. Policies add up, so a
// namespace's default-deny stays in force for everything else. A cluster whose network plugin does
// not enforce NetworkPolicies ignores them.

// cnpgOperatorName is the app.kubernetes.io/name label of CNPG's operator pods (its manifests and
// its Helm chart set it).
const cnpgOperatorName = "cloudnative-pg"

// cnpgStatusPort is the instance manager's status endpoint, which CNPG's operator polls.
const cnpgStatusPort = 8000

// RedisNetworkPolicy admits the instance's app pods and migration Jobs to its Redis servers.
func RedisNetworkPolicy(p Platform) *networkingv1.NetworkPolicy {
	var ports []networkingv1.NetworkPolicyPort
	for _, s := range RedisServers(p) {
		ports = append(ports, tcpPort(s.Port))
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
		ObjectMeta: objectMeta(p, p.Names.Of(Redis), Labels(p.Name, Redis)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(p.Name, Redis)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: appPods(p)}}, Ports: ports}},
		},
	}
}

// PostgresNetworkPolicy admits the instance's app pods and migration Jobs to its own Postgres. It
// also admits what CNPG needs to run the Cluster: its operator (in operatorNamespace), to the
// instance manager and to Postgres, and the Cluster's own pods to each other.
func PostgresNetworkPolicy(p Platform, operatorNamespace string) *networkingv1.NetworkPolicy {
	cluster := &metav1.LabelSelector{MatchLabels: map[string]string{CNPGClusterLabel: p.Names.Of(Postgres)}}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
		ObjectMeta: objectMeta(p, p.Names.Of(Postgres), Labels(p.Name, Postgres)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *cluster,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{From: []networkingv1.NetworkPolicyPeer{{PodSelector: appPods(p)}}, Ports: []networkingv1.NetworkPolicyPort{tcpPort(postgresPort)}},
				{
					From: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: operatorNamespace}},
						PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{LabelName: cnpgOperatorName}},
					}},
					Ports: []networkingv1.NetworkPolicyPort{tcpPort(cnpgStatusPort), tcpPort(postgresPort)},
				},
				{From: []networkingv1.NetworkPolicyPeer{{PodSelector: cluster}}, Ports: []networkingv1.NetworkPolicyPort{tcpPort(postgresPort), tcpPort(cnpgStatusPort)}},
			},
		},
	}
}

// appPods selects the pods of the instance that run the app image: every app workload's and the
// migration Jobs'.
func appPods(p Platform) *metav1.LabelSelector {
	var components []string
	for _, c := range slices.Concat(AppComponents, []Component{Migrations}) {
		components = append(components, string(c))
	}
	return &metav1.LabelSelector{
		MatchLabels:      map[string]string{LabelName: appName, LabelInstance: p.Name},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelComponent, Operator: metav1.LabelSelectorOpIn, Values: components}},
	}
}

func tcpPort(port int32) networkingv1.NetworkPolicyPort {
	tcp := corev1.ProtocolTCP
	p := intstr.FromInt32(port)
	return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p}
}
