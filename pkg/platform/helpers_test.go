package platform

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// testKey is the credential master key of every test; derived secrets in golden files come
// from it.
var testKey = []byte("summon-test-master-key-0123456789abcdef")

func testEnv(now time.Time) Env {
	d, err := credentials.NewDeriver(testKey)
	if err != nil {
		panic(err)
	}
	return Env{
		Now: now, Defaults: v1beta1.HookDefaults{Image: "registry.example.com/summon-platform"}, Credentials: d,
		Data: DataServices{RedisImage: children.DefaultRedisImage},
	}
}

// testCNPG is the CloudNativePG install of the tests that have one.
var testCNPG = &CNPG{OperatorNamespace: "cnpg-system", RetainStorageClass: "retained"}

// testCNPGSnapshots is a CloudNativePG install whose hook backs own Postgres up with volume
// snapshots (--cnpg-snapshot-class).
var testCNPGSnapshots = &CNPG{OperatorNamespace: "cnpg-system", RetainStorageClass: "retained", SnapshotClass: "csi-snapshots"}

// envFor is the test Env of a hook installed as the simulated cluster is: with CloudNativePG when
// its CompositeController declares CNPG's Cluster, and with its snapshot class when it declares
// CNPG's Backup too.
func envFor(c *sim.Cluster) Env {
	env := testEnv(c.Clock)
	if c.Declares(GroupPostgresCluster) {
		env.Data.CNPG = testCNPG
	}
	if c.Declares(GroupPostgresBackup) {
		env.Data.CNPG = testCNPGSnapshots
	}
	return env
}

type option func(*v1beta1.SummonPlatform)

// platform builds a SummonPlatform for tests: platform("car1-qa", withSpec(...)).
func platform(name string, opts ...option) *v1beta1.SummonPlatform {
	p := &v1beta1.SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "summon-qa"},
		Spec: v1beta1.Spec{
			Version:  "108912-6e2f8b7-release-2019-8",
			Hostname: name + ".example.com",
			Config:   map[string]v1beta1.ConfigValue{"DEBUG": v1beta1.BoolValue(true)},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withSpec(edit func(*v1beta1.Spec)) option {
	return func(p *v1beta1.SummonPlatform) { edit(&p.Spec) }
}

// hook is Sync with the test Env, at the cluster's clock.
func hook(c *sim.Cluster) func(*metacontroller.SyncRequest) *metacontroller.SyncResponse {
	return func(req *metacontroller.SyncRequest) *metacontroller.SyncResponse {
		return Sync(req, envFor(c))
	}
}

func status(t *testing.T, resp *metacontroller.SyncResponse) v1beta1.Status {
	t.Helper()
	st, ok := resp.Status.(v1beta1.Status)
	if !ok {
		t.Fatalf("status is a %T, not a v1beta1.Status", resp.Status)
	}
	return st
}

func containerFor(version string) corev1.Container {
	return corev1.Container{Name: "beat", Image: "registry.example.com/summon-platform:" + version, Command: []string{"celery", "beat"}}
}

// droppedWorkloads lists the observed Deployments and StatefulSets that a response leaves out,
// which Metacontroller would delete.
func droppedWorkloads(req *metacontroller.SyncRequest, resp *metacontroller.SyncResponse) []string {
	kept := map[childRef]bool{}
	for _, obj := range resp.Children {
		kept[refOf(obj)] = true
	}
	var dropped []string
	for _, g := range []string{GroupDeployment, GroupStatefulSet} {
		for _, obj := range req.Children[g] {
			if !kept[refOf(obj)] {
				dropped = append(dropped, g+" "+nameOf(obj))
			}
		}
	}
	return dropped
}
