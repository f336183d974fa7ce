// Package manifests_test checks the install manifests against the code they configure: the
// CompositeController declares exactly the child groups the core expects (with and without the
// cnpg component), each hook is a v2 webhook to the hook's Service, and the hook's Deployment
// passes flags the binary accepts.
package manifests_test

import (
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/server"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/platform"
)

// compositeController is the part of Metacontroller's CompositeController (v1alpha1) that Summon
// sets. Decoding is strict, so a misspelt field fails here rather than being ignored by the API
// server.
type compositeController struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ParentResource      resourceRule    `json:"parentResource"`
		GenerateSelector    *bool           `json:"generateSelector"`
		ResyncPeriodSeconds *int32          `json:"resyncPeriodSeconds"`
		ChildResources      []childResource `json:"childResources"`
		Hooks               map[string]hook `json:"hooks"`
	} `json:"spec"`
}

type childResource struct {
	resourceRule   `json:",inline"`
	UpdateStrategy *struct {
		Method string `json:"method"`
	} `json:"updateStrategy"`
}

type resourceRule struct {
	APIVersion string `json:"apiVersion"`
	Resource   string `json:"resource"`
}

type hook struct {
	Version string `json:"version"`
	Webhook struct {
		Timeout string `json:"timeout"`
		Path    string `json:"path"`
		Service struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			Port      int32  `json:"port"`
		} `json:"service"`
		Etag *struct {
			Enabled             bool   `json:"enabled"`
			CacheTimeoutSeconds *int32 `json:"cacheTimeoutSeconds"`
			CacheCleanupSeconds *int32 `json:"cacheCleanupSeconds"`
		} `json:"etag"`
		Authorization *struct {
			Type      string `json:"type"`
			SecretRef struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
				Key       string `json:"key"`
			} `json:"secretRef"`
		} `json:"authorization"`
	} `json:"webhook"`
}

// kinds maps the resources Summon may declare to their kinds, which Metacontroller's group keys
// ("Kind.apiVersion") use.
var kinds = map[string]string{
	"deployments":              "Deployment",
	"statefulsets":             "StatefulSet",
	"services":                 "Service",
	"secrets":                  "Secret",
	"ingresses":                "Ingress",
	"poddisruptionbudgets":     "PodDisruptionBudget",
	"horizontalpodautoscalers": "HorizontalPodAutoscaler",
	"jobs":                     "Job",
	"configmaps":               "ConfigMap",
	"networkpolicies":          "NetworkPolicy",
	"clusters":                 "Cluster",
	"backups":                  "Backup",
}

func read(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
}

func controller(t *testing.T) compositeController {
	t.Helper()
	var cc compositeController
	read(t, "compositecontroller.yaml", &cc)
	return cc
}

func TestTheControllerWatchesSummonPlatformsWithAGeneratedSelector(t *testing.T) {
	cc := controller(t)
	if cc.APIVersion != "metacontroller.k8s.io/v1alpha1" || cc.Kind != "CompositeController" || cc.Metadata.Name != "summon" {
		t.Errorf("got %s %s %q, want metacontroller.k8s.io/v1alpha1 CompositeController \"summon\"", cc.APIVersion, cc.Kind, cc.Metadata.Name)
	}
	want := resourceRule{APIVersion: v1beta1.APIVersion, Resource: v1beta1.Resource}
	if diff := cmp.Diff(want, cc.Spec.ParentResource); diff != "" {
		t.Errorf("parentResource (-want +got):\n%s", diff)
	}
	if g := cc.Spec.GenerateSelector; g == nil || !*g {
		t.Error("generateSelector must be true: a SummonPlatform has no spec.selector")
	}
	if r := cc.Spec.ResyncPeriodSeconds; r == nil || *r < 1 {
		t.Error("resyncPeriodSeconds must be set")
	}
}

func TestChildResourcesAreExactlyTheDeclaredGroups(t *testing.T) {
	var got []string
	for _, c := range controller(t).Spec.ChildResources {
		kind, ok := kinds[c.Resource]
		if !ok {
			t.Fatalf("childResources has %s/%s, which this test can't name; add its kind to kinds", c.APIVersion, c.Resource)
		}
		got = append(got, kind+"."+c.APIVersion)
	}
	slices.Sort(got)
	// Without the cnpg component: the hook without --cnpg-namespace.
	want := slices.Sorted(slices.Values(platform.DeclaredGroups(platform.DataServices{})))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("childResources don't match platform.DeclaredGroups (-want +got):\n%s", diff)
	}
}

