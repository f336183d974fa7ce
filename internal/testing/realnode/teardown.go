package realnode

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// teardown stops whatever the node left running, by PID, lets the namespaces go and removes the
// node's cgroups, then checks that nothing of it is left on the host: no process in its cgroups or
// namespaces, no cgroup, no mount.
func teardown(dir string, h *holder) error {
	root := cgroupRoot(dir)
	var errs []error
	// The pods' processes, whatever namespaces they made for themselves.
	if err := killCgroup(root); err != nil {
		errs = append(errs, err)
	}
	// Whatever else is in the node's namespaces: the containerd shims (they outlive containerd on
	// purpose), and anything the run inside left when it was killed.
	deadline := time.Now().Add(stopTimeout)
	for {
		left := inNamespaces(h, h.cmd.Process.Pid)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("processes still in the node's namespaces: %s", describe(left)))
			break
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The holder exits when its stdin closes; with it go the network namespace (and every
	// iptables rule and interface in it) and the mount namespace (every mount in it).
	h.stdin.Close()
	waited := make(chan error, 1)
	go func() { waited <- h.cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(stopTimeout):
		_ = h.cmd.Process.Kill()
		<-waited
	}
	if err := removeCgroup(root); err != nil {
		errs = append(errs, err)
	}

	// What the host must not keep.
	if left := inNamespaces(h, 0); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes still in the node's namespaces after the holder exited: %s", describe(left)))
	}
	for _, hier := range hierarchies() {
		if _, err := os.Stat(filepath.Join(hier, root)); err == nil {
			errs = append(errs, fmt.Errorf("cgroup %s is still there", filepath.Join(hier, root)))
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), dir) {
		errs = append(errs, fmt.Errorf("the host still has a mount under %s", dir))
	}
	return errors.Join(errs...)
}

// inNamespaces lists the processes, other than except, in the holder's network or mount namespace.
func inNamespaces(h *holder, except int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except || pid == os.Getpid() {
			continue
		}
		net, _ := os.Readlink("/proc/" + e.Name() + "/ns/net")
		mnt, _ := os.Readlink("/proc/" + e.Name() + "/ns/mnt")
		if (h.netNS != "" && net == h.netNS) || (h.mntNS != "" && mnt == h.mntNS) {
			// A zombie holds no namespace any more (its links are gone), so every one here is alive.
			out = append(out, pid)
		}
	}
	return out
}

func describe(pids []int) string {
	var parts []string
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cmd := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		if len(cmd) > 80 {
			cmd = cmd[:80]
		}
		parts = append(parts, fmt.Sprintf("%d (%s)", pid, cmd))
	}
	return strings.Join(parts, ", ")
}

// PauseImage is the pods' sandbox image, and the node's own test server (see ./pause).
const PauseImage = "localhost/summon-realnode-pause:1"

// buildPauseImage builds ./pause as a static binary and packs it into dir/pause.tar.
func buildPauseImage(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/testing/realnode/pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	return WriteImage(filepath.Join(dir, "pause.tar"), PauseImage, "65535", []string{"/pause"}, ImageFile{Path: "pause", Mode: 0o755, Data: b})
}

// moduleRoot is the directory of the go.mod above the working directory (go test runs a test in
// its package's directory).
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above the working directory")
		}
		d = parent
	}
}
