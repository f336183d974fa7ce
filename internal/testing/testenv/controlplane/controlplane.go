// Package controlplane runs the one real kube-apiserver and etcd of a test binary (from
// KUBEBUILDER_ASSETS, as envtest starts them), listening on 127.0.0.1 only, and stops them when
// the tests are done, even when the run is interrupted. The API server's traffic to the cluster
// (its service proxy) goes through a test egress proxy that reaches a hook on 127.0.0.1 (see
// ServiceProxyIP). Without KUBEBUILDER_ASSETS it starts
// nothing, and each test that asks for the control plane skips, or fails under
// SUMMON_REQUIRE_INTEGRATION=1 (testenv.KubeAssets).
package controlplane

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/forklift-dev/summon/internal/testing/testcluster"
	"github.com/forklift-dev/summon/internal/testing/testenv"
)

// loopback is the only address the control plane listens on.
const loopback = "127.0.0.1"

var plane struct {
	env      *envtest.Environment
	egress   *egressProxy
	startErr error
}

// Main runs a test binary's tests (call it from TestMain) around one control plane and returns
// the exit code. The CRDs of the files in crds are installed before any test runs.
func Main(m *testing.M, crds ...string) int {
	// controller-runtime complains on stderr, with a stack, when something logs before a logger
	// is set; envtest's own logs are not worth reading here.
	ctrllog.SetLogger(logr.Discard())

	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return m.Run()
	}
	egress, egressConfig, err := startEgressProxy()
	if err != nil {
		plane.startErr = err
		return m.Run()
	}
	plane.egress = egress
	defer func() {
		if err := egress.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the egress proxy: %v\n", err)
		}
	}()
	env, err := start(crds, egressConfig)
	if err != nil {
		plane.startErr = err
		return m.Run()
	}
	plane.env = env

	// An interrupted run (Ctrl-C, a cancelled CI job) still stops kube-apiserver and etcd.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	var stopOnce sync.Once
	stop := func() error {
		var err error
		stopOnce.Do(func() { err = testcluster.StopEnvironment(env) })
		return err
	}
	go func() {
		if _, ok := <-interrupted; ok {
			_ = stop()
			os.Exit(1)
		}
	}()

	code := m.Run()
	signal.Stop(interrupted)
	close(interrupted)
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping kube-apiserver and etcd: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Get returns the running control plane, or skips (fails under SUMMON_REQUIRE_INTEGRATION=1)
// when KUBEBUILDER_ASSETS is not set.
func Get(t testing.TB) *envtest.Environment {
	t.Helper()
	testenv.KubeAssets(t)
	if plane.startErr != nil {
		t.Fatal(plane.startErr)
	}
	if plane.env == nil {
		t.Fatal("KUBEBUILDER_ASSETS is set, but it was not when TestMain ran (or TestMain doesn't call controlplane.Main)")
	}
	return plane.env
}

// start starts etcd and kube-apiserver, each listening on 127.0.0.1 only (envtest's defaults
// resolve "localhost", and etcd's peer URL would be on it too), the API server's cluster egress
// through the proxy of egressConfig.
func start(crds []string, egressConfig string) (*envtest.Environment, error) {
	plane, err := testcluster.LoopbackControlPlane(map[string]string{"egress-selector-config-file": egressConfig})
	if err != nil {
		return nil, err
	}

	env := &envtest.Environment{
		BinaryAssetsDirectory: os.Getenv("KUBEBUILDER_ASSETS"),
		ControlPlane:          plane,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true},
	}
	// A half-started plane (etcd up, the API server not) is stopped by StartEnvironment.
	if err := testcluster.StartEnvironment(env); err != nil {
		return nil, err
	}
	return env, nil
}

// Kubeconfig writes a kubeconfig of a new admin user of env (system:masters) into a temporary
// directory of the test, for what takes a kubeconfig file: summonctl, kubectl.
func Kubeconfig(t testing.TB, env *envtest.Environment, user string) string {
	t.Helper()
	u, err := env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("adding an admin user: %v", err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatalf("writing the admin user's kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
