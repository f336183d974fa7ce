package realnode

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forklift-dev/summon/internal/testing/mctest"
)

// StartPostgres starts a throwaway PostgreSQL (hack/postgres.sh, Debian's server) inside the
// node's network namespace, listening on NodeIP:port only, where the node's pods reach it and
// nothing outside the namespace can, with password logins allowed from the pod network. It
// returns the superuser's DSN and stops the server, by its PID, when the test ends.
func (n *Node) StartPostgres(t testing.TB, port string) string {
	t.Helper()
	root, err := mctest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "hack", "postgres.sh")
	env := append(os.Environ(),
		"SUMMON_POSTGRES_HOST="+NodeIP,
		"SUMMON_POSTGRES_PORT="+port,
		"SUMMON_POSTGRES_CLIENTS="+podCIDR,
		"SUMMON_POSTGRES_STATE="+filepath.Join(n.dir, "postgres"),
	)
	run := func(arg string) (string, error) {
		cmd := exec.Command(script, arg)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			return "", &scriptError{arg: arg, err: err, stderr: errOut.String()}
		}
		return out.String(), nil
	}
	out, err := run("start")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := run("stop"); err != nil {
			t.Error(err)
		}
	})
	dsn, ok := strings.CutPrefix(strings.TrimSpace(out), "SUMMON_TEST_POSTGRES_DSN=")
	if !ok || !strings.Contains(dsn, net.JoinHostPort(NodeIP, port)) {
		t.Fatalf("hack/postgres.sh start printed no DSN on %s", net.JoinHostPort(NodeIP, port))
	}
	return dsn
}

type scriptError struct {
	arg    string
	err    error
	stderr string
}

func (e *scriptError) Error() string {
	return "hack/postgres.sh " + e.arg + ": " + e.err.Error() + "\n" + e.stderr
}