// component is a kustomize Component whose patches are JSON patches on one target each.
type component struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Patches    []struct {
		Target struct {
			Group string `json:"group"`
			Kind  string `json:"kind"`
			Name  string `json:"name"`
		} `json:"target"`
		Patch string `json:"patch"`
	} `json:"patches"`
}

type jsonPatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// The cnpg component adds exactly CNPG's Cluster to the child resources, and tells the hook so
// with a flag the binary accepts: with it, the hook expects the groups the CompositeController
// then declares. test/integration builds it with kubectl's kustomize and applies it.
func TestTheCNPGComponentDeclaresTheClusterAndTellsTheHook(t *testing.T) {
	var k component
	read(t, "cnpg/kustomization.yaml", &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1alpha1" || k.Kind != "Component" {
		t.Fatalf("cnpg/kustomization.yaml is a %s %s, want a kustomize.config.k8s.io/v1alpha1 Component", k.APIVersion, k.Kind)
	}
	cc := controller(t)
	var d appsv1.Deployment
	read(t, "deployment.yaml", &d)
	args := d.Spec.Template.Spec.Containers[0].Args
	declared := slices.Clone(cc.Spec.ChildResources)
	for _, p := range k.Patches {
		var ops []jsonPatchOp
		if err := yaml.UnmarshalStrict([]byte(p.Patch), &ops); err != nil {
			t.Fatalf("the patch of %s %s is not a JSON patch: %v", p.Target.Kind, p.Target.Name, err)
		}
		for _, op := range ops {
			switch {
			case p.Target.Kind == "CompositeController" && p.Target.Name == cc.Metadata.Name && op.Op == "add" && op.Path == "/spec/childResources/-":
				var child childResource
				if err := yaml.UnmarshalStrict(op.Value, &child); err != nil {
					t.Fatal(err)
				}
				declared = append(declared, child)
			case p.Target.Kind == "Deployment" && p.Target.Name == d.Name && op.Op == "add" && op.Path == "/spec/template/spec/containers/0/args/-":
				var arg string
				if err := json.Unmarshal(op.Value, &arg); err != nil {
					t.Fatal(err)
				}
				args = append(args, arg)
			default:
				t.Errorf("unexpected patch of %s %s: %s %s", p.Target.Kind, p.Target.Name, op.Op, op.Path)
			}
		}
	}
	cfg, err := server.ParseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("with the component the hook's args are not flags summon accepts: %v", err)
	}
	data := cfg.DataServices()
	if data.CNPG == nil {
		t.Fatal("with the component the hook doesn't know CloudNativePG is there")
	}
	// The component declares CNPG's Backup whether or not the hook is told a snapshot class; the
	// hook asks for the group only with --cnpg-snapshot-class, so that a new hook beside an older
	// component (one without Backup) keeps syncing every instance.
	data.CNPG.SnapshotClass = "csi-snapshots"
	var got []string
	for _, c := range declared {
		want := "InPlace"
		if c.Resource == "jobs" || c.Resource == "backups" {
			// A Job's and a CNPG Backup's spec never change: each is taken once, under a name
			// of its own.
			want = "OnDelete"
		}
		if c.UpdateStrategy == nil || c.UpdateStrategy.Method != want {
			t.Errorf("%s/%s: want updateStrategy %s", c.APIVersion, c.Resource, want)
		}
		got = append(got, kinds[c.Resource]+"."+c.APIVersion)
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(platform.DeclaredGroups(data))), slices.Sorted(slices.Values(got))); diff != "" {
		t.Errorf("with the component, childResources don't match platform.DeclaredGroups (-want +got):\n%s", diff)
	}
}

