// Package rollout proves the migration gate and the beat singleton end to end, with faults, on a
// cluster where the real controllers act (internal/testcluster: kube-controller-manager,
// kube-scheduler, kwok): Summon's real hook server answers, and Metacontroller's loop is played
// by internal/standin, or by a real Metacontroller when METACONTROLLER_BIN names one. Each proof
// records every watch event of its namespace and checks its invariants on every one of them. It
// holds only tests; hack/test.sh runs them.
package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/standin"
	"github.com/forklift-dev/summon/internal/testcluster"
	"github.com/forklift-dev/summon/internal/testenv"
	"github.com/forklift-dev/summon/internal/testfiles"
)

const loopback = "127.0.0.1"

// shared is the one cluster of this test binary; TestMain starts and stops it.
var shared struct {
	cluster  *testcluster.Cluster
	startErr error
	opts     testcluster.Options
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	o, err := testcluster.OptionsFromEnv()
	if err != nil {
		// Each test skips or fails through testenv.TestCluster, which says what is missing.
		return m.Run()
	}
	shared.opts = o
	c, err := testcluster.Start(context.Background(), o)
	if err != nil {
		shared.startErr = err
		return m.Run()
	}
	shared.cluster = c
	fmt.Fprintf(os.Stderr, "rollout: real-controller cluster started in %s (logs in %s)\n", c.StartTime.Round(100*time.Millisecond), c.LogDir())
	if err := installCRDs(c); err != nil {
		shared.startErr = err
	}
	code := m.Run()
	if builtHookDir != "" {
		os.RemoveAll(builtHookDir)
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// installCRDs creates the SummonPlatform CRD and, for a real Metacontroller, Metacontroller's
// own (kept as data in shared/ beside the repository, never copied into it).
func installCRDs(c *testcluster.Cluster) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	files := []string{filepath.Join(root, "manifests", "crd.yaml")}
	if os.Getenv("METACONTROLLER_BIN") != "" {
		files = append(files, filepath.Join(filepath.Dir(root), "shared", "metacontroller", "metacontroller-crds-v1.yaml"))
	}
	cs, err := apiextensionsclient.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, f := range files {
		objs, err := testfiles.ReadObjects(f)
		if err != nil {
			return err
		}
		for _, o := range objs {
			var crd apiextensionsv1.CustomResourceDefinition
			b, _ := yaml.Marshal(o.Object)
			if err := yaml.Unmarshal(b, &crd); err != nil {
				return err
			}
			if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
				if err == nil && established(got) {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("CRD %s is not Established", crd.Name)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// cluster returns the shared cluster, or skips (fails under SUMMON_REQUIRE_INTEGRATION=1).
func cluster(t *testing.T) *testcluster.Cluster {
	t.Helper()
	testenv.TestCluster(t)
	if shared.startErr != nil {
		t.Fatal(shared.startErr)
	}
	if shared.cluster == nil {
		t.Fatal("the test cluster's binaries are set, but were not when TestMain ran")
	}
	if err := shared.cluster.Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("test cluster logs:\n%s", shared.cluster.Tails(30))
		}
	})
	return shared.cluster
}

// hookBinary is Summon's hook server as a binary (SUMMON_HOOK_BIN, which hack/test.sh points at
// what hack/build.sh built, or built here once), so that a proof can kill it.
var hookBinary = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("SUMMON_HOOK_BIN"); bin != "" {
		return bin, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "summon-rollout-")
	if err != nil {
		return "", err
	}
	builtHookDir = dir
	bin := filepath.Join(dir, "summon")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/summon")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the hook server: %v\n%s", err, out)
	}
	return bin, nil
})

// builtHookDir holds the hook binary built by hookBinary; TestMain removes it.
var builtHookDir string

