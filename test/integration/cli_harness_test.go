package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/testing/testenv/controlplane"

	"github.com/forklift-dev/summon/internal/cli"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	mcapi "github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// cliHookNamespace is where the CLI tests put the hook's Service, apart from summon-system, which
// the install tests use.
const cliHookNamespace = "summon-cli-system"

// summonctl runs the CLI in this process, as a user with the given kubeconfig would run it.
func summonctl(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	// A discovery cache of the test's own: the default, ~/.kube/cache, would stay on the host.
	all := append([]string{"summonctl", "--kubeconfig", kubeconfig, "--cache-dir", t.TempDir()}, args...)
	code = cli.Main(all, genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	t.Logf("summonctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

// hookFlags point the CLI at the hook exposed by exposeHook.
var hookFlags = []string{"--hook-namespace", cliHookNamespace, "--hook-service", "summon", "--hook-port", "ops"}

// exposeHook puts the hook server of this process behind a Service, so that the API server's
// service proxy reaches it as it reaches the hook's pods in a cluster: a Service with a port named
// ops, and an EndpointSlice whose endpoint, controlplane.ServiceProxyIP and the hook's port, names a Pod whose
// status.podIPs holds that address (the API server proxies only to the addresses of pods). The
// test egress proxy takes the connection to 127.0.0.1. Nothing runs that Pod: no kubelet is here;
// its status is written through the status subresource.
func exposeHook(t *testing.T, c client.Client, hookURL string) {
	t.Helper()
	exposeHookIn(t, c, cliHookNamespace, hookURL)
}

func exposeHookIn(t *testing.T, c client.Client, cliHookNamespace, hookURL string) {
	t.Helper()
	u, err := url.Parse(hookURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	ensureNamespace(t, c, cliHookNamespace)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "summon", Namespace: cliHookNamespace},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
			{Name: "ops", Port: 8081, Protocol: corev1.ProtocolTCP},
		}},
	}
	if err := c.Create(t.Context(), svc); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the hook's Service: %v", err)
	}
	pod := notRunningPod(cliHookNamespace, "summon-hook", "hook", map[string]string{"app.kubernetes.io/name": "summon"}, controlplane.ServiceProxyIP)
	createPodWithStatus(t, c, pod)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "summon-hook", Namespace: cliHookNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: "summon"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{controlplane.ServiceProxyIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: cliHookNamespace, Name: pod.Name},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("ops"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("http"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)},
		},
	}
	var existing discoveryv1.EndpointSlice
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(slice), &existing); err == nil {
		existing.Endpoints, existing.Ports = slice.Endpoints, slice.Ports
		if err := c.Update(t.Context(), &existing); err != nil {
			t.Fatalf("pointing the hook's EndpointSlice at port %d: %v", port, err)
		}
	} else if err := c.Create(t.Context(), slice); err != nil {
		t.Fatalf("creating the hook's EndpointSlice: %v", err)
	}
}

// notRunningPod is a Pod object that no kubelet runs (there is none here), Ready by its status.
func notRunningPod(namespace, name, container string, labels map[string]string, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: container, Image: "registry.example.com/none:1",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
		Status: corev1.PodStatus{
			Phase:  corev1.PodRunning,
			PodIP:  ip,
			PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
			},
		},
	}
}

// createPodWithStatus creates a Pod (unless it exists) and writes its status.
func createPodWithStatus(t *testing.T, c client.Client, pod *corev1.Pod) {
	t.Helper()
	status := pod.Status
	if err := c.Create(t.Context(), pod); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating Pod %s: %v", pod.Name, err)
	}
	var live corev1.Pod
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(pod), &live); err != nil {
		t.Fatal(err)
	}
	live.Status = status
	if err := c.Status().Update(t.Context(), &live); err != nil {
		t.Fatalf("writing the status of Pod %s: %v", pod.Name, err)
	}
}

// cliRuns counts the CLI tests' namespaces: without a garbage collector, what a test creates
// outlives it, so each run gets fresh ones.
var cliRuns atomic.Int32

