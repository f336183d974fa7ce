// Package rollout proves the migration gate and the beat singleton end to end, with faults, on a
// cluster where the real controllers act (internal/testing/testcluster: kube-controller-manager,
// kube-scheduler, kwok): Summon's real hook server answers, and Metacontroller's loop is played
// by internal/testing/standin, or by a real Metacontroller when METACONTROLLER_BIN names one. Each proof
// records every watch event of its namespace and checks its invariants on every one of them. It
// holds only tests; hack/test.sh runs them.
package rollout

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/forklift-dev/summon/internal/testing/mctest"
	"github.com/forklift-dev/summon/internal/testing/standin"
	"github.com/forklift-dev/summon/internal/testing/testcluster"
	"github.com/forklift-dev/summon/internal/testing/testenv"
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
	if err := mctest.InstallCRDs(context.Background(), c.Config(), os.Getenv(mctest.EnvMetacontroller) != ""); err != nil {
		shared.startErr = err
	}
	code := m.Run()
	mctest.Cleanup()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
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

// startHook runs Summon's hook server (mctest.StartHook) with the flags of an install; env
// carries what must not be in argv (the providers' URLs hold passwords).
func startHook(t *testing.T, env ...string) *mctest.HookServer {
	t.Helper()
	return mctest.StartHook(t, nil, env...)
}

// startController runs Metacontroller's loop for Summon's CompositeController against the hook:
// the stand-in in this process, or the real Metacontroller when METACONTROLLER_BIN is set.
func startController(t *testing.T, c *testcluster.Cluster, hookURL string, strategy standin.ApplyStrategy) {
	t.Helper()
	startControllerOf(t, c, mctest.CompositeController(t, hookURL), strategy)
}

// startControllerOf is startController for a CompositeController a test changed.
func startControllerOf(t *testing.T, c *testcluster.Cluster, cc *unstructured.Unstructured, strategy standin.ApplyStrategy) {
	t.Helper()
	mctest.StartController(t, c.Config(), c.Kubeconfig(), cc, strategy)
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

// waitFor polls check until it says done, failing after timeout with the last state it reported.
// It asserts nothing about how long that takes: the timeout is only where the test gives up.
func waitFor(t *testing.T, timeout time.Duration, what string, check func(ctx context.Context) (bool, string)) {
	t.Helper()
	var broken func() error
	if shared.cluster != nil {
		broken = shared.cluster.Err
	}
	testenv.Eventually(t, timeout, 250*time.Millisecond, what, check, broken)
}
