package cli

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/forklift-dev/summon/manifests"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/crdschema"
)

// DoctorOptions are the options of summonctl doctor.
type DoctorOptions struct {
	Hook                   hookFlags
	MetacontrollerSelector string
	KeySecret              string
	g                      *globals
}

func newDoctorCommand(g *globals) *cobra.Command {
	o := &DoctorOptions{g: g}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that the cluster, Metacontroller and the hook are set up for Summon",
		Long: `Check the setup, one line per check, ✅ or ❌ with what to do about each ❌: the kubeconfig and
its context, the API server, the SummonPlatform CRD and its version, Metacontroller's CRDs and
pods, the CompositeController summon and the ready endpoints of the hook's Service, the hook's
/readyz (through the API server's service proxy) and the credential-key Secret. Exits 1 when any
check fails.`,
		Example: example(g.name, `
# Check the current context
{{.}} doctor

# Check another cluster
{{.}} doctor --context production`),
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context()) },
	}
	o.Hook.add(cmd.Flags(), false)
	cmd.Flags().StringVar(&o.MetacontrollerSelector, "metacontroller-selector", "app.kubernetes.io/name=metacontroller", "label selector of Metacontroller's pods, in any namespace")
	cmd.Flags().StringVar(&o.KeySecret, "credential-key-secret", "summon-credential-key", "the Secret, in the hook's namespace, that holds the credential master key")
	return cmd
}

// check is one line of doctor's report.
type check struct {
	ok          bool
	what, about string
	fix         string
}

func (c check) String() string {
	if c.ok {
		return fmt.Sprintf("✅ %s: %s", c.what, c.about)
	}
	s := fmt.Sprintf("❌ %s: %s", c.what, c.about)
	if c.fix != "" {
		s += "\n   fix: " + c.fix
	}
	return s
}

// Run runs the checks in order, each line as soon as it is known; a check that the later ones
// need (the kubeconfig, the API server) stops them when it fails.
func (o *DoctorOptions) Run(ctx context.Context) error {
	failed := false
	report := func(c check) {
		failed = failed || !c.ok
		fmt.Fprintln(o.g.streams.Out, c)
	}
	for _, c := range o.checks(ctx, report) {
		report(c)
	}
	if failed {
		return found()
	}
	return nil
}

