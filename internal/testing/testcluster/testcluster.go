// Package testcluster starts, for tests, a Kubernetes cluster in which the real controllers act
// without a kubelet: etcd and kube-apiserver (through controller-runtime's envtest),
// kube-controller-manager with all its default controllers (garbage collector, Deployment,
// ReplicaSet, StatefulSet, Job, HPA, namespace, node lifecycle, ...), kube-scheduler, and kwok
// playing the kubelet of fake nodes: pods are scheduled, become Running and Ready, Job pods
// complete, and terminating pods go away. Options.NoPods and Options.Controllers start less: for a
// fleet of parents whose children must be garbage-collected but never run, only kube-apiserver,
// etcd and the controller manager's garbage collector. Everything listens on 127.0.0.1 only (the controller
// manager and the scheduler serve nothing at all) and is stopped by its PID.
//
// It owns the processes and their logs; it never touches a cluster it did not start (no
// kubeconfig of the developer's is read) and installs nothing but kwok's Stage CRD and stages.
// The binaries come from hack/kube-binaries.sh (KUBEBUILDER_ASSETS) and hack/kwok.sh
// (SUMMON_KWOK_DIR).
//
// A test binary usually starts one cluster in TestMain and gives each test a namespace of its own:
//
//	o, err := testcluster.OptionsFromEnv() // or testenv.TestCluster(t) inside a test
//	c, err := testcluster.Start(ctx, o)
//	defer c.Stop()
//	cfg := c.Config()        // an admin's *rest.Config
//	path := c.Kubeconfig()   // the same, for kubectl or Metacontroller
//	if t.Failed() { t.Log(c.Tails(40)) }
//
// Stages change what kwok does to some pods: PodStage (succeed or fail after a delay) and
// DerivedStage (an installed stage, slowed down), created through StageGVR.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/testing/crds"
	"github.com/forklift-dev/summon/internal/testing/testfiles"
)

// Environment variables that name the binaries; hack/test.sh sets both.
const (
	EnvKubeAssets = "KUBEBUILDER_ASSETS"
	EnvKwokDir    = "SUMMON_KWOK_DIR"
)

// loopback is the only address anything started here listens on.
const loopback = "127.0.0.1"

// FakeNodeAnnotation marks the nodes kwok manages (kwok's own convention).
const FakeNodeAnnotation = "kwok.x-k8s.io/node"

// The stages installed from the kwok module: nodes become Ready and keep their lease; pods become
// Running and Ready at once, Job pods then succeed, and deleted pods go at once. A test changes
// what happens to some pods by creating Stage objects of its own with a weight above 0: kwok
// then picks only among the weighted stages that match (see Stage).
var moduleStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

const stageCRD = "kustomize/crd/bases/kwok.x-k8s.io_stages.yaml"

// StageGVR is kwok's Stage resource.
var StageGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"}

// Options say where the binaries are and what to start.
type Options struct {
	// KubeAssets holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl.
	KubeAssets string
	// KwokDir is hack/kwok.sh's directory: the kwok binary and the module's kustomize/ files.
	KwokDir string
	// Nodes is the number of fake nodes (default 2).
	Nodes int
	// LogDir receives one log file per process (default: a new temporary directory, removed by
	// Stop unless KeepLogs).
	LogDir   string
	KeepLogs bool
	// ControllerManagerArgs are added to kube-controller-manager's flags (later flags win), e.g.
	// "--horizontal-pod-autoscaler-sync-period=5s".
	ControllerManagerArgs []string
	// Controllers is kube-controller-manager's --controllers (default "*", all of them); e.g.
	// "garbagecollector" for a fleet whose children must be collected but never run.
	Controllers string
	// NoPods starts neither kube-scheduler nor kwok and creates no nodes: no pod is ever
	// scheduled or run. The smoke test then checks the garbage collector instead of a Deployment.
	NoPods bool
	// RealNode starts kube-scheduler but neither kwok nor its fake nodes, and Start runs no smoke
	// test: a real kubelet, which the caller starts (internal/testing/realnode), runs the pods.
	RealNode bool
	// APIServerArgs are added to kube-apiserver's flags (they win over this package's), e.g.
	// {"service-cluster-ip-range": "198.19.0.0/16"}.
	APIServerArgs map[string]string
}

