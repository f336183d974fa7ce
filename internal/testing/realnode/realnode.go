// Package realnode runs, for tests, a Kubernetes cluster with one real node: the test cluster's
// control plane (internal/testing/testcluster: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) plus kubelet, kube-proxy (iptables mode) and Debian's containerd and runc with
// the CNI bridge plugin, so that pods run real processes, Services route real connections and a
// rolling update drops real requests when a pod stops too early. kwok's pods (testcluster) serve
// nothing and could never show that.
//
// Everything, the test itself included, runs inside a network namespace and a mount namespace of
// its own, which a holder process keeps alive: TestMain (Main) creates them, then runs the test
// binary again inside them (nsenter), and, once that run is over, kills whatever is left in them
// by PID, removes the node's cgroups and its state directory. Inside, the control plane listens
// on 127.0.0.1, the node has the address NodeIP on a veth pair whose both ends stay in the
// namespace, pods get 198.18.0.0/24 and Services 198.19.0.0/16, and every other destination is
// unreachable: no packet leaves the namespace, and a test reaches pods, Services and the servers
// it starts on NodeIP directly. The mount namespace hides the paths the node's parts write to
// whatever they are told (/run, /var/lib, /var/log, /etc/resolv.conf, /etc/hosts) and the
// host-wide sysctls the kubelet insists on setting.
//
// Why a re-run of the test binary rather than only its servers inside: the test's own clients
// (client-go, the prober, the hook server that Metacontroller or its stand-in calls, PostgreSQL on
// the node address for the pods) then reach everything as local addresses, and nothing needs a
// port forward or a route out of the namespace.
//
// It needs root (namespaces, mounts, cgroups), cgroup v1 without systemd as on the CI machines
// (the kubelet runs with failCgroupV1: false and the cgroupfs driver), the kube binaries with
// kubelet and kube-proxy (hack/kube-binaries.sh, KUBEBUILDER_ASSETS) and containerd, runc, the
// CNI plugins, iptables and conntrack (hack/node-packages.sh). Without them the tests skip, and
// fail under SUMMON_REQUIRE_INTEGRATION=1.
package realnode

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// Addresses inside the node's network namespace. The benchmarking range (198.18.0.0/15) is outside
// every private range a host or a cluster may use.
const (
	NodeIP      = "198.18.255.1"
	NodeName    = "realnode"
	podCIDR     = "198.18.0.0/24"
	podGateway  = "198.18.0.1"
	serviceCIDR = "198.19.0.0/16"
)

// Environment variables between the three runs of a test binary: the one go test starts (outside),
// the holder of the namespaces, and the one inside them that runs the tests.
const (
	envRole = "SUMMON_REALNODE_ROLE" // "holder" or "node"
	envDir  = "SUMMON_REALNODE_DIR"  // the node's state directory
	envCwd  = "SUMMON_REALNODE_CWD"  // the working directory go test gave the outside run
	envCNI  = "SUMMON_CNI_BIN_DIR"   // where the CNI plugins are (default /usr/lib/cni)
)

// Options say what the node runs beyond its own pause image.
type Options struct {
	// Images are OCI image archives (as `ctr images import` reads them) imported into the node's
	// containerd before any test runs; pods use them with imagePullPolicy: Never.
	Images []string
	// CRDs are YAML files of CustomResourceDefinitions installed before any test runs.
	CRDs []string
}

var node struct {
	n        *Node
	startErr error
	skip     string
}

// Main runs a test binary's tests (call it from TestMain) on a real node and returns the exit
// code. Outside the node's namespaces it creates them and runs the binary again inside them;
// inside, it starts the node, runs the tests and stops it.
func Main(m *testing.M, o Options) int {
	switch os.Getenv(envRole) {
	case "holder":
		return holdNamespaces(os.Getenv(envDir))
	case "node":
		return runInside(m, o)
	}
	if why := missing(); why != "" {
		node.skip = why
		return m.Run()
	}
	return runOutside()
}

// Get returns the running node, or skips (fails under SUMMON_REQUIRE_INTEGRATION=1) when the
// machine can't run one.
func Get(t testing.TB) *Node {
	t.Helper()
	if node.skip != "" {
		if os.Getenv("SUMMON_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("no real node: %s, and SUMMON_REQUIRE_INTEGRATION=1", node.skip)
		}
		t.Skipf("no real node: %s", node.skip)
	}
	if node.startErr != nil {
		t.Fatal(node.startErr)
	}
	if node.n == nil {
		t.Fatal("no real node: TestMain doesn't call realnode.Main")
	}
	return node.n
}

// stopTimeout bounds the wait for each process asked to stop.
const stopTimeout = 10 * time.Second

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "realnode: "+format+"\n", args...)
}