// hookServer is a running hook server process.
type hookServer struct {
	t      *testing.T
	bin    string
	addr   string
	args   []string
	env    []string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startHook runs the hook server on a free loopback port; env carries what must not be in argv
// (the providers' URLs hold passwords).
func startHook(t *testing.T, env ...string) *hookServer {
	t.Helper()
	bin, err := hookBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "credential-key")
	if err := os.WriteFile(key, []byte("summon-rollout-test-credential-key-of-at-least-32-bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "hook-token")
	if err := os.WriteFile(token, []byte(hookToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &hookServer{
		t: t, bin: bin, addr: net.JoinHostPort(loopback, freePort(t)), env: env, log: filepath.Join(dir, "summon.log"),
	}
	h.args = []string{
		"--listen=" + h.addr,
		"--credential-key-file=" + key,
		"--auth-token-file=" + token,
		"--default-image=registry.example.com/summon-platform",
		"--shutdown-timeout=5s",
	}
	h.start()
	t.Cleanup(func() {
		h.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("hook server log (%s), last lines:\n%s", h.log, testfiles.Tail(h.log, 30))
		}
	})
	return h
}

func (h *hookServer) url() string { return "http://" + h.addr }

// start starts the process and waits until it answers /readyz.
func (h *hookServer) start() {
	h.t.Helper()
	f, err := os.OpenFile(h.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(h.bin, h.args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, h.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		h.t.Fatalf("starting the hook server: %v", err)
	}
	h.cmd, h.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(h.exited)
	}()
	waitFor(h.t, 30*time.Second, "the hook server to answer /readyz", func(ctx context.Context) (bool, string) {
		conn, err := net.DialTimeout("tcp", h.addr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})
}

// stop ends the process by its PID with sig (SIGKILL: no graceful shutdown at all).
func (h *hookServer) stop(sig syscall.Signal) {
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(sig)
	select {
	case <-h.exited:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
	h.cmd = nil
}

// compositeController is manifests/compositecontroller.yaml with each hook pointed at url.
func compositeController(t *testing.T, url string) *unstructured.Unstructured {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testfiles.ReadObjects(filepath.Join(root, "manifests", "compositecontroller.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cc := objs[0]
	hooks, _, _ := unstructured.NestedMap(cc.Object, "spec", "hooks")
	for name := range hooks {
		webhook, _, _ := unstructured.NestedMap(hooks, name, "webhook")
		path, _ := webhook["path"].(string)
		delete(webhook, "service")
		delete(webhook, "path")
		webhook["url"] = url + path
		_ = unstructured.SetNestedMap(hooks, webhook, name, "webhook")
	}
	_ = unstructured.SetNestedMap(cc.Object, hooks, "spec", "hooks")
	return cc
}

// hookToken is the bearer token of every hook server these proofs run, kept in the Secret that
// manifests/compositecontroller.yaml names, as the install's README step creates it.
const hookToken = "summon-rollout-test-hook-token-of-at-least-32-characters"

// ensureHookToken creates that Secret once per cluster.
func ensureHookToken(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "summon-system"}}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "summon-hook-token", Namespace: "summon-system"},
		StringData: map[string]string{"token": hookToken},
	}
	if _, err := cs.CoreV1().Secrets("summon-system").Create(t.Context(), secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// startController runs Metacontroller's loop for Summon's CompositeController against the hook:
// the stand-in in this process, or the real Metacontroller when METACONTROLLER_BIN is set.
func startController(t *testing.T, c *testcluster.Cluster, hookURL string, strategy standin.ApplyStrategy) {
	t.Helper()
	cc := compositeController(t, hookURL)
	ensureHookToken(t, clientsOf(c).kube)
	logPath := filepath.Join(t.TempDir(), "controller.log")
	if bin := os.Getenv("METACONTROLLER_BIN"); bin != "" {
		t.Logf("controller: Metacontroller %s, apply strategy %s", bin, strategy)
		startMetacontroller(t, c, bin, cc, strategy, logPath)
		return
	}
	t.Logf("controller: the stand-in (internal/standin), apply strategy %s", strategy)
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := standin.New(standin.Options{
		Config: c.Config(), CompositeController: cc, Strategy: strategy,
		Log: slog.New(slog.NewJSONHandler(f, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stand-in: %v", err)
		}
		f.Close()
		if t.Failed() {
			t.Logf("stand-in log (%s), last lines:\n%s", logPath, testfiles.Tail(logPath, 40))
		}
	})
}

// startMetacontroller creates the CompositeController in the cluster and runs Metacontroller with
// test/integration's flags, nothing listening.
func startMetacontroller(t *testing.T, c *testcluster.Cluster, bin string, cc *unstructured.Unstructured, strategy standin.ApplyStrategy, logPath string) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(c.Config())
	gvr := ccGVR()
	if _, err := dyn.Resource(gvr).Create(t.Context(), cc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the CompositeController: %v", err)
	}
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--kubeconfig=" + c.Kubeconfig(),
		"--discovery-interval=1s",
		"--cache-flush-interval=30m",
		"--client-go-qps=100",
		"--client-go-burst=200",
		"--metrics-address=0",
		"--health-probe-bind-address=0",
		"--pprof-address=0",
	}
	if strategy == standin.ServerSideApply {
		args = append(args, "--apply-strategy=server-side-apply")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Metacontroller: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := dyn.Resource(gvr).Delete(context.Background(), cc.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the CompositeController: %v", err)
		}
		if t.Failed() {
			t.Logf("Metacontroller log (%s), last lines:\n%s", logPath, testfiles.Tail(logPath, 40))
		}
	})
}

// clients are one test's views of the cluster.
type clients struct {
	kube kubernetes.Interface
	dyn  dynamic.Interface
}

func clientsOf(c *testcluster.Cluster) clients {
	return clients{kube: kubernetes.NewForConfigOrDie(c.Config()), dyn: dynamic.NewForConfigOrDie(c.Config())}
}

var namespaces sync.Map

// newNamespace creates a namespace of its own for a test (the namespace controller runs here, so
// it is deleted again).
func newNamespace(t *testing.T, cs kubernetes.Interface, base string) string {
	t.Helper()
	n := 0
	for {
		n++
		name := fmt.Sprintf("%s-%d", base, n)
		if _, loaded := namespaces.LoadOrStore(name, true); !loaded {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
			if _, err := cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
				t.Fatalf("creating namespace %s: %v", name, err)
			}
			return name
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// waitFor polls check until it says done, failing after timeout with the last state it reported.
// It asserts nothing about how long that takes: the timeout is only where the test gives up.
func waitFor(t *testing.T, timeout time.Duration, what string, check func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for {
		done, state := check(ctx)
		if done {
			return
		}
		if shared.cluster != nil {
			if err := shared.cluster.Err(); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up after %s waiting for %s; last seen: %s", timeout, what, state)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
