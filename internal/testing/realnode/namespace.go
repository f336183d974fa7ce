package realnode

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// missing says why this machine can't run a node, or "" when it can.
func missing() string {
	if os.Geteuid() != 0 {
		return "it needs root (network and mount namespaces, cgroups)"
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return `KUBEBUILDER_ASSETS is not set (export KUBEBUILDER_ASSETS="$(hack/kube-binaries.sh | tail -n 1)")`
	}
	for _, b := range []string{"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return fmt.Sprintf("KUBEBUILDER_ASSETS has no %s (hack/kube-binaries.sh builds it)", b)
		}
	}
	for _, b := range []string{"containerd", "ctr", "runc", "iptables", "ip", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Sprintf("%s is not installed (hack/node-packages.sh installs the node's packages)", b)
		}
	}
	if _, err := os.Stat(filepath.Join(cniDir(), "bridge")); err != nil {
		return fmt.Sprintf("no CNI bridge plugin in %s (hack/node-packages.sh)", cniDir())
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		return "the node runs on cgroup v1 (as the CI machines have it); this machine has no v1 memory hierarchy"
	}
	return ""
}

func cniDir() string {
	if d := os.Getenv(envCNI); d != "" {
		return d
	}
	return "/usr/lib/cni"
}

// runOutside creates the namespaces, runs this test binary again inside them, and cleans up
// after it. It returns the inside run's exit code, or 1 when something was left behind.
func runOutside() int {
	dir, err := os.MkdirTemp("", "summon-realnode-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	for _, d := range []string{"ns/run", "ns/varlib", "ns/varlog", "conf", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			logf("%v", err)
			return 1
		}
	}
	keep := os.Getenv("SUMMON_REALNODE_KEEP") == "1"
	defer func() {
		if keep {
			logf("state and logs kept in %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			logf("removing %s: %v", dir, err)
		}
	}()

	// The pause image is built here, where the go command reaches its module cache as always.
	begin := time.Now()
	if err := buildPauseImage(dir); err != nil {
		logf("building the pause image: %v", err)
		return 1
	}
	logf("pause image built in %s", time.Since(begin).Round(100*time.Millisecond))

	exe, err := os.Executable()
	if err != nil {
		logf("%v", err)
		return 1
	}
	sysctls := readSysctls()
	holder, err := startHolder(exe, dir)
	if err != nil {
		logf("creating the namespaces: %v", err)
		return 1
	}
	code := runNode(exe, dir, holder.cmd.Process.Pid)
	if err := teardown(dir, holder); err != nil {
		logf("cleaning up: %v", err)
		keep = true
		return 1
	}
	if after := readSysctls(); after != sysctls {
		logf("the host's sysctls changed during the run: before %s, after %s", sysctls, after)
		return 1
	}
	return code
}

// holder is the process that keeps the node's namespaces alive; it exits when its stdin closes.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	netNS string // its namespaces' identities (e.g. "net:[4026532281]")
	mntNS string
}

func startHolder(exe, dir string) (*holder, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envRole+"=holder", envDir+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS,
		// A test binary killed outright takes its namespaces with it.
		Pdeathsig: syscall.SIGKILL,
	}
	log, err := os.Create(filepath.Join(dir, "logs", "holder.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stderr = log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &holder{cmd: cmd, stdin: stdin}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		stdin.Close()
		_ = cmd.Wait()
		b, _ := os.ReadFile(filepath.Join(dir, "logs", "holder.log"))
		return nil, fmt.Errorf("the namespace holder failed: %s", b)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	h.netNS, _ = os.Readlink("/proc/" + pid + "/ns/net")
	h.mntNS, _ = os.Readlink("/proc/" + pid + "/ns/mnt")
	return h, nil
}

// runNode runs this test binary again inside the holder's namespaces, with the arguments go test
// gave it, and returns its exit code. An interrupt is passed on to it.
func runNode(exe, dir string, holderPID int) int {
	cwd, _ := os.Getwd()
	args := append([]string{"--target", strconv.Itoa(holderPID), "--net", "--mount", "--", exe}, os.Args[1:]...)
	cmd := exec.Command("nsenter", args...)
	cmd.Env = append(os.Environ(), envRole+"=node", envDir+"="+dir, envCwd+"="+cwd)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		logf("entering the namespaces: %v", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				if c := exit.ExitCode(); c > 0 {
					return c
				}
				return 1
			}
			if err != nil {
				logf("%v", err)
				return 1
			}
			return 0
		}
	}
}

