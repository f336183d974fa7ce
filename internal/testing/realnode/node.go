package realnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/forklift-dev/summon/internal/testing/testcluster"
)

// Node is a running cluster of one real node.
type Node struct {
	// Cluster is the control plane (and the node's processes, which it stops with its own).
	Cluster *testcluster.Cluster
	dir     string
	dns     *clusterDNS
	// ReadyTime is how long the node took from nothing (the namespaces made) to Ready.
	ReadyTime time.Duration
}

// Config is an admin's client configuration.
func (n *Node) Config() *rest.Config { return n.Cluster.Config() }

// Kubeconfig is the path of an admin's kubeconfig, for processes (kubectl, Metacontroller).
func (n *Node) Kubeconfig() string { return n.Cluster.Kubeconfig() }

// Tails returns the last lines of every process's log (containerd, kubelet, kube-proxy, the
// controllers), for a failing test's output.
func (n *Node) Tails(lines int) string { return n.Cluster.Tails(lines) }

// Err says which of the node's processes has exited, or nil while all of them run.
func (n *Node) Err() error { return n.Cluster.Err() }

// runInside is the run in the node's namespaces: it starts the node, runs the tests and stops it.
func runInside(m *testing.M, o Options) int {
	if cwd := os.Getenv(envCwd); cwd != "" {
		if err := os.Chdir(cwd); err != nil {
			logf("%v", err)
			return 1
		}
	}
	dir := os.Getenv(envDir)
	n, err := start(dir, o)
	if err != nil {
		node.startErr = err
		return m.Run()
	}
	node.n = n
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, n.Tails(30))
	}
	n.dns.close()
	if err := n.Cluster.Stop(); err != nil {
		logf("stopping the node: %v", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// start starts the control plane, containerd, kube-proxy and the kubelet, imports the images and
// waits for the node to be Ready. On error everything started is stopped.
func start(dir string, o Options) (n *Node, err error) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if err := createCgroup(cgroupRoot(dir)); err != nil {
		return nil, fmt.Errorf("creating the node's cgroup: %w", err)
	}
	c, err := testcluster.Start(ctx, testcluster.Options{
		KubeAssets: assets,
		RealNode:   true,
		LogDir:     filepath.Join(dir, "logs"),
		KeepLogs:   true,
		APIServerArgs: map[string]string{
			"service-cluster-ip-range": serviceCIDR,
			// The node's name resolves nowhere (no resolver): reach the kubelet (logs, exec) at
			// its address.
			"kubelet-preferred-address-types": "InternalIP",
			// Without a default route the API server finds no address of its own to advertise
			// (for the kubernetes Service) and won't start; it still listens on 127.0.0.1 only.
			"advertise-address": NodeIP,
		},
	})
	if err != nil {
		return nil, err
	}
	n = &Node{Cluster: c, dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
			n = nil
		}
	}()

	files, err := writeConfigs(dir, c.Kubeconfig())
	if err != nil {
		return n, err
	}
	if err := c.StartProcess("containerd", "containerd", "--config", files.containerd); err != nil {
		return n, err
	}
	if err := n.waitFor(ctx, "containerd to answer", func() error { _, err := n.ctr("version"); return err }); err != nil {
		return n, err
	}
	for _, img := range append([]string{filepath.Join(dir, "pause.tar")}, o.Images...) {
		if err := n.ImportImage(img); err != nil {
			return n, err
		}
	}
	// -v=2: kube-proxy logs when each change of the rules starts and when it reached the kernel,
	// what a request dropped during a rollout is read against (its log is in a failing test's
	// output).
	if err := c.StartProcess("kube-proxy", filepath.Join(assets, "kube-proxy"), "--config="+files.kubeProxy, "--v=2"); err != nil {
		return n, err
	}
	if err := c.StartProcess("kubelet", filepath.Join(assets, "kubelet"),
		"--config="+files.kubelet,
		"--kubeconfig="+c.Kubeconfig(),
		"--root-dir="+filepath.Join(dir, "kubelet"),
		"--hostname-override="+NodeName,
		"--node-ip="+NodeIP,
		"--v=1",
	); err != nil {
		return n, err
	}
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return n, err
	}
	err = n.waitFor(ctx, "node "+NodeName+" to be Ready", func() error {
		got, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node %s is not Ready: %s", NodeName, cond.Message)
			}
		}
		return fmt.Errorf("node %s has no Ready condition yet", NodeName)
	})
	if err != nil {
		return n, err
	}
	if n.dns, err = startClusterDNS(cs); err != nil {
		return n, fmt.Errorf("starting the cluster DNS on %s: %w", NodeIP, err)
	}
	n.ReadyTime = time.Since(begin)
	logf("node %s Ready after %s", NodeName, n.ReadyTime.Round(100*time.Millisecond))
	return n, nil
}