// OptionsFromEnv reads the binaries' directories from KUBEBUILDER_ASSETS and SUMMON_KWOK_DIR.
func OptionsFromEnv() (Options, error) {
	o := Options{KubeAssets: os.Getenv(EnvKubeAssets), KwokDir: os.Getenv(EnvKwokDir)}
	var missing []string
	if o.KubeAssets == "" {
		missing = append(missing, EnvKubeAssets+` (export KUBEBUILDER_ASSETS="$(hack/kube-binaries.sh | tail -n 1)")`)
	}
	if o.KwokDir == "" {
		missing = append(missing, EnvKwokDir+` (export SUMMON_KWOK_DIR="$(hack/kwok.sh | tail -n 1)")`)
	}
	if len(missing) > 0 {
		return o, fmt.Errorf("the real-controller test cluster needs %s; hack/test.sh sets both", strings.Join(missing, " and "))
	}
	return o, nil
}

// Cluster is a running test cluster.
type Cluster struct {
	env        *envtest.Environment
	config     *rest.Config
	kubeconfig string
	logDir     string
	removeLogs bool
	procs      []*process
	// StartTime is how long Start took, from nothing to a Deployment's pod Ready.
	StartTime time.Duration

	stopOnce sync.Once
	stopErr  error
}

// process is one binary this package started.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

// Start starts the cluster and returns once a Deployment's pod has been scheduled and become Ready
// on a fake node: every part has done its job once. On error everything started is stopped.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	begin := time.Now()
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Controllers == "" {
		o.Controllers = "*"
	}
	bins := []string{filepath.Join(o.KubeAssets, "kube-controller-manager")}
	if o.RealNode {
		bins = append(bins, filepath.Join(o.KubeAssets, "kube-scheduler"))
	} else if !o.NoPods {
		bins = append(bins,
			filepath.Join(o.KubeAssets, "kube-scheduler"),
			filepath.Join(o.KwokDir, "kwok"),
			filepath.Join(o.KwokDir, stageCRD))
	}
	for _, bin := range bins {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("the test cluster needs %s: %w (build it with hack/kube-binaries.sh or hack/kwok.sh)", bin, err)
		}
	}
	removeLogs := false
	if o.LogDir == "" {
		if o.LogDir, err = os.MkdirTemp("", "summon-testcluster-"); err != nil {
			return nil, err
		}
		removeLogs = !o.KeepLogs
	}
	c = &Cluster{logDir: o.LogDir, removeLogs: removeLogs}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
			c = nil
		}
	}()

	if err := c.startControlPlane(o.KubeAssets, o.APIServerArgs); err != nil {
		return c, err
	}
	if !o.NoPods && !o.RealNode {
		if err := c.installStages(ctx, o.KwokDir); err != nil {
			return c, err
		}
		if err := c.createNodes(ctx, o.Nodes); err != nil {
			return c, err
		}
	}

	kcm := append([]string{
		"--kubeconfig=" + c.kubeconfig,
		"--leader-elect=false",
		// Nothing listens: no health or metrics port to guard.
		"--secure-port=0",
		"--controllers=" + o.Controllers,
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	}, o.ControllerManagerArgs...)
	if err := c.start("kube-controller-manager", filepath.Join(o.KubeAssets, "kube-controller-manager"), kcm...); err != nil {
		return c, err
	}
	if o.NoPods {
		if err := c.gcSmokeTest(ctx); err != nil {
			return c, err
		}
		c.StartTime = time.Since(begin)
		return c, nil
	}
	schedulerConfig, err := c.writeSchedulerConfig()
	if err != nil {
		return c, err
	}
	if err := c.start("kube-scheduler", filepath.Join(o.KubeAssets, "kube-scheduler"),
		"--config="+schedulerConfig, "--secure-port=0"); err != nil {
		return c, err
	}
	if o.RealNode {
		c.StartTime = time.Since(begin)
		return c, nil
	}
	kwokConfig, err := c.writeKwokConfig()
	if err != nil {
		return c, err
	}
	if err := c.start("kwok", filepath.Join(o.KwokDir, "kwok"),
		"--kubeconfig="+c.kubeconfig, "--config="+kwokConfig); err != nil {
		return c, err
	}
	if err := c.smokeTest(ctx); err != nil {
		return c, err
	}
	c.StartTime = time.Since(begin)
	return c, nil
}

// Config is an admin's client configuration.
func (c *Cluster) Config() *rest.Config { return rest.CopyConfig(c.config) }