func TestUpdateStrategiesAreInPlaceButJobsAreOnDelete(t *testing.T) {
	for _, c := range controller(t).Spec.ChildResources {
		t.Run(c.Resource, func(t *testing.T) {
			want := "InPlace"
			if c.Resource == "jobs" {
				// A Job's template is immutable; migration Jobs are named per version instead.
				want = "OnDelete"
			}
			if c.UpdateStrategy == nil {
				t.Fatalf("no updateStrategy, want %s (Metacontroller's default, OnDelete, never updates)", want)
			}
			if m := c.UpdateStrategy.Method; m != want {
				t.Errorf("updateStrategy.method = %q, want %q", m, want)
			}
			if strings.HasPrefix(c.UpdateStrategy.Method, "Rolling") {
				t.Errorf("%s calls the sync hook with hypothetical states", c.UpdateStrategy.Method)
			}
		})
	}
}

func TestEveryHookIsAV2WebhookToTheHookService(t *testing.T) {
	var svc corev1.Service
	read(t, "service.yaml", &svc)
	hooks := controller(t).Spec.Hooks
	if diff := cmp.Diff([]string{"customize", "finalize", "sync"}, slices.Sorted(maps.Keys(hooks))); diff != "" {
		t.Errorf("hooks (-want +got):\n%s", diff)
	}
	for name, h := range hooks {
		t.Run(name, func(t *testing.T) {
			if h.Version != "v2" {
				t.Errorf("version = %q, want v2 (each hook sets its own; the default is v1)", h.Version)
			}
			if h.Webhook.Path != "/"+name {
				t.Errorf("path = %q, want /%s", h.Webhook.Path, name)
			}
			if d, err := time.ParseDuration(h.Webhook.Timeout); err != nil || d != 10*time.Second {
				t.Errorf("timeout = %q, want 10s", h.Webhook.Timeout)
			}
			s := h.Webhook.Service
			if s.Name != svc.Name || s.Namespace != svc.Namespace {
				t.Errorf("service = %s/%s, want the hook's Service %s/%s", s.Namespace, s.Name, svc.Namespace, svc.Name)
			}
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == s.Port }) {
				t.Errorf("port %d is not a port of Service %s", s.Port, svc.Name)
			}
		})
	}
}

func TestTheHookDeploymentRunsRestrictedWithItsKey(t *testing.T) {
	var d appsv1.Deployment
	read(t, "deployment.yaml", &d)
	var sa corev1.ServiceAccount
	read(t, "serviceaccount.yaml", &sa)
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	cfg, err := server.ParseConfig(c.Args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("the container's args are not flags summon accepts: %v", err)
	}
	if cfg.Listen != "0.0.0.0:8080" || cfg.OpsListen != "0.0.0.0:8081" {
		t.Errorf("--listen = %q and --ops-listen = %q, want 0.0.0.0:8080 and 0.0.0.0:8081", cfg.Listen, cfg.OpsListen)
	}
	if !cfg.Authenticated() || cfg.InsecureNoAuth {
		t.Error("the installed hook must require authentication")
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" && p.ContainerPort == 8080 }) ||
		!slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "ops" && p.ContainerPort == 8081 }) {
		t.Error("the container must expose 8080 as port http and 8081 as port ops")
	}
	if secret, key := mountedSecret(t, pod, c, cfg.AuthTokenFile); secret != "summon-hook-token" || key != "token" {
		t.Errorf("--auth-token-file must come from key token of the Secret summon-hook-token, not %s/%s", secret, key)
	}
	if grace := pod.TerminationGracePeriodSeconds; grace == nil || time.Duration(*grace)*time.Second <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds must be longer than --shutdown-timeout (%s)", cfg.ShutdownTimeout)
	}
	if secret, key := mountedSecret(t, pod, c, cfg.CredentialKeyFile); secret != "summon-credential-key" || key != "key" {
		t.Errorf("--credential-key-file must come from key key of the Secret summon-credential-key, not %s/%s", secret, key)
	}

	type check struct {
		what string
		ok   bool
	}
	for _, ch := range []check{
		{"2 replicas", d.Spec.Replicas != nil && *d.Spec.Replicas == 2},
		{"namespace summon-system", d.Namespace == "summon-system"},
		{"readiness probe on /readyz of port ops", c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil &&
			c.ReadinessProbe.HTTPGet.Path == "/readyz" && c.ReadinessProbe.HTTPGet.Port.String() == "ops"},
		{"liveness probe on /healthz of port ops", c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil &&
			c.LivenessProbe.HTTPGet.Path == "/healthz" && c.LivenessProbe.HTTPGet.Port.String() == "ops"},
		{"resource requests and a memory limit", c.Resources.Requests != nil && !c.Resources.Limits.Memory().IsZero()},
		{"runAsNonRoot", pod.SecurityContext != nil && isTrue(pod.SecurityContext.RunAsNonRoot)},
		{"seccomp RuntimeDefault", pod.SecurityContext != nil && pod.SecurityContext.SeccompProfile != nil &&
			pod.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"no privilege escalation", c.SecurityContext != nil && c.SecurityContext.AllowPrivilegeEscalation != nil && !*c.SecurityContext.AllowPrivilegeEscalation},
		{"read-only root filesystem", c.SecurityContext != nil && isTrue(c.SecurityContext.ReadOnlyRootFilesystem)},
		{"all capabilities dropped", c.SecurityContext != nil && c.SecurityContext.Capabilities != nil &&
			slices.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"})},
		{"spread across nodes", slices.ContainsFunc(pod.TopologySpreadConstraints, func(s corev1.TopologySpreadConstraint) bool {
			return s.TopologyKey == "kubernetes.io/hostname"
		})},
		{"its own ServiceAccount", pod.ServiceAccountName == sa.Name && sa.Namespace == d.Namespace},
		{"no API token in the pod", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken &&
			sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken},
	} {
		if !ch.ok {
			t.Errorf("the hook Deployment must have %s", ch.what)
		}
	}
}