// holdNamespaces is the holder's run: already in its new network and mount namespaces, it hides
// the host paths and sysctls the node would write, sets up the node's network, says "ready" and
// waits for its stdin to close.
func holdNamespaces(dir string) int {
	if err := setUpNamespaces(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// hostSysctls are the host-wide sysctls the kubelet would set (see setUpNamespaces).
var hostSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

func readSysctls() string {
	var b strings.Builder
	for _, s := range hostSysctls {
		v, _ := os.ReadFile("/proc/sys/" + s)
		fmt.Fprintf(&b, "%s=%s ", s, strings.TrimSpace(string(v)))
	}
	return b.String()
}

func setUpNamespaces(dir string) error {
	// Nothing mounted here propagates to the host.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	files := map[string]string{
		// No resolver outside: names resolve from /etc/hosts or not at all.
		"conf/resolv.conf": "nameserver 127.0.0.1\n",
		"conf/hosts":       "127.0.0.1 localhost\n" + NodeIP + " " + NodeName + "\n",
		// The kubelet sets these host-wide sysctls unless they already hold its values
		// (setupKernelTunables): show it files that do.
		"conf/overcommit_memory": "1\n",
		"conf/panic_on_oom":      "0\n",
		"conf/panic":             "10\n",
		"conf/panic_on_oops":     "1\n",
		"conf/root_maxkeys":      "1000000\n",
		"conf/root_maxbytes":     "25000000\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	binds := [][2]string{
		{"conf/resolv.conf", "/etc/resolv.conf"},
		{"conf/hosts", "/etc/hosts"},
		{"conf/overcommit_memory", "/proc/sys/vm/overcommit_memory"},
		{"conf/panic_on_oom", "/proc/sys/vm/panic_on_oom"},
		{"conf/panic", "/proc/sys/kernel/panic"},
		{"conf/panic_on_oops", "/proc/sys/kernel/panic_on_oops"},
		{"conf/root_maxkeys", "/proc/sys/kernel/keys/root_maxkeys"},
		{"conf/root_maxbytes", "/proc/sys/kernel/keys/root_maxbytes"},
		// Paths containerd, the shims, the CNI plugins and the kubelet use whatever they are told:
		// /run/containerd/s (shim sockets), /run/netns (pods' namespaces), the xtables lock,
		// /var/lib/cni (libcni's cache), /var/log/pods and /var/log/containers.
		{"ns/run", "/run"},
		{"ns/varlib", "/var/lib"},
		{"ns/varlog", "/var/log"},
	}
	for _, b := range binds {
		if err := syscall.Mount(filepath.Join(dir, b[0]), b[1], "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s over %s: %w", b[0], b[1], err)
		}
	}
	// The node address sits on a veth pair whose both ends stay here. Only the Service range is
	// routed (ClusterIP DNAT happens after the route lookup of local traffic), the pods' range is
	// the bridge's, and every other destination is unreachable: nothing is even sent elsewhere.
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "node0", "type", "veth", "peer", "name", "node0p"},
		{"link", "set", "node0p", "up"},
		{"link", "set", "node0", "up"},
		{"addr", "add", NodeIP + "/24", "dev", "node0"},
		{"route", "add", "unreachable", "default"},
		{"route", "add", serviceCIDR, "dev", "node0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
