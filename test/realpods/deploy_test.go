package realpods

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/forklift-dev/summon/internal/testing/mctest"
	"github.com/forklift-dev/summon/internal/testing/realnode"
	"github.com/forklift-dev/summon/internal/testing/standin"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

var platforms = schema.GroupVersionResource{Group: v1beta1.Group, Version: v1beta1.Version, Resource: v1beta1.Resource}

// appOptions say how a proof deploys the example app.
type appOptions struct {
	// postgresPort is the port of the app's own PostgreSQL on the node's address.
	postgresPort string
	// replicas per component (spec.replicas); a component left out runs no pod.
	replicas map[string]int64
	// hookArgs are more flags of the hook server.
	hookArgs []string
	// spec are more fields of the SummonPlatform's spec.
	spec map[string]any
}

// appInstance is the example app deployed by Summon on the real node.
type appInstance struct {
	t                *testing.T
	n                *realnode.Node
	cs               kubernetes.Interface
	api              dynamic.ResourceInterface
	ns, name, host   string
	adminDSN, appDSN string
}

// deployApp starts what a customer's instance needs (a PostgreSQL that only the node's pods and
// this test reach, with the app's role and database; Summon's real hook server; Metacontroller's
// loop, the stand-in or the real one) and applies a SummonPlatform of the example app at v1,
// whose DATABASE_URL comes from an input Secret. It returns at once; waitPhase waits.
func deployApp(t *testing.T, n *realnode.Node, o appOptions) *appInstance {
	t.Helper()
	testenv.AppImages(t)
	ctx := t.Context()
	a := &appInstance{t: t, n: n, cs: kubernetes.NewForConfigOrDie(n.Config()), ns: "shop-" + o.postgresPort, name: "shop", host: "shop.example.com"}
	a.api = dynamic.NewForConfigOrDie(n.Config()).Resource(platforms).Namespace(a.ns)

	a.adminDSN = n.StartPostgres(t, o.postgresPort)
	a.appDSN = createAppDatabase(t, a.adminDSN)

	// Metacontroller's own CRDs too when it is the real one that runs.
	if err := mctest.InstallCRDs(ctx, n.Config(), os.Getenv(mctest.EnvMetacontroller) != ""); err != nil {
		t.Fatal(err)
	}
	hook := mctest.StartHook(t, o.hookArgs)
	mctest.StartController(t, n.Config(), n.Kubeconfig(), mctest.CompositeController(t, hook.URL()), standin.DynamicApply)

	if _, err := a.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.cs.CoreV1().Secrets(a.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: a.name + "-inputs", Namespace: a.ns,
			Labels:      map[string]string{v1beta1.LabelInput: "true"},
			Annotations: map[string]string{v1beta1.AnnotationInputFor: a.name}},
		StringData: map[string]string{"DATABASE_URL": a.appDSN},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	small := map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "64Mi"}, "limits": map[string]any{"memory": "512Mi"}}
	replicas := map[string]any{}
	resources := map[string]any{}
	for _, c := range []string{"web", "static", "daphne", "channelWorker", "celeryd", "celeryBeat"} {
		replicas[c] = o.replicas[c]
		resources[c] = small
	}
	spec := map[string]any{
		"image": "localhost/summon-example", "version": "v1", "hostname": a.host,
		"config":         map[string]any{"ALLOWED_HOSTS": a.host, "DEBUG": false},
		"secrets":        []any{a.name + "-inputs"},
		"replicas":       replicas,
		"resources":      resources,
		"gunicorn":       map[string]any{"workers": int64(2)},
		"migrations":     map[string]any{"backoffLimit": int64(0)},
		"deletionPolicy": "Delete",
	}
	for k, v := range o.spec {
		spec[k] = v
	}
	if _, err := a.api.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": a.name, "namespace": a.ns},
		"spec":     spec,
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the SummonPlatform: %v", err)
	}
	return a
}

func (a *appInstance) status(ctx context.Context) (v1beta1.Status, error) {
	p, err := a.api.Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		return v1beta1.Status{}, err
	}
	var st v1beta1.Status
	raw, _, _ := unstructured.NestedMap(p.Object, "status")
	b, _ := json.Marshal(raw)
	return st, json.Unmarshal(b, &st)
}

// waitPhase waits until the instance's status is done, and returns it.
func (a *appInstance) waitPhase(what string, done func(v1beta1.Status) bool) v1beta1.Status {
	a.t.Helper()
	var last v1beta1.Status
	testenv.Eventually(a.t, 10*time.Minute, 500*time.Millisecond, what, func(ctx context.Context) (bool, string) {
		st, err := a.status(ctx)
		if err != nil {
			return false, err.Error()
		}
		last = st
		return done(st), fmt.Sprintf("phase %s: %s", st.Phase, st.Message)
	}, a.n.Err)
	return last
}

// setVersion changes spec.version, as a deploy does.
func (a *appInstance) setVersion(v string) {
	a.t.Helper()
	patch := fmt.Sprintf(`{"spec":{"version":%q}}`, v)
	if _, err := a.api.Patch(a.t.Context(), a.name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

func readyOn(v string) func(v1beta1.Status) bool {
	return func(st v1beta1.Status) bool { return st.Phase == v1beta1.PhaseReady && st.DeployedVersion == v }
}

// createAppDatabase makes the app's role and database on the server, and returns the app's URL.
func createAppDatabase(t *testing.T, adminDSN string) string {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		"CREATE ROLE shop LOGIN PASSWORD 'shop-app-password'",
		"CREATE DATABASE shop OWNER shop",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", strings.Join(strings.Fields(stmt)[:2], " "), err)
		}
	}
	u, err := url.Parse(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("shop", "shop-app-password")
	u.Path = "/shop"
	return u.String()
}