// mountedSecret says which Secret and key a file of the container comes from.
func mountedSecret(t *testing.T, pod corev1.PodSpec, c corev1.Container, file string) (secret, key string) {
	t.Helper()
	dir, base := filepath.Dir(file), filepath.Base(file)
	m := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	if m < 0 {
		t.Fatalf("nothing is mounted at %s, where %s is", dir, file)
	}
	if c.VolumeMounts[m].SubPath != "" {
		t.Errorf("%s is mounted with subPath: a rotated Secret would never reach the pod", dir)
	}
	v := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[m].Name })
	if v < 0 || pod.Volumes[v].Secret == nil {
		t.Fatalf("%s is not a Secret volume", dir)
	}
	s := pod.Volumes[v].Secret
	if s.Optional != nil && *s.Optional {
		t.Errorf("the Secret %s must not be optional", s.SecretName)
	}
	for _, item := range s.Items {
		if item.Path == base {
			return s.SecretName, item.Key
		}
	}
	return s.SecretName, base
}

// TestOnlyTheSyncHookUsesETags: the sync answer is a function of its request, and the hook names
// it; finalize's depends on the systems outside, and customize's is cached by Metacontroller per
// generation anyway. Metacontroller v4.17 reads the cleanup interval whenever the timeout is set,
// so both are.
func TestOnlyTheSyncHookUsesETags(t *testing.T) {
	for name, h := range controller(t).Spec.Hooks {
		e := h.Webhook.Etag
		switch {
		case name == "sync" && (e == nil || !e.Enabled || e.CacheTimeoutSeconds == nil || e.CacheCleanupSeconds == nil):
			t.Errorf("the sync hook must enable ETags with both cacheTimeoutSeconds and cacheCleanupSeconds, not %+v", e)
		case name != "sync" && e != nil && e.Enabled:
			t.Errorf("hook %s enables ETags; only sync names its answers", name)
		}
	}
}