// qaIn is examples/qa.yaml in a namespace of its own, with the input Secret its comment names,
// written to a file for the CLI. It returns the file and the object.
func qaIn(t *testing.T, c client.Client, prefix string) (string, *unstructured.Unstructured) {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, cliRuns.Add(1))
	ensureNamespace(t, c, ns)
	qa := readObjects(t, repoFile(t, "examples", "qa.yaml"))[0]
	qa.SetNamespace(ns)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "car1-qa-inputs", Namespace: ns,
			Labels: map[string]string{v1beta1.LabelInput: "true"}, Annotations: map[string]string{v1beta1.AnnotationInputFor: qa.GetName()}},
		StringData: map[string]string{"DATABASE_URL": "postgres://car1_qa:change-me@postgres.summon-qa:5432/car1_qa"},
	}
	if err := c.Create(t.Context(), s); err != nil {
		t.Fatalf("creating the input Secret: %v", err)
	}
	return writePlatformFile(t, qa), qa
}

func writePlatformFile(t *testing.T, p *unstructured.Unstructured) string {
	t.Helper()
	b, err := yaml.Marshal(p.Object)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), p.GetName()+".yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// standIn does, for one SummonPlatform, what Metacontroller does on a sync (DESIGN.md section 3),
// for the tests that run without a Metacontroller binary (CI has none): it asks the hook server
// for the related objects and the answer, creates the children it lacks (labelled with the
// parent's controller-uid, owned by it, with the last-applied annotation), updates the others
// as mcapi.Apply says Metacontroller's apply does (Jobs are OnDelete), deletes what the
// answer leaves out and writes the status with observedGeneration. It is a hand-written stand-in
// and says so: the tests that run the real Metacontroller check the same outcomes, and
// pkg/mcapi.Apply is checked against the real one there too.
type standIn struct {
	t       *testing.T
	c       client.Client
	hookURL string
	// token is the hook's bearer token, sent as Metacontroller sends it.
	token string
	// writes counts the children created, updated and deleted.
	writes int
}

func (s *standIn) post(path string, body, into any) {
	s.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		s.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.hookURL+path, bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	if err := mcapi.Decode(raw, into); err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
}

func groupGVK(group string) schema.GroupVersionKind {
	kind, apiVersion, _ := strings.Cut(group, ".")
	return schema.FromAPIVersionAndKind(apiVersion, kind)
}

