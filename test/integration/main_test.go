package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/forklift-dev/summon/internal/testing/crds"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/internal/testing/testenv/controlplane"
	"github.com/forklift-dev/summon/internal/testing/testfiles"
)

// loopback is the only address anything started by these tests listens on.
const loopback = "127.0.0.1"

func TestMain(m *testing.M) {
	os.Exit(controlplane.Main(m))
}

// kube is the shared control plane as one test sees it.
type kube struct {
	env *envtest.Environment
}

// cluster returns the shared control plane, or skips (fails under SUMMON_REQUIRE_INTEGRATION=1)
// when KUBEBUILDER_ASSETS is not set.
func cluster(t *testing.T) kube {
	t.Helper()
	return kube{env: controlplane.Get(t)}
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// client is an admin client that refuses unknown and duplicate fields (a field the API server
// would silently drop is a bug in what we send) and records the server's warnings in w (nil:
// ignore them).
func (k kube) client(t *testing.T, w *warningLog) client.Client {
	t.Helper()
	c, err := newClient(k.env.Config, w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newClient(cfg *rest.Config, w *warningLog) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	if w != nil {
		cfg.WarningHandlerWithContext = w
	} else {
		cfg.WarningHandlerWithContext = rest.NoWarnings{}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme, FieldValidation: metav1.FieldValidationStrict})
	if err != nil {
		return nil, fmt.Errorf("building a client: %w", err)
	}
	return c, nil
}

// warningLog records the warnings the API server sends back (deprecations, PodSecurity, schema
// quirks).
type warningLog struct {
	mu    sync.Mutex
	texts []string
}

func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.texts = append(w.texts, text)
}

// take returns the warnings recorded since the last take.
func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	texts := w.texts
	w.texts = nil
	return texts
}

// kubeconfig writes a kubeconfig for a fresh admin user of the control plane and returns its
// path.
func (k kube) kubeconfig(t *testing.T) string {
	t.Helper()
	return controlplane.Kubeconfig(t, k.env, "summon-integration")
}

// kubectl runs the kubectl of KUBEBUILDER_ASSETS as an admin, with stdin as its input, and
// returns its stdout and stderr. Its caches go to a temporary directory, not ~/.kube.
func (k kube) kubectl(t *testing.T, kubeconfig string, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	path := k.env.ControlPlane.KubectlPath
	if path == "" {
		path = filepath.Join(testenv.KubeAssets(t), "kubectl")
	}
	args = append([]string{"--kubeconfig=" + kubeconfig, "--cache-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(t.Context(), path, args...)
	cmd.Dir = repoRoot(t)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// repoRoot is the root of this module (where go.mod is); `go test` runs in the package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/forklift-dev/summon\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("can't find the repository root (the go.mod of github.com/forklift-dev/summon) above the working directory")
		}
		dir = parent
	}
}

// repoFile is a path inside the repository.
func repoFile(t *testing.T, elems ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t)}, elems...)...)
}

// metacontrollerCRDs is Metacontroller's own CRDs, kept as data in shared/ beside the repository
// (in CI too), never copied into it.
func metacontrollerCRDs(t *testing.T) string {
	t.Helper()
	path := filepath.Join(filepath.Dir(repoRoot(t)), "shared", "metacontroller", "metacontroller-crds-v1.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Metacontroller's CRDs are expected beside the repository, as ../shared/metacontroller/metacontroller-crds-v1.yaml: %v", err)
	}
	return path
}

// readObjects reads every object of a YAML file of one or more documents.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testfiles.ReadObjects(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s holds no object", path)
	}
	return objs
}

// crdInstall is the outcome of creating the CRDs of one file.
type crdInstall struct {
	warnings []string
	err      error
}

var (
	crdMu       sync.Mutex
	crdInstalls = map[string]*crdInstall{}
)

// installCRDs creates the CRDs of a file, once per test binary (later calls return the first
// outcome), and waits until the API server serves them, discovery included
// (crds.Install). Only the first call sees the warnings the API server sent, so they are
// kept for the test that checks them.
func (k kube) installCRDs(t *testing.T, path string) crdInstall {
	t.Helper()
	crdMu.Lock()
	defer crdMu.Unlock()
	if done, ok := crdInstalls[path]; ok {
		return *done
	}
	w := &warningLog{}
	cfg := rest.CopyConfig(k.env.Config)
	cfg.WarningHandlerWithContext = w
	err := crds.Install(t.Context(), cfg, crdsOf(t, path))
	done := &crdInstall{warnings: w.take(), err: err}
	crdInstalls[path] = done
	return *done
}

// uninstallCRDs deletes the CRDs of a file, if they are there, and waits until the API server no
// longer serves them; a later installCRDs creates them again.
func (k kube) uninstallCRDs(t *testing.T, path string) {
	t.Helper()
	crdMu.Lock()
	defer crdMu.Unlock()
	if err := crds.Uninstall(t.Context(), k.env.Config, crdsOf(t, path)); err != nil {
		t.Fatal(err)
	}
	delete(crdInstalls, path)
}

// crdsOf reads the CRDs of a file.
func crdsOf(t *testing.T, path string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, obj := range readObjects(t, path) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &crd); err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		out = append(out, &crd)
	}
	return out
}

// requireCRDs installs the CRDs of a file and fails the test if that failed.
func (k kube) requireCRDs(t *testing.T, path string) {
	t.Helper()
	if got := k.installCRDs(t, path); got.err != nil {
		t.Fatalf("installing the CRDs of %s: %v", filepath.Base(path), got.err)
	}
}

// ensureNamespace creates a namespace unless it exists. envtest runs no namespace controller, so
// a namespace can never be deleted: tests use names of their own.
func ensureNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(t.Context(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// eventually polls check until it says done, failing the test after timeout with the last state
// check reported. It asserts nothing about how long that takes: the timeout is only where it
// gives up.
func eventually(t *testing.T, timeout time.Duration, what string, check func(ctx context.Context) (done bool, state string)) {
	t.Helper()
	testenv.Eventually(t, timeout, 200*time.Millisecond, what, check, nil)
}