func TestEveryHookSendsTheTokenTheHookRequires(t *testing.T) {
	var d appsv1.Deployment
	read(t, "deployment.yaml", &d)
	c := d.Spec.Template.Spec.Containers[0]
	cfg, err := server.ParseConfig(c.Args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	secret, key := mountedSecret(t, d.Spec.Template.Spec, c, cfg.AuthTokenFile)
	for name, h := range controller(t).Spec.Hooks {
		a := h.Webhook.Authorization
		if a == nil {
			t.Errorf("hook %s sends no authorization: the hook answers it 401", name)
			continue
		}
		if a.Type != "Bearer" || a.SecretRef.Name != secret || a.SecretRef.Key != key || a.SecretRef.Namespace != d.Namespace {
			t.Errorf("hook %s sends %s %s/%s key %s, want Bearer %s/%s key %s (what the hook reads)",
				name, a.Type, a.SecretRef.Namespace, a.SecretRef.Name, a.SecretRef.Key, d.Namespace, secret, key)
		}
	}
}

func TestTheNetworkPolicyAdmitsOnlyMetacontrollerToTheHooks(t *testing.T) {
	var d appsv1.Deployment
	read(t, "deployment.yaml", &d)
	var np networkingv1.NetworkPolicy
	read(t, "networkpolicy.yaml", &np)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) || np.Namespace != d.Namespace {
		t.Fatalf("the NetworkPolicy does not select the hook's pods (%v)", err)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes = %v, want only Ingress (the hook calls out to AWS, RabbitMQ, PostgreSQL)", np.Spec.PolicyTypes)
	}
	container := map[string]bool{}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		container[p.Name] = true
	}
	metacontroller := labels.Set{"app.kubernetes.io/name": "metacontroller"}
	metacontrollerNS := labels.Set{"kubernetes.io/metadata.name": "metacontroller"}
	open := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil || !container[p.Port.String()] {
				t.Errorf("a rule names port %v, which the hook's container does not have", p.Port)
				continue
			}
			if p.Port.String() == "http" {
				if len(rule.From) == 0 {
					t.Error("the hooks' port is open to every pod")
				}
				for _, peer := range rule.From {
					pods, _ := metav1.LabelSelectorAsSelector(peer.PodSelector)
					nss, _ := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
					if peer.PodSelector == nil || peer.NamespaceSelector == nil || peer.IPBlock != nil ||
						!pods.Matches(metacontroller) || !nss.Matches(metacontrollerNS) || pods.Matches(labels.Set{"app": "other"}) {
						t.Errorf("the hooks' port admits %+v, not only Metacontroller's pods in its namespace", peer)
					}
				}
			}
			open[p.Port.String()] = true
		}
	}
	if !open["http"] || !open["ops"] {
		t.Errorf("the NetworkPolicy must admit Metacontroller to http and everyone to ops; it opens %v", open)
	}
}

func TestServiceAndBudgetSelectTheHookPods(t *testing.T) {
	var d appsv1.Deployment
	read(t, "deployment.yaml", &d)
	var svc corev1.Service
	read(t, "service.yaml", &svc)
	var pdb policyv1.PodDisruptionBudget
	read(t, "pdb.yaml", &pdb)
	pods := labels.Set(d.Spec.Template.Labels)

	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) {
		t.Error("the Service does not select the hook's pods")
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !sel.Matches(pods) {
		t.Errorf("the PodDisruptionBudget does not select the hook's pods (%v)", err)
	}
	if m := pdb.Spec.MinAvailable; m == nil || m.IntValue() != 1 {
		t.Errorf("minAvailable = %v, want 1", m)
	}
	for _, ns := range []string{svc.Namespace, pdb.Namespace} {
		if ns != d.Namespace {
			t.Errorf("namespace %q, want the Deployment's %q", ns, d.Namespace)
		}
	}
}

func TestKustomizationInstallsEveryManifest(t *testing.T) {
	var k struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Resources  []string         `json:"resources"`
		Images     []kustomizeImage `json:"images"`
	}
	read(t, "kustomization.yaml", &k)
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if diff := cmp.Diff(files, slices.Sorted(slices.Values(k.Resources))); diff != "" {
		t.Errorf("kustomization resources vs the manifests in this folder (-files +resources):\n%s", diff)
	}
	for _, want := range []string{"crd.yaml", "compositecontroller.yaml", "deployment.yaml"} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("kustomization must install %s", want)
		}
	}
	var d appsv1.Deployment
	read(t, "deployment.yaml", &d)
	image := d.Spec.Template.Spec.Containers[0].Image
	if !slices.ContainsFunc(k.Images, func(i kustomizeImage) bool { return i.Name == image && i.NewTag != "" }) {
		t.Errorf("kustomization images must set the registry and tag of the Deployment's image %q", image)
	}
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
}

func isTrue(b *bool) bool { return b != nil && *b }