// Kubeconfig is the path of an admin's kubeconfig, for processes (kubectl, Metacontroller).
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// LogDir holds one log file per process: kube-controller-manager.log, kube-scheduler.log,
// kwok.log (etcd and kube-apiserver log through envtest, which keeps no file).
func (c *Cluster) LogDir() string { return c.logDir }

// Err says which process has exited, or nil while all of them run.
func (c *Cluster) Err() error {
	var errs []error
	for _, p := range c.procs {
		select {
		case <-p.exited:
			errs = append(errs, fmt.Errorf("%s exited: %v (log: %s)", p.name, p.err, p.log))
		default:
		}
	}
	return errors.Join(errs...)
}

// Tails returns the last lines of every process's log, for a failing test's output.
func (c *Cluster) Tails(lines int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- %s (%s), last %d lines:\n%s\n", p.name, p.log, lines, testfiles.Tail(p.log, lines))
	}
	return b.String()
}

// Stop stops every process by its PID (SIGTERM, then SIGKILL after 10 s), the kubelet stand-in
// and the controllers first, then kube-apiserver and etcd. It may be called more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		for i := len(c.procs) - 1; i >= 0; i-- {
			if err := c.procs[i].stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if c.env != nil {
			if err := StopEnvironment(c.env); err != nil {
				errs = append(errs, fmt.Errorf("stopping kube-apiserver and etcd: %w", err))
			}
		}
		if c.removeLogs {
			if err := os.RemoveAll(c.logDir); err != nil {
				errs = append(errs, err)
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// startControlPlane starts etcd and kube-apiserver on 127.0.0.1 (envtest's defaults resolve
// "localhost", and etcd's peer URL would be on it too) and writes an admin kubeconfig.
func (c *Cluster) startControlPlane(assets string, extra map[string]string) error {
	flags := map[string]string{
		// envtest's default range is a /24: 256 Service IPs, fewer than 100 instances' Services.
		"service-cluster-ip-range": "10.0.0.0/16",
	}
	for k, v := range extra {
		flags[k] = v
	}
	plane, err := LoopbackControlPlane(flags)
	if err != nil {
		return err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlane: plane}
	if err := StartEnvironment(env); err != nil {
		return err
	}
	c.env = env
	user, err := c.env.AddUser(envtest.User{Name: "summon-testcluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding an admin user: %w", err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the admin kubeconfig: %w", err)
	}
	c.kubeconfig = filepath.Join(c.logDir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, b, 0o600); err != nil {
		return err
	}
	c.config = user.Config()
	// The controllers and kwok each have their own client; the tests' clients share this one's
	// limits, which must not make a test wait on itself.
	c.config.QPS, c.config.Burst = 200, 400
	return nil
}

// installStages creates kwok's Stage CRD and the stages of moduleStages, as the module ships them.
func (c *Cluster) installStages(ctx context.Context, kwokDir string) error {
	objs, err := testfiles.ReadObjects(filepath.Join(kwokDir, stageCRD))
	if err != nil {
		return err
	}
	var stageCRDs []*apiextensionsv1.CustomResourceDefinition
	for _, o := range objs {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &crd); err != nil {
			return fmt.Errorf("reading kwok's Stage CRD: %w", err)
		}
		stageCRDs = append(stageCRDs, &crd)
	}
	if err := crds.Install(ctx, c.config, stageCRDs); err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(c.config)
	if err != nil {
		return err
	}
	for _, f := range moduleStages {
		stages, err := testfiles.ReadObjects(filepath.Join(kwokDir, f))
		if err != nil {
			return err
		}
		for _, s := range stages {
			if _, err := dyn.Resource(StageGVR).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating kwok stage %s: %w", s.GetName(), err)
			}
		}
	}
	return nil
}

// createNodes creates the fake nodes kwok plays the kubelet of.
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{FakeNodeAnnotation: "fake"},
			Labels:      map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
		}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
	}
	return nil
}

func (c *Cluster) writeSchedulerConfig() (string, error) {
	cfg := map[string]any{
		"apiVersion": "kubescheduler.config.k8s.io/v1",
		"kind":       "KubeSchedulerConfiguration",
		"clientConnection": map[string]any{
			"kubeconfig": c.kubeconfig, "qps": 200, "burst": 400,
		},
		"leaderElection": map[string]any{"leaderElect": false},
	}
	return c.writeYAML("kube-scheduler.yaml", cfg)
}