// ImportImage imports an OCI image archive into the node's containerd, for pods that use it with
// imagePullPolicy IfNotPresent or Never.
func (n *Node) ImportImage(path string) error {
	if out, err := n.ctr("images", "import", path); err != nil {
		return fmt.Errorf("importing %s: %w: %s", path, err, out)
	}
	return nil
}

// TagImage gives an imported image another name, e.g. PauseImage as the versions of an app.
func (n *Node) TagImage(src, dst string) error {
	if out, err := n.ctr("images", "tag", "--force", src, dst); err != nil {
		return fmt.Errorf("tagging %s as %s: %w: %s", src, dst, err, out)
	}
	return nil
}

// ctr runs containerd's client against the node's containerd, in the namespace the kubelet uses.
func (n *Node) ctr(args ...string) ([]byte, error) {
	args = append([]string{"--address", filepath.Join(n.dir, "containerd", "containerd.sock"), "--namespace", "k8s.io"}, args...)
	return exec.Command("ctr", args...).CombinedOutput()
}

// waitFor calls check until it returns nil, giving up when the context ends or a process exits.
func (n *Node) waitFor(ctx context.Context, what string, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		if perr := n.Cluster.Err(); perr != nil {
			return fmt.Errorf("waiting for %s: %w\n%s", what, perr, n.Tails(30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s: %w\n%s", what, err, n.Tails(30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type configFiles struct{ containerd, kubelet, kubeProxy string }

// writeConfigs writes the configurations of containerd, the CNI network, the kubelet and
// kube-proxy, every path in them under dir.
func writeConfigs(dir, kubeconfig string) (configFiles, error) {
	r := strings.NewReplacer("${DIR}", dir, "${CNI_BIN}", cniDir(), "${KUBECONFIG}", kubeconfig,
		"${POD_CIDR}", podCIDR, "${POD_GATEWAY}", podGateway, "${NODE}", NodeName,
		"${CGROUP_ROOT}", cgroupRoot(dir), "${PAUSE}", PauseImage, "${NODE_IP}", NodeIP)
	files := map[string]string{
		"containerd/config.toml":         containerdConfig,
		"cni/net.d/10-realnode.conflist": cniConfig,
		"conf/kubelet.yaml":              kubeletConfig,
		"conf/kube-proxy.yaml":           kubeProxyConfig,
	}
	for name, tpl := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return configFiles{}, err
		}
		if err := os.WriteFile(path, []byte(r.Replace(tpl)), 0o644); err != nil {
			return configFiles{}, err
		}
	}
	for _, d := range []string{"cni/ipam", "kubelet", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return configFiles{}, err
		}
	}
	return configFiles{
		containerd: filepath.Join(dir, "containerd/config.toml"),
		kubelet:    filepath.Join(dir, "conf/kubelet.yaml"),
		kubeProxy:  filepath.Join(dir, "conf/kube-proxy.yaml"),
	}, nil
}

// containerd 1.6's configuration (schema version 2).
const containerdConfig = `version = 2
root = "${DIR}/containerd/root"
state = "${DIR}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${DIR}/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "${DIR}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE}"
  enable_selinux = false
  disable_apparmor = true
  # Without CAP_SYS_RESOURCE (as on the CI machines) a negative oom_score_adj fails, and runc dies
  # with "can't get final child's PID from pipe: EOF" for every sandbox: clamp to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN}"
    conf_dir = "${DIR}/cni/net.d"
`

// The pods' network: one bridge, addresses from the pod range. Their default route leads to the
// node's namespace, where every destination but the pods, the node and the Services is unreachable.
const cniConfig = `{
  "cniVersion": "0.4.0",
  "name": "realnode",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${DIR}/cni/ipam",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${POD_GATEWAY}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# kubelet 1.35+ refuses cgroup v1 unless told otherwise.
failCgroupV1: false
# No systemd as PID 1; containerd 1.6 lacks the RuntimeConfig call, so the kubelet uses this.
cgroupDriver: cgroupfs
# Every pod under a cgroup of this node's own, which the test removes.
cgroupRoot: ${CGROUP_ROOT}
containerRuntimeEndpoint: unix://${DIR}/containerd/containerd.sock
imageServiceEndpoint: unix://${DIR}/containerd/containerd.sock
podLogsDir: ${DIR}/pod-logs
# The API server has no kubelet client certificate here; the kubelet is reachable only inside the
# node's network namespace.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
failSwapOn: false
# The disk is shared and may be fairly full: never evict for it.
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
clusterDomain: cluster.local
# Every pod's nameserver: the node's cluster DNS (dns.go), on the node's address.
clusterDNS: ["${NODE_IP}"]
resolvConf: ${DIR}/conf/resolv.conf
rotateCertificates: false
serializeImagePulls: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 10s
`

const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${KUBECONFIG}
mode: iptables
clusterCIDR: ${POD_CIDR}
hostnameOverride: ${NODE}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  # nf_conntrack_max is read-only outside the host's network namespace: leave it.
  maxPerCore: 0
  min: 0
`
