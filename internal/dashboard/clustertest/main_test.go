// Package clustertest runs the dashboard the way it runs for real: against a real kube-apiserver
// (envtest) holding SummonPlatforms whose statuses Summon's core wrote, with the read-only
// permissions of manifests/dashboard/, and looked at by a real headless Chromium.
package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/forklift-dev/summon/internal/dashboard"
	"github.com/forklift-dev/summon/internal/testing/fleettest"
	"github.com/forklift-dev/summon/internal/testing/testenv/controlplane"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// repo is the repository's root, seen from this package's directory (where go test runs).
const repo = "../../.."

func TestMain(m *testing.M) {
	os.Exit(controlplane.Main(m, filepath.Join(repo, "manifests", "crd.yaml")))
}

// The dashboard's ServiceAccount, as manifests/dashboard/ names it; the tests run the dashboard
// as this user, so the ClusterRole there is what it gets to see.
const (
	dashboardNamespace = "summon-system"
	dashboardAccount   = "summon-dashboard"
)

var (
	platforms   = schema.GroupVersionResource{Group: v1beta1.Group, Version: v1beta1.Version, Resource: v1beta1.Resource}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	statefulSet = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	jobs        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
)

// cluster is the control plane as a test sees it, with an admin's clients.
type cluster struct {
	env *envtest.Environment
	dyn dynamic.Interface
	cs  kubernetes.Interface
}

func kube(t *testing.T) cluster {
	t.Helper()
	env := controlplane.Get(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = rest.NoWarnings{}
	return cluster{env: env, dyn: dynamic.NewForConfigOrDie(cfg), cs: kubernetes.NewForConfigOrDie(cfg)}
}

// user is a client certificate for a user of the control plane, with no permission but what
// RBAC grants it.
func (k cluster) user(t *testing.T, name string, groups ...string) *envtest.AuthenticatedUser {
	t.Helper()
	u, err := k.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", name, err)
	}
	return u
}

// kubectl runs the kubectl of KUBEBUILDER_ASSETS as an admin and returns its stdout and stderr.
// Its caches go to a temporary directory, not ~/.kube.
func (k cluster) kubectl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	admin, err := k.user(t, "summon-clustertest-admin", "system:masters").Kubectl()
	if err != nil {
		t.Fatalf("a kubectl for an admin: %v", err)
	}
	ctl := *admin
	ctl.Opts = append(slices.Clone(admin.Opts), "--cache-dir="+t.TempDir())
	out, errOut, err := ctl.Run(args...)
	o, _ := io.ReadAll(out)
	e, _ := io.ReadAll(errOut)
	return string(o), string(e), err
}

