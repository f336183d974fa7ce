package children

import (
	"maps"

	networkingv1 "k8s.io/api/networking/v1"
)

// Ingress routes the instance's hosts: / to web, the websocket path to Daphne, /static to the
// static files. It returns nil when the instance has no hostname.
func Ingress(p Platform) *networkingv1.Ingress {
	s := p.Spec
	if s.Hostname == "" {
		return nil
	}
	hosts := append([]string{s.Hostname}, s.Aliases...)
	paths := []networkingv1.HTTPIngressPath{
		ingressPath(p, "/", Web),
		ingressPath(p, s.Ingress.WebsocketPath, Daphne),
		ingressPath(p, "/static", Static),
	}
	var rules []networkingv1.IngressRule
	for _, h := range hosts {
		rules = append(rules, networkingv1.IngressRule{
			Host:             h,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
		})
	}
	tlsSecret := s.Ingress.TLSSecretName
	if tlsSecret == "" {
		tlsSecret = p.Names.TLS()
	}
	meta := objectMeta(p, p.Names.Ingress(), Labels(p.Name, Routing))
	if len(s.Ingress.Annotations) > 0 {
		meta.Annotations = maps.Clone(s.Ingress.Annotations)
	}
	ing := &networkingv1.Ingress{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "Ingress"),
		ObjectMeta: meta,
		Spec: networkingv1.IngressSpec{
			TLS:   []networkingv1.IngressTLS{{Hosts: hosts, SecretName: tlsSecret}},
			Rules: rules,
		},
	}
	if s.Ingress.ClassName != "" {
		ing.Spec.IngressClassName = &s.Ingress.ClassName
	}
	return ing
}

func ingressPath(p Platform, path string, c Component) networkingv1.HTTPIngressPath {
	prefix := networkingv1.PathTypePrefix
	return networkingv1.HTTPIngressPath{
		Path:     path,
		PathType: &prefix,
		Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: p.Names.Of(c),
			Port: networkingv1.ServiceBackendPort{Name: httpPortName},
		}},
	}
}
