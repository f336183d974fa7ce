// Package mctest holds what the tests that run Summon's real hook server beside a Metacontroller
// (test/rollout's proofs, test/fleet's fleet) share: the repository's CRDs and CompositeController
// pointed at a hook on 127.0.0.1, the hook token Secret the CompositeController names, the hook
// server as a process that a test can kill and restart, and the real Metacontroller as a process.
// Everything it starts it stops by its PID when the test ends.
package mctest

import (
	"bytes"
	"context"
	"errors"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/forklift-dev/summon/internal/testing/crds"
	"github.com/forklift-dev/summon/internal/testing/standin"
	"github.com/forklift-dev/summon/internal/testing/testfiles"
)

const loopback = "127.0.0.1"

// EnvMetacontroller names a Metacontroller binary built outside the project.
const EnvMetacontroller = "METACONTROLLER_BIN"

// CompositeControllerGVR is Metacontroller's CompositeController resource.
var CompositeControllerGVR = schema.GroupVersionResource{Group: "metacontroller.k8s.io", Version: "v1alpha1", Resource: "compositecontrollers"}

// RepoRoot is the root of this module; `go test` runs in the package's directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/forklift-dev/summon\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("can't find the repository root above the working directory")
		}
		dir = parent
	}
}

// InstallCRDs creates the SummonPlatform CRD and, with metacontroller, Metacontroller's own
// (kept as data in shared/ beside the repository, never copied into it), and waits until the API
// server serves each (crds.Install).
func InstallCRDs(ctx context.Context, cfg *rest.Config, metacontroller bool) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	files := []string{filepath.Join(root, "manifests", "crd.yaml")}
	if metacontroller {
		files = append(files, filepath.Join(filepath.Dir(root), "shared", "metacontroller", "metacontroller-crds-v1.yaml"))
	}
	var all []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		objs, err := testfiles.ReadObjects(f)
		if err != nil {
			return err
		}
		for _, o := range objs {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &crd); err != nil {
				return fmt.Errorf("reading %s: %w", f, err)
			}
			all = append(all, &crd)
		}
	}
	return crds.Install(ctx, cfg, all)
}