// checks runs the checks, reporting each; it returns the lines left to report, if any.
func (o *DoctorOptions) checks(ctx context.Context, report func(check)) []check {
	raw, err := o.g.kube.ToRawKubeConfigLoader().RawConfig()
	ctxName := raw.CurrentContext
	if o.g.kube.Context != nil && *o.g.kube.Context != "" {
		ctxName = *o.g.kube.Context
	}
	c, cerr := o.g.clients()
	if err != nil || cerr != nil {
		return []check{{what: "kubeconfig", about: fmt.Sprint(firstErr(err, cerr)),
			fix: "set KUBECONFIG or --kubeconfig to a kubeconfig, and --context to one of its contexts (kubectl config get-contexts)"}}
	}
	report(check{ok: true, what: "kubeconfig", about: fmt.Sprintf("context %q, namespace %q, server %s", ctxName, c.namespace, c.rest.Host)})

	v, err := c.kube.Discovery().ServerVersion()
	if err != nil {
		return []check{{what: "API server", about: fmt.Sprintf("%s is not reachable: %v", c.rest.Host, err),
			fix: "check the network path to the API server and your credentials (kubectl get --raw /version)"}}
	}
	report(check{ok: true, what: "API server", about: fmt.Sprintf("%s answers, Kubernetes %s", c.rest.Host, v.GitVersion)})

	report(o.checkCRD(ctx, c))
	report(o.checkMetacontrollerCRDs(ctx, c))
	report(o.checkMetacontrollerPods(ctx, c))
	cc, svc := o.checkCompositeController(ctx, c)
	report(cc)
	if svc != nil {
		report(o.checkEndpoints(ctx, c, svc))
	}
	report(o.checkReadyz(ctx, c))
	report(o.checkKeySecret(ctx, c))
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

var crdsGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (o *DoctorOptions) getCRD(ctx context.Context, c *clients, name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	u, err := c.dyn.Resource(crdsGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
		return nil, err
	}
	return &crd, nil
}

func (o *DoctorOptions) checkCRD(ctx context.Context, c *clients) check {
	name := v1beta1.Resource + "." + v1beta1.Group
	ch := check{what: "SummonPlatform CRD"}
	live, err := o.getCRD(ctx, c, name)
	if err != nil {
		ch.about = fmt.Sprintf("%s: %v", name, err)
		ch.fix = "install Summon: kubectl apply -k manifests/ (docs/install.md)"
		return ch
	}
	var served []string
	for _, v := range live.Spec.Versions {
		if v.Served {
			served = append(served, v.Name)
		}
	}
	ours, err := crdschema.Decode(manifests.CRD)
	if err != nil {
		ch.about = err.Error()
		return ch
	}
	if !slices.Contains(served, v1beta1.Version) {
		ch.about = fmt.Sprintf("%s serves %v, not %s", name, served, v1beta1.Version)
		ch.fix = "apply this summonctl's CRD: kubectl apply -f manifests/crd.yaml"
		return ch
	}
	same := len(live.Spec.Versions) == len(ours.Spec.Versions)
	for i := 0; same && i < len(ours.Spec.Versions); i++ {
		same = reflect.DeepEqual(live.Spec.Versions[i].Schema, ours.Spec.Versions[i].Schema)
	}
	if !same {
		ch.about = fmt.Sprintf("%s serves %s, but its schema differs from this summonctl's", name, strings.Join(served, ", "))
		ch.fix = "apply the CRD of the Summon release that the hook runs (kubectl apply -f manifests/crd.yaml), or use the summonctl of that release"
		return ch
	}
	ch.ok = true
	ch.about = fmt.Sprintf("%s serves %s, the schema of this summonctl", name, strings.Join(served, ", "))
	return ch
}

func (o *DoctorOptions) checkMetacontrollerCRDs(ctx context.Context, c *clients) check {
	ch := check{what: "Metacontroller CRDs"}
	var missing []string
	for _, name := range []string{"compositecontrollers.metacontroller.k8s.io", "decoratorcontrollers.metacontroller.k8s.io", "controllerrevisions.metacontroller.k8s.io"} {
		if _, err := o.getCRD(ctx, c, name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		ch.about = "missing " + strings.Join(missing, ", ")
		ch.fix = "install Metacontroller v4.17 or later first (docs/install.md, step 1)"
		return ch
	}
	ch.ok, ch.about = true, "compositecontrollers, decoratorcontrollers and controllerrevisions are installed"
	return ch
}

func (o *DoctorOptions) checkMetacontrollerPods(ctx context.Context, c *clients) check {
	ch := check{what: "Metacontroller pods"}
	pods, err := c.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: o.MetacontrollerSelector})
	if err != nil {
		ch.about = fmt.Sprintf("listing pods %s: %v", o.MetacontrollerSelector, err)
		ch.fix = "you need to list pods in every namespace, or pass --metacontroller-selector"
		return ch
	}
	var ready []string
	for _, p := range pods.Items {
		if podReady(&p) {
			ready = append(ready, p.Namespace+"/"+p.Name)
		}
	}
	if len(ready) == 0 {
		ch.about = fmt.Sprintf("no ready pod matches %s (%d pod(s) found)", o.MetacontrollerSelector, len(pods.Items))
		ch.fix = "start Metacontroller (kubectl -n metacontroller get statefulset,pods; kubectl -n metacontroller logs statefulset/metacontroller)"
		return ch
	}
	ch.ok, ch.about = true, strings.Join(ready, ", ")+" ready"
	return ch
}

// hookService is where a CompositeController's sync hook points.
type hookService struct{ namespace, name string }