// sync runs one sync of the parent and returns the status it wrote.
func (s *standIn) sync(key client.ObjectKey) v1beta1.Status {
	s.t.Helper()
	ctx := s.t.Context()
	parent := &unstructured.Unstructured{}
	parent.SetGroupVersionKind(schema.FromAPIVersionAndKind(v1beta1.APIVersion, v1beta1.Kind))
	if err := s.c.Get(ctx, key, parent); err != nil {
		s.t.Fatal(err)
	}
	var custom mcapi.CustomizeResponse
	s.post("/customize", map[string]any{"parent": parent.Object}, &custom)
	related := mcapi.RelativeObjects{platform.GroupSecret: {}}
	for _, rule := range custom.RelatedResources {
		for _, n := range rule.Names {
			var sec unstructured.Unstructured
			sec.SetGroupVersionKind(schema.FromAPIVersionAndKind("v1", "Secret"))
			if err := s.c.Get(ctx, client.ObjectKey{Namespace: rule.Namespace, Name: n}, &sec); err == nil {
				related[platform.GroupSecret][rule.Namespace+"/"+n] = sec.Object
			}
		}
	}
	observed := mcapi.RelativeObjects{}
	for _, g := range platform.DeclaredGroups(platform.DataServices{}) {
		observed[g] = mcapi.ObjectsByName{}
		list := &unstructured.UnstructuredList{}
		gvk := groupGVK(g)
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := s.c.List(ctx, list, client.InNamespace(key.Namespace), client.MatchingLabels{mcapi.ControllerUIDLabel: string(parent.GetUID())}); err != nil {
			s.t.Fatal(err)
		}
		for _, it := range list.Items {
			observed[g][it.GetNamespace()+"/"+it.GetName()] = it.Object
		}
	}
	var resp struct {
		Status   map[string]any   `json:"status"`
		Children []map[string]any `json:"children"`
	}
	s.post("/sync", map[string]any{"parent": parent.Object, "children": observed, "related": related}, &resp)

	answered := map[string]bool{}
	for _, d := range resp.Children {
		u := &unstructured.Unstructured{Object: d}
		if u.GetNamespace() == "" {
			u.SetNamespace(key.Namespace)
		}
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		if _, ok := labels[mcapi.ControllerUIDLabel]; !ok {
			labels[mcapi.ControllerUIDLabel] = string(parent.GetUID())
		}
		u.SetLabels(labels)
		g := mcapi.GroupKey(u.GetKind(), u.GetAPIVersion())
		k := u.GetNamespace() + "/" + u.GetName()
		answered[g+" "+k] = true
		live, ok := observed[g][k]
		if !ok {
			record, _ := json.Marshal(u.Object)
			ann := u.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann[mcapi.LastAppliedAnnotation] = string(record)
			u.SetAnnotations(ann)
			u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: v1beta1.APIVersion, Kind: v1beta1.Kind, Name: parent.GetName(),
				UID: parent.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}})
			if err := s.c.Create(ctx, u); err != nil {
				s.t.Fatalf("creating %s %s: %v", g, k, err)
			}
			s.writes++
			continue
		}
		if g == platform.GroupJob {
			continue
		}
		applied, err := mcapi.Apply(live, u.Object)
		if err != nil {
			s.t.Fatal(err)
		}
		if mcapi.Unchanged(live, applied) {
			continue
		}
		s.t.Logf("stand-in updates %s %s:\n%s", g, k, cmp.Diff(live, applied))
		if err := s.c.Update(ctx, &unstructured.Unstructured{Object: applied}); err != nil {
			s.t.Fatalf("updating %s %s: %v", g, k, err)
		}
		s.writes++
	}
	for g, byName := range observed {
		for k, obj := range byName {
			if !answered[g+" "+k] {
				if err := s.c.Delete(ctx, &unstructured.Unstructured{Object: obj}, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
					s.t.Fatalf("deleting %s %s: %v", g, k, err)
				}
				s.writes++
			}
		}
	}
	resp.Status["observedGeneration"] = parent.GetGeneration()
	parent.Object["status"] = resp.Status
	if err := s.c.Status().Update(ctx, parent); err != nil {
		s.t.Fatalf("writing the status: %v", err)
	}
	var st v1beta1.Status
	b, _ := json.Marshal(resp.Status)
	_ = json.Unmarshal(b, &st)
	return st
}

// converge syncs, plays the job and workload controllers (their status subresources, as the
// end-to-end test does), and syncs again, until the parent is Ready on its version and a sync
// changes no child: converged.
func (s *standIn) converge(key client.ObjectKey, version string) {
	s.t.Helper()
	e := &e2e{t: s.t, c: s.c, key: key, names: children.NamesFor(key.Name)}
	for range 12 {
		before := s.writes
		st := s.sync(key)
		if st.Phase == v1beta1.PhaseReady && st.DeployedVersion == version && s.writes == before {
			return
		}
		var jobs batchv1.JobList
		if err := s.c.List(s.t.Context(), &jobs, client.InNamespace(key.Namespace), client.MatchingLabels{children.LabelInstance: key.Name}); err != nil {
			s.t.Fatal(err)
		}
		for _, j := range jobs.Items {
			if j.Labels[children.LabelVersion] == version && len(j.Status.Conditions) == 0 {
				e.markJobSucceeded(j.Name)
			}
		}
		if err := e.markRolledOut(s.t.Context()); err != nil {
			s.t.Fatal(err)
		}
	}
	s.t.Fatalf("%s did not converge on %s", key, version)
}

// failJob does what the job controller does when a Job's pods keep failing.
func failJob(t *testing.T, c client.Client, namespace, name string) {
	t.Helper()
	var job batchv1.Job
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, &job); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	started := metav1.NewTime(now.Add(-time.Minute))
	job.Status.StartTime = &started
	job.Status.Failed = 3
	const reason, message = batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit"
	job.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now, Reason: reason, Message: message},
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now, Reason: reason, Message: message},
	}
	if err := c.Status().Update(t.Context(), &job); err != nil {
		t.Fatalf("failing Job %s: %v", name, err)
	}
}
