// Package testenv finds the real servers, and the binaries that run them, that integration tests
// use. When one is not configured a test skips and says how to start it, unless
// SUMMON_REQUIRE_INTEGRATION=1 (as in CI), where a skip would hide a test that never ran: then it
// fails. Metacontroller is the one exception (see Metacontroller).
package testenv

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forklift-dev/summon/internal/testing/testcluster"
	"github.com/forklift-dev/summon/pkg/external"
)

// Postgres returns the superuser DSN of the test PostgreSQL server.
func Postgres(t testing.TB) string {
	t.Helper()
	return lookup(t, "SUMMON_TEST_POSTGRES_DSN", `eval "export $(hack/postgres.sh start)"`)
}

// RabbitMQ returns the management API URL, with admin credentials, of the test RabbitMQ node.
func RabbitMQ(t testing.TB) string {
	t.Helper()
	return lookup(t, "SUMMON_TEST_RABBITMQ_URL", `eval "export $(hack/rabbitmq.sh start)"`)
}

// Redis returns the directory where hack/redis.sh keeps the rendered Redis of its test instance
// (config files, app config file, ports) while both of its servers run.
func Redis(t testing.TB) string {
	t.Helper()
	return lookup(t, "SUMMON_TEST_REDIS_DIR", `eval "export $(hack/redis.sh start)"`)
}

// AppImages returns the directory of the example app's images (examples/app), which
// hack/app-images.sh builds and prints: one OCI archive per version, each version's app layer and
// the shared rootfs, unpacked.
func AppImages(t testing.TB) string {
	t.Helper()
	return require(t, "SUMMON_APP_IMAGES", `build them (as root) with: export SUMMON_APP_IMAGES="$(hack/app-images.sh | tail -n 1)" (from the repository root)`)
}

// CNPGCRDs returns the path of CloudNativePG's Cluster CRD, of the release the Cluster child
// targets, which hack/cnpg-crds.sh fetches into the Go module cache.
func CNPGCRDs(t testing.TB) string {
	t.Helper()
	return require(t, "SUMMON_TEST_CNPG_CRDS", `export "$(hack/cnpg-crds.sh)" (from the repository root)`)
}

// KubeAssets returns the directory holding the kube-apiserver, etcd and kubectl that envtest runs
// (KUBEBUILDER_ASSETS). hack/test.sh builds them and sets it.
func KubeAssets(t testing.TB) string {
	t.Helper()
	return require(t, "KUBEBUILDER_ASSETS",
		`run hack/test.sh, which builds kube-apiserver, etcd and kubectl and sets it, or set it yourself: `+
			`export KUBEBUILDER_ASSETS="$(hack/kube-binaries.sh | tail -n 1)"`)
}

// TestCluster returns where the binaries of the real-controller test cluster are
// (internal/testing/testcluster): KUBEBUILDER_ASSETS and SUMMON_KWOK_DIR, both set by hack/test.sh.
func TestCluster(t testing.TB) testcluster.Options {
	t.Helper()
	o, err := testcluster.OptionsFromEnv()
	if err == nil {
		return o
	}
	if os.Getenv("SUMMON_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("%v, and SUMMON_REQUIRE_INTEGRATION=1", err)
	}
	t.Skip(err)
	return o
}

// Metacontroller returns the path of a Metacontroller binary (METACONTROLLER_BIN), or skips.
// No registry serves Metacontroller and CI has none, so this skip stays a skip even when
// SUMMON_REQUIRE_INTEGRATION=1.
func Metacontroller(t testing.TB) string {
	t.Helper()
	const name = "METACONTROLLER_BIN"
	if v := os.Getenv(name); v != "" {
		return v
	}
	t.Skipf("%s is not set; build Metacontroller v4.17 outside the project (DESIGN.md section 8) and point %s at the binary", name, name)
	return ""
}

func lookup(t testing.TB, name, start string) string {
	t.Helper()
	return require(t, name, "start the server with: "+start+" (from the repository root)")
}

// require returns the environment variable name, or skips saying how to set it; under
// SUMMON_REQUIRE_INTEGRATION=1 it fails instead.
func require(t testing.TB, name, how string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if os.Getenv("SUMMON_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("%s is not set and SUMMON_REQUIRE_INTEGRATION=1; %s", name, how)
	}
	t.Skipf("%s is not set; %s", name, how)
	return ""
}

// ClosedAddr returns a loopback host:port that nothing listens on: a system that is down.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Calls counts the calls a test sees reach a real system, by name; safe for concurrent use. The
// zero value is ready.
type Calls struct {
	mu sync.Mutex
	n  map[string]int
}

// Add counts one call.
func (c *Calls) Add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

// Take returns the counts since the last Take (an empty map when there were none).
func (c *Calls) Take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.n
	if out == nil {
		out = map[string]int{}
	}
	c.n = nil
	return out
}

// ExpectFailure checks what a provider answers when its system fails: a classified
// *external.Error of the system (a prefix: "AWS" matches "AWS S3"), as retryable as said, a deadline
// error when deadline is set, and a message that holds none of secrets.
func ExpectFailure(t testing.TB, op string, err error, system string, retryable, deadline bool, secrets ...string) {
	t.Helper()
	t.Logf("%s: %v", op, err)
	var xerr *external.Error
	if !errors.As(err, &xerr) {
		t.Fatalf("%s: want an *external.Error, got %T: %v", op, err, err)
	}
	if !strings.HasPrefix(xerr.System, system) || xerr.Retryable != retryable {
		t.Errorf("%s: classified as %q retryable=%v, want %s retryable=%v: %v", op, xerr.System, xerr.Retryable, system, retryable, err)
	}
	if deadline && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: want a deadline error, got %v", op, err)
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error message holds a secret: %v", op, err)
		}
	}
}

// Eventually polls check every interval until it says done, failing the test after timeout with
// the last state check reported, or at once when broken (if set) reports an error: a test cluster
// whose process died will not get there. It asserts nothing about how long that takes: the timeout
// is only where the test gives up.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, check func(ctx context.Context) (done bool, state string), broken func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for {
		done, state := check(ctx)
		if done {
			return
		}
		if broken != nil {
			if err := broken(); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up after %s waiting for %s; last seen: %s", timeout, what, state)
		case <-time.After(interval):
		}
	}
}