// writeKwokConfig writes kwok's configuration. Its parallelism fields are set on purpose: kwok
// applies its defaults only when it is given no configuration at all (pkg/config.GetKwokConfiguration
// in v0.8.0), so a file that leaves them out runs with 0 workers and nodes and pods never move
// (and without lease workers the node lifecycle controller marks the nodes NotReady and evicts
// their pods).
func (c *Cluster) writeKwokConfig() (string, error) {
	cfg := map[string]any{
		"apiVersion": "config.kwok.x-k8s.io/v1alpha1",
		"kind":       "KwokConfiguration",
		"options": map[string]any{
			"manageAllNodes":                    false,
			"manageNodesWithAnnotationSelector": FakeNodeAnnotation + "=fake",
			// Stages come from Stage objects, so that a test can add its own at run time.
			"enableCRDs":                      []string{"Stage"},
			"cidr":                            "10.128.0.0/16",
			"nodeIP":                          "10.127.0.1",
			"podPlayStageParallelism":         4,
			"nodePlayStageParallelism":        2,
			"nodeLeaseParallelism":            2,
			"nodeLeaseDurationSeconds":        40,
			"podsOnNodeSyncParallelism":       2,
			"enablePodsOnNodeSyncListPager":   false,
			"enablePodsOnNodeSyncStreamWatch": true,
			"enableProfilingHandler":          false,
			"enableContentionProfiling":       false,
			"enableDebuggingHandlers":         false,
			// No node port and no server address: kwok serves nothing.
		},
	}
	return c.writeYAML("kwok.yaml", cfg)
}

func (c *Cluster) writeYAML(name string, v any) (string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.logDir, name)
	return path, os.WriteFile(path, b, 0o600)
}

// StartProcess runs one more binary beside the cluster's own (a real node's kubelet), with its
// output in LogDir/<name>.log; Stop stops it by its PID, before the processes started earlier.
func (c *Cluster) StartProcess(name, bin string, args ...string) error {
	return c.start(name, bin, args...)
}

// start runs one binary with its output in LogDir/<name>.log.
func (c *Cluster) start(name, bin string, args ...string) error {
	logPath := filepath.Join(c.logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C in the terminal reaches the test, which stops it by PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// No kubeconfig but the one given, and no proxy between the parts.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig, "NO_PROXY=127.0.0.1", "no_proxy=127.0.0.1")
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	c.procs = append(c.procs, p)
	return nil
}

func (p *process) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return nil
}

// PIDs are the processes of the cluster by name, for measuring them.
func (c *Cluster) PIDs() map[string]int {
	out := map[string]int{}
	for _, p := range c.procs {
		out[p.name] = p.cmd.Process.Pid
	}
	// envtest keeps its processes to itself; they are this process's children by their
	// executables' names.
	for name, pid := range childrenByName(os.Getpid(), "etcd", "kube-apiserver") {
		out[name] = pid
	}
	return out
}

// childrenByName finds the child processes of parent whose command names are among names.
func childrenByName(parent int, names ...string) map[string]int {
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, fields, ok := parseStat(string(b))
		if !ok || len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if ppid != parent {
			continue
		}
		for _, n := range names {
			// The kernel cuts command names at 15 bytes.
			if n == comm || (len(comm) == 15 && strings.HasPrefix(n, comm)) {
				out[n] = pid
			}
		}
	}
	return out
}

// parseStat splits /proc/<pid>/stat into the command name and the fields after it.
func parseStat(s string) (comm string, fields []string, ok bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", nil, false
	}
	return s[open+1 : end], strings.Fields(s[end+1:]), true
}

// smokeTest creates a Deployment of one pod and waits until it is available: the scheduler bound
// the pod, kwok made it Ready, and the Deployment and ReplicaSet controllers saw it. Then it
// deletes the Deployment and its namespace.
func (c *Cluster) smokeTest(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	const ns = "testcluster-smoke"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	d := smokeDeployment(ns)
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the smoke-test Deployment: %w", err)
	}
	err = retryFor(ctx, 2*time.Minute, func() error {
		if err := c.Err(); err != nil {
			return backoffStop{err}
		}
		got, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.AvailableReplicas != 1 {
			return fmt.Errorf("the smoke-test Deployment has %d available pods, want 1", got.Status.AvailableReplicas)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the cluster does not run a Deployment: %w\n%s", err, c.Tails(20))
	}
	return cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
}

// gcSmokeTest creates a ConfigMap owned by another and deletes the owner: the garbage collector
// runs once it deletes the dependent.
func (c *Cluster) gcSmokeTest(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	const ns = "default"
	owner, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "testcluster-smoke-owner"}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the smoke-test owner: %w", err)
	}
	dependent := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "testcluster-smoke-dependent",
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID,
		}},
	}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, dependent, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the smoke-test dependent: %w", err)
	}
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, owner.Name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	err = retryFor(ctx, 2*time.Minute, func() error {
		if err := c.Err(); err != nil {
			return backoffStop{err}
		}
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, dependent.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("the dependent of a deleted owner is still there (%v)", err)
	})
	if err != nil {
		return fmt.Errorf("the cluster's garbage collector does not run: %w\n%s", err, c.Tails(20))
	}
	return nil
}