// CompositeController is manifests/compositecontroller.yaml with each hook pointed at url.
func CompositeController(t testing.TB, url string) *unstructured.Unstructured {
	t.Helper()
	root, err := RepoRoot()
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

// HookToken is the bearer token of every hook server these tests run, kept in the Secret that
// manifests/compositecontroller.yaml names, as the install's step 2 (docs/install.md) creates it.
const HookToken = "summon-rollout-test-hook-token-of-at-least-32-characters"

// EnsureHookToken creates that Secret (and its namespace) unless it exists.
func EnsureHookToken(t testing.TB, cs kubernetes.Interface) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "summon-system"}}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "summon-hook-token", Namespace: "summon-system"},
		StringData: map[string]string{"token": HookToken},
	}
	if _, err := cs.CoreV1().Secrets("summon-system").Create(t.Context(), secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// hookBinary is Summon's hook server as a binary (SUMMON_HOOK_BIN, which hack/test.sh points at
// what hack/build.sh built, or built here once per test binary), so that a test can kill it.
var hookBinary = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("SUMMON_HOOK_BIN"); bin != "" {
		return bin, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "summon-mctest-")
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

// builtHookDir holds the hook binary built by hookBinary; Cleanup removes it.
var builtHookDir string

// Cleanup removes what this package built for the test binary; TestMain calls it after m.Run.
func Cleanup() {
	if builtHookDir != "" {
		os.RemoveAll(builtHookDir)
	}
}

// HookServer is a running hook server process.
type HookServer struct {
	t      testing.TB
	bin    string
	addr   string
	args   []string
	env    []string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
	// Alive, when set, is asked while the test waits for the server, so that a wait ends at once
	// when the cluster under it failed.
	Alive func() error
}

// StartHook runs the hook server on a free loopback port with the flags of an install and extra;
// env carries what must not be in argv (the providers' URLs hold passwords).
func StartHook(t testing.TB, extra []string, env ...string) *HookServer {
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
	if err := os.WriteFile(token, []byte(HookToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &HookServer{
		t: t, bin: bin, addr: net.JoinHostPort(loopback, FreePort(t)), env: env, log: filepath.Join(dir, "summon.log"),
	}
	h.args = append([]string{
		"--listen=" + h.addr,
		"--credential-key-file=" + key,
		"--auth-token-file=" + token,
		"--default-image=registry.example.com/summon-platform",
		"--shutdown-timeout=5s",
	}, extra...)
	h.Start()
	t.Cleanup(func() {
		h.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("hook server log (%s), last lines:\n%s", h.log, testfiles.Tail(h.log, 30))
		}
	})
	return h
}

// Addr is the host:port the server listens on.
func (h *HookServer) Addr() string { return h.addr }

// URL is where the hooks are served.
func (h *HookServer) URL() string { return "http://" + h.addr }

// Replace stops the hook server and starts bin in its place, on the same address with the same
// flags: a new release of the hook rolled out under Metacontroller.
func (h *HookServer) Replace(bin string) {
	h.t.Helper()
	h.Stop(syscall.SIGTERM)
	h.bin = bin
	h.Start()
}

// PID is the running process's, or 0.
func (h *HookServer) PID() int {
	if h.cmd == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Start starts the process and waits until it accepts connections.
func (h *HookServer) Start() {
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", h.addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if h.Alive != nil {
			if aerr := h.Alive(); aerr != nil {
				h.t.Fatalf("waiting for the hook server: %v", aerr)
			}
		}
		select {
		case <-h.exited:
			h.t.Fatalf("the hook server exited at start (log %s):\n%s", h.log, testfiles.Tail(h.log, 20))
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("gave up after 30s waiting for the hook server to listen: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the process by its PID with sig (SIGKILL: no graceful shutdown at all).
func (h *HookServer) Stop(sig syscall.Signal) {
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

// Metacontroller is a running Metacontroller process.
type Metacontroller struct {
	cmd *exec.Cmd
	// Log is the process's output.
	Log string
}

// PID is the process's.
func (m *Metacontroller) PID() int { return m.cmd.Process.Pid }

// DefaultArgs are the flags of a local run against a test cluster: fast discovery (the CRDs
// were just created), the client rate limit lifted well above its default of 5 per second, and
// nothing listening.
var DefaultArgs = []string{
	"--discovery-interval=1s",
	"--cache-flush-interval=30m",
	"--client-go-qps=100",
	"--client-go-burst=200",
	"--metrics-address=0",
	"--health-probe-bind-address=0",
	"--pprof-address=0",
}

// StartMetacontroller creates the CompositeController cc through dyn and runs Metacontroller
// (bin) against kubeconfig with DefaultArgs and then args (Metacontroller's flags are Go's flag
// package: a later flag wins). When the test ends it stops Metacontroller by its PID and deletes
// the CompositeController.
func StartMetacontroller(t testing.TB, dyn dynamic.Interface, bin, kubeconfig string, cc *unstructured.Unstructured, logPath string, args ...string) *Metacontroller {
	t.Helper()
	if _, err := dyn.Resource(CompositeControllerGVR).Create(t.Context(), cc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the CompositeController: %v", err)
	}
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	all := append(append([]string{"--kubeconfig=" + kubeconfig}, DefaultArgs...), args...)
	cmd := exec.Command(bin, all...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C in the terminal reaches the test, which stops it by PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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
		if err := dyn.Resource(CompositeControllerGVR).Delete(context.Background(), cc.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the CompositeController: %v", err)
		}
		if t.Failed() {
			t.Logf("Metacontroller log (%s), last lines:\n%s", logPath, testfiles.Tail(logPath, 40))
		}
	})
	return &Metacontroller{cmd: cmd, Log: logPath}
}

// FreePort finds a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// StartController runs Metacontroller's loop for the CompositeController cc until the test ends:
// the stand-in in this process (internal/testing/standin), or the real Metacontroller when
// METACONTROLLER_BIN is set. It makes sure the hook token Secret cc names exists.
func StartController(t testing.TB, cfg *rest.Config, kubeconfig string, cc *unstructured.Unstructured, strategy standin.ApplyStrategy) {
	t.Helper()
	EnsureHookToken(t, kubernetes.NewForConfigOrDie(cfg))
	logPath := filepath.Join(t.TempDir(), "controller.log")
	if bin := os.Getenv(EnvMetacontroller); bin != "" {
		t.Logf("controller: Metacontroller %s, apply strategy %s", bin, strategy)
		var args []string
		if strategy == standin.ServerSideApply {
			args = append(args, "--apply-strategy=server-side-apply")
		}
		StartMetacontroller(t, dynamic.NewForConfigOrDie(cfg), bin, kubeconfig, cc, logPath, args...)
		return
	}
	t.Logf("controller: the stand-in (internal/testing/standin), apply strategy %s", strategy)
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := standin.New(standin.Options{
		Config: cfg, CompositeController: cc, Strategy: strategy,
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