func (k cluster) namespace(t *testing.T, name string) {
	t.Helper()
	_, err := k.cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

var installOnce struct {
	sync.Mutex
	done bool
}

// installDashboard applies manifests/dashboard/ for real (after the hook's namespace from
// manifests/namespace.yaml, as the install does). Nothing runs its pod: no controller or kubelet
// runs here. What the tests need of it is the ServiceAccount's RBAC.
func (k cluster) installDashboard(t *testing.T) {
	t.Helper()
	installOnce.Lock()
	defer installOnce.Unlock()
	if installOnce.done {
		return
	}
	for _, args := range [][]string{
		{"apply", "-f", filepath.Join(repo, "manifests", "namespace.yaml")},
		{"apply", "-k", filepath.Join(repo, "manifests", "dashboard")},
	} {
		if _, stderr, err := k.kubectl(t, args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	installOnce.done = true
}

// publish writes what the simulated cluster holds into the real one, as Metacontroller and the
// workload and Job controllers would have: the SummonPlatform's spec, its workloads and Jobs
// with their statuses, and last the status the hook answered, through the status subresource.
// Jobs the hook has dropped are deleted.
func (k cluster) publish(t *testing.T, in *fleettest.Instance) {
	t.Helper()
	ctx := t.Context()
	ns, name := in.Parent.Namespace, in.Parent.Name
	k.namespace(t, ns)

	keep := map[string]bool{}
	for _, obj := range in.Workloads() {
		gvr := map[any]schema.GroupVersionResource{"Deployment": deployments, "StatefulSet": statefulSet, "Job": jobs}[obj["kind"]]
		u := asCreated(obj)
		keep[u.GetName()] = true
		k.put(t, gvr, u, obj["status"])
	}
	list, err := k.dyn.Resource(jobs).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: children.LabelInstance + "=" + name})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list.Items {
		if !keep[j.GetName()] {
			if err := k.dyn.Resource(jobs).Namespace(ns).Delete(ctx, j.GetName(), metav1.DeleteOptions{}); err != nil {
				t.Fatalf("deleting Job %s: %v", j.GetName(), err)
			}
		}
	}

	spec, err := specJSON(in.Parent.Spec)
	if err != nil {
		t.Fatal(err)
	}
	parent := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
	stored := k.put(t, platforms, parent, nil)
	status := in.Status()
	// Metacontroller writes the generation it synced.
	status["observedGeneration"] = stored.GetGeneration()
	stored.Object["status"] = status
	if _, err := k.dyn.Resource(platforms).Namespace(ns).UpdateStatus(ctx, stored, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("writing the status of %s/%s: %v", ns, name, err)
	}
}

// put creates or updates one object (its spec; a Job's is immutable and stays), then writes
// status, if any, through the status subresource. It returns the object as stored.
func (k cluster) put(t *testing.T, gvr schema.GroupVersionResource, u *unstructured.Unstructured, status any) *unstructured.Unstructured {
	t.Helper()
	ctx := t.Context()
	client := k.dyn.Resource(gvr).Namespace(u.GetNamespace())
	stored, err := client.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
	if apierrors.IsAlreadyExists(err) {
		stored, err = client.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err == nil && gvr != jobs {
			stored.Object["spec"] = u.Object["spec"]
			stored.SetLabels(u.GetLabels())
			stored.SetAnnotations(u.GetAnnotations())
			stored, err = client.Update(ctx, stored, metav1.UpdateOptions{FieldValidation: "Strict"})
		}
	}
	if err != nil {
		t.Fatalf("writing %s %s/%s: %v", gvr.Resource, u.GetNamespace(), u.GetName(), err)
	}
	if status != nil {
		stored.Object["status"] = status
		if stored, err = client.UpdateStatus(ctx, stored, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("writing the status of %s %s/%s: %v", gvr.Resource, u.GetNamespace(), u.GetName(), err)
		}
	}
	return stored
}

// asCreated is a child as a client creates it: without what the API server owns, and without
// the owner the simulated cluster made up (no garbage collector runs here).
func asCreated(obj metacontroller.Object) *unstructured.Unstructured {
	u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
	unstructured.RemoveNestedField(u.Object, "status")
	for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "ownerReferences"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	ann := u.GetAnnotations()
	delete(ann, children.LastAppliedAnnotation)
	u.SetAnnotations(ann)
	return u
}

// specJSON is a spec as the API server takes it: JSON numbers as integers where they are.
func specJSON(spec v1beta1.Spec) (map[string]any, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := utiljson.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// event records a Kubernetes event about an object of a namespace, as a controller would.
func (k cluster) event(t *testing.T, namespace string, about corev1.ObjectReference, typ, reason, message string) {
	t.Helper()
	at := metav1.NewTime(time.Now().Truncate(time.Second))
	about.Namespace = namespace
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: about.Name + ".", Namespace: namespace},
		InvolvedObject: about,
		Type:           typ, Reason: reason, Message: message, Count: 1,
		FirstTimestamp: at, LastTimestamp: at,
		Source: corev1.EventSource{Component: "clustertest"},
	}
	if _, err := k.cs.CoreV1().Events(namespace).Create(t.Context(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatalf("recording event %s on %s: %v", reason, about.Name, err)
	}
}

// running is a dashboard served for a test.
type running struct {
	url string
	// calls counts the requests the dashboard sent the API server, but for watches.
	calls *atomic.Int64
	stop  func() error
}

// startDashboard serves the dashboard on 127.0.0.1 with the credentials of cfg (the test's
// user), with --open given: it returns the address the dashboard asked the browser to open, once
// the fleet is loaded. stop ends it gracefully and returns what Serve returned.
func startDashboard(t *testing.T, cfg *rest.Config, namespace string) running {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	calls := &atomic.Int64{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Query().Get("watch") != "true" {
				calls.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opened := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var served error
	go func() {
		defer close(done)
		served = dashboard.Serve(ctx, cfg, dashboard.Options{
			Open:      true,
			OpenURL:   func(url string) error { opened <- url; return nil },
			Namespace: namespace,
			Log:       slog.New(slog.NewJSONHandler(logs, nil)),
		}, ln)
	}()
	stop := func() error {
		cancel()
		select {
		case <-done:
			return served
		case <-time.After(30 * time.Second):
			return errors.New("the dashboard did not stop within 30s of its context's end")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping the dashboard: %v", err)
		}
		if t.Failed() {
			t.Logf("the dashboard's log:\n%s", logs.String())
		}
	})
	select {
	case url := <-opened:
		return running{url: url, calls: calls, stop: stop}
	case <-done:
		t.Fatalf("the dashboard stopped before it loaded the fleet: %v", served)
	case <-time.After(60 * time.Second):
		t.Fatal("the dashboard did not load the fleet (and open the browser) within 60s")
	}
	return running{}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// syncBuffer is a log that the dashboard writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dashboardUser is the dashboard's ServiceAccount as the API server authenticates it, with the
// RBAC of manifests/dashboard/ installed.
func (k cluster) dashboardUser(t *testing.T) *rest.Config {
	t.Helper()
	k.installDashboard(t)
	u := k.user(t, fmt.Sprintf("system:serviceaccount:%s:%s", dashboardNamespace, dashboardAccount),
		"system:serviceaccounts", "system:serviceaccounts:"+dashboardNamespace, "system:authenticated")
	cfg := rest.CopyConfig(u.Config())
	cfg.WarningHandlerWithContext = rest.NoWarnings{}
	return cfg
}