func (o *DoctorOptions) checkCompositeController(ctx context.Context, c *clients) (check, *hookService) {
	ch := check{what: "CompositeController " + controllerName}
	cc, err := c.dyn.Resource(compositeControllersGVR).Get(ctx, controllerName, metav1.GetOptions{})
	if err != nil {
		ch.about = err.Error()
		ch.fix = "install Summon: kubectl apply -k manifests/"
		return ch, nil
	}
	parent, _, _ := unstructured.NestedString(cc.Object, "spec", "parentResource", "resource")
	if parent != v1beta1.Resource {
		ch.about = fmt.Sprintf("its parentResource is %q, not %s", parent, v1beta1.Resource)
		ch.fix = "re-apply manifests/compositecontroller.yaml"
		return ch, nil
	}
	svcName, _, _ := unstructured.NestedString(cc.Object, "spec", "hooks", "sync", "webhook", "service", "name")
	svcNS, _, _ := unstructured.NestedString(cc.Object, "spec", "hooks", "sync", "webhook", "service", "namespace")
	if svcName == "" {
		u, _, _ := unstructured.NestedString(cc.Object, "spec", "hooks", "sync", "webhook", "url")
		ch.ok, ch.about = true, fmt.Sprintf("its sync hook is the URL %s (no Service to check)", u)
		return ch, nil
	}
	ch.ok, ch.about = true, fmt.Sprintf("its sync hook is Service %s/%s", svcNS, svcName)
	return ch, &hookService{namespace: svcNS, name: svcName}
}

func (o *DoctorOptions) checkEndpoints(ctx context.Context, c *clients, s *hookService) check {
	ch := check{what: "hook endpoints"}
	slices, err := c.kube.DiscoveryV1().EndpointSlices(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + s.name})
	if err != nil {
		ch.about = fmt.Sprintf("listing the EndpointSlices of %s/%s: %v", s.namespace, s.name, err)
		return ch
	}
	ready := 0
	for _, sl := range slices.Items {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready++
			}
		}
	}
	if ready == 0 {
		ch.about = fmt.Sprintf("Service %s/%s has no ready endpoint", s.namespace, s.name)
		ch.fix = fmt.Sprintf("check the hook's pods: kubectl -n %s get pods,endpointslices; kubectl -n %s logs deploy/summon", s.namespace, s.namespace)
		return ch
	}
	ch.ok, ch.about = true, fmt.Sprintf("Service %s/%s has %d ready endpoint(s)", s.namespace, s.name, ready)
	return ch
}

func (o *DoctorOptions) checkReadyz(ctx context.Context, c *clients) check {
	ch := check{what: "hook /readyz"}
	b, err := o.Hook.get(ctx, c.kube, "/readyz")
	if err != nil {
		ch.about = err.Error()
		ch.fix = "a hook that answers 503 is starting or shutting down; otherwise read its logs: kubectl -n " + o.Hook.namespace + " logs deploy/summon"
		return ch
	}
	ch.ok, ch.about = true, fmt.Sprintf("%s answers %q", o.Hook.where(), strings.TrimSpace(string(b)))
	return ch
}

func (o *DoctorOptions) checkKeySecret(ctx context.Context, c *clients) check {
	ch := check{what: "credential key"}
	s, err := c.kube.CoreV1().Secrets(o.Hook.namespace).Get(ctx, o.KeySecret, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		ch.about = fmt.Sprintf("Secret %s/%s is missing; the hook's pods don't start without it", o.Hook.namespace, o.KeySecret)
		ch.fix = fmt.Sprintf("create it once and keep a copy: kubectl -n %s create secret generic %s --from-literal=key=\"$(openssl rand -base64 48)\"", o.Hook.namespace, o.KeySecret)
		return ch
	case err != nil:
		ch.about = fmt.Sprintf("reading Secret %s/%s: %v", o.Hook.namespace, o.KeySecret, err)
		ch.fix = "ask for the right to get that Secret, or check it with a role that has it"
		return ch
	}
	if n := len(strings.TrimRight(string(s.Data["key"]), "\r\n")); n < 32 {
		ch.about = fmt.Sprintf("Secret %s/%s has a key of %d bytes under \"key\"; the hook needs at least 32", o.Hook.namespace, o.KeySecret, n)
		ch.fix = "the key must never change once instances exist; if none does yet, recreate the Secret with a longer key"
		return ch
	}
	ch.ok, ch.about = true, fmt.Sprintf("Secret %s/%s holds a key (its value is not shown)", o.Hook.namespace, o.KeySecret)
	return ch
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