// backoffStop ends retryFor at once.
type backoffStop struct{ error }

// retryFor calls f until it returns nil, a backoffStop or the time is up.
func retryFor(ctx context.Context, d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := f()
		var stop backoffStop
		if err == nil || errors.As(err, &stop) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", d, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// LoopbackControlPlane is etcd and kube-apiserver as envtest starts them, each on a free port of
// 127.0.0.1 only (envtest's defaults resolve "localhost", and etcd's peer URL would be on it too),
// with apiFlags added to kube-apiserver's. The test cluster and the integration tests' control
// plane (internal/testing/testenv/controlplane) both start theirs from it.
func LoopbackControlPlane(apiFlags map[string]string) (envtest.ControlPlane, error) {
	ports, err := freePorts(3)
	if err != nil {
		return envtest.ControlPlane{}, err
	}
	etcd := &envtest.Etcd{URL: &url.URL{Scheme: "http", Host: net.JoinHostPort(loopback, ports[0])}}
	etcd.Configure().Set("listen-peer-urls", "http://"+net.JoinHostPort(loopback, ports[1]))
	api := &envtest.APIServer{}
	api.SecureServing.ListenAddr = envtest.ListenAddr{Address: loopback, Port: ports[2]}
	for k, v := range apiFlags {
		api.Configure().Set(k, v)
	}
	return envtest.ControlPlane{Etcd: etcd, APIServer: api}, nil
}

// controlPlaneWait bounds each step of starting a control plane. It is where a broken start gives
// up, not how long a start takes: a loaded 2-core machine takes tens of seconds.
const controlPlaneWait = 3 * time.Minute

// StartEnvironment starts env: its control plane (one of LoopbackControlPlane, with the binaries
// of env.BinaryAssetsDirectory), then the CRDs of its CRDInstallOptions. envtest alone gives the
// API server 5 s to create the default namespace, and a loaded CI machine took longer (seen
// 2026-12-05); so the control plane is started here, the default namespace awaited as a
// condition, and env then started as a cluster that exists. Stop it with StopEnvironment.
func StartEnvironment(env *envtest.Environment) error {
	plane := &env.ControlPlane
	assets := env.BinaryAssetsDirectory
	plane.Etcd.Path = filepath.Join(assets, "etcd")
	plane.Etcd.StartTimeout = controlPlaneWait
	plane.APIServer.Path = filepath.Join(assets, "kube-apiserver")
	plane.APIServer.StartTimeout = controlPlaneWait
	plane.KubectlPath = filepath.Join(assets, "kubectl")
	if err := plane.Start(); err != nil {
		return errors.Join(fmt.Errorf("starting kube-apiserver and etcd: %w", err), plane.Stop())
	}
	admin, err := plane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return errors.Join(fmt.Errorf("adding an admin user: %w", err), plane.Stop())
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlPlaneWait)
	defer cancel()
	if err := waitDefaultNamespace(ctx, admin.Config()); err != nil {
		return errors.Join(err, plane.Stop())
	}
	env.Config = admin.Config()
	env.UseExistingCluster = ptr.To(true)
	if _, err := env.Start(); err != nil {
		return errors.Join(fmt.Errorf("installing the CRDs: %w", err), plane.Stop())
	}
	return nil
}

// StopEnvironment stops what StartEnvironment started.
func StopEnvironment(env *envtest.Environment) error {
	return errors.Join(env.Stop(), env.ControlPlane.Stop())
}

// waitDefaultNamespace waits until the API server has created the default namespace, the last
// thing it does before it serves like a cluster.
func waitDefaultNamespace(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server has not created the default namespace: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts finds n free TCP ports on 127.0.0.1.
func freePorts(n int) ([]string, error) {
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}
