package integration

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/internal/cli"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/platform"
)

// waveRevisions stand for the builders of the release the fleet runs and of the new hook.
const (
	waveOld = "aaaaaaaaaaaa"
	waveNew = "bbbbbbbbbbbb"
)

// fleetInstance creates a SummonPlatform and writes its status as the hook would for builders
// held on revision (or rolled onto the new one when revision is waveNew). The statuses are
// written here, in place of the hook: what the hook writes is proven in pkg/platform and
// test/waves; this test is about what summonctl makes of them on a real API server.
func fleetInstance(t *testing.T, c client.Client, ns, name string, l map[string]string, revision string, ready bool) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"version": "108912-6e2f8b7-release-2019-8", "image": "registry.example.com/summon-platform"},
	}}
	u.SetLabels(l)
	if err := c.Create(t.Context(), u); err != nil {
		t.Fatalf("creating %s/%s: %v", ns, name, err)
	}
	setFleetStatus(t, c, ns, name, revision, ready)
}

func setFleetStatus(t *testing.T, c client.Client, ns, name, revision string, ready bool) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(v1beta1.APIVersion)
	u.SetKind(v1beta1.Kind)
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	builders := map[string]any{"revision": revision, "available": waveNew}
	if revision != waveNew {
		builders["held"] = true
	}
	status := "False"
	if ready {
		status = "True"
	}
	u.Object["status"] = map[string]any{
		"phase":    "Ready",
		"builders": builders,
		"conditions": []any{map[string]any{
			"type": "Ready", "status": status, "reason": "Ready", "message": "as written by the test",
			"lastTransitionTime": metav1.Now().UTC().Format("2006-01-02T15:04:05Z"),
		}},
	}
	if err := c.Status().Update(t.Context(), u); err != nil {
		t.Fatalf("writing the status of %s/%s: %v", ns, name, err)
	}
}

func TestSummonctlWavesOpenWatchAndStatus(t *testing.T) {
	k := cluster(t)
	k.requireCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	c := k.client(t, nil)
	kubeconfig := k.kubeconfig(t)
	const ns, hookNS = "summon-waves", "summon-waves-system"
	ensureNamespace(t, c, ns)
	ensureNamespace(t, c, hookNS)
	// Other tests' instances share this API server: every command looks at this test's namespace.
	rollout := []string{"--rollout-namespace", hookNS, "-n", ns}

	canary := map[string]string{"tier": "canary"}
	fleetInstance(t, c, ns, "car1", canary, waveOld, true)
	fleetInstance(t, c, ns, "car2", nil, waveOld, true)
	fleetInstance(t, c, ns, "car3", nil, waveOld, true)

	stdout, _, code := summonctl(t, kubeconfig, append([]string{"waves", "status"}, rollout...)...)
	if code != cli.ExitOK || !strings.Contains(stdout, "no wave open") || !strings.Contains(stdout, "3 instances: 3 on "+waveOld+"; 3 held") {
		t.Fatalf("waves status before any wave: exit %d\n%s", code, stdout)
	}

	// Canaries first. The revision is named: other tests' instances on this API server report
	// the revision of today's hook (picking it from the statuses is a unit test's).
	if _, _, code := summonctl(t, kubeconfig, append([]string{"waves", "open", "--percent", "0", "--selector", "tier=canary", "--revision", waveNew}, rollout...)...); code != cli.ExitOK {
		t.Fatalf("waves open: exit %d", code)
	}
	var cm corev1.ConfigMap
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: hookNS, Name: "summon-rollout"}, &cm); err != nil {
		t.Fatalf("waves open wrote no ConfigMap: %v", err)
	}
	var w platform.Wave
	if err := yaml.UnmarshalStrict([]byte(cm.Data["rollout.yaml"]), &w); err != nil {
		t.Fatal(err)
	}
	if want := (platform.Wave{Revision: waveNew, Selector: "tier=canary"}); w != want {
		t.Errorf("the ConfigMap holds %+v, want %+v", w, want)
	}

	// The canary is still held: the watch stops at its deadline, non-zero, and names it.
	watch := append([]string{"waves", "watch", "--timeout", "1s", "--interval", "100ms"}, rollout...)
	_, stderr, code := summonctl(t, kubeconfig, watch...)
	if code != cli.ExitFound || !strings.Contains(stderr, ns+"/car1: still held on revision "+waveOld) || strings.Contains(stderr, "car2") {
		t.Errorf("waves watch of a held canary: exit %d, want %d naming only car1\n%s", code, cli.ExitFound, stderr)
	}

	// The canary rolled and is Ready: the watch is done.
	setFleetStatus(t, c, ns, "car1", waveNew, true)
	if stdout, _, code := summonctl(t, kubeconfig, watch...); code != cli.ExitOK || !strings.Contains(stdout, "1 of 1 instances of the wave rolled and Ready") {
		t.Errorf("waves watch of a rolled canary: exit %d\n%s", code, stdout)
	}

	// Everyone: car2 rolls but never becomes Ready; the rollout stops there.
	if _, _, code := summonctl(t, kubeconfig, append([]string{"waves", "open", "--percent", "100", "--revision", waveNew}, rollout...)...); code != cli.ExitOK {
		t.Fatalf("waves open --percent 100: exit %d", code)
	}
	setFleetStatus(t, c, ns, "car2", waveNew, false)
	setFleetStatus(t, c, ns, "car3", waveNew, true)
	_, stderr, code = summonctl(t, kubeconfig, watch...)
	if code != cli.ExitFound || !strings.Contains(stderr, ns+"/car2: not Ready: as written by the test") || strings.Contains(stderr, "car3") {
		t.Errorf("waves watch with an instance that is not Ready: exit %d\n%s", code, stderr)
	}
	stdout, _, _ = summonctl(t, kubeconfig, append([]string{"waves", "status"}, rollout...)...)
	if !strings.Contains(stdout, "wave open: revision "+waveNew+", 100% of the fleet") || !strings.Contains(stdout, "3 instances: 3 on "+waveNew+"; 0 held") {
		t.Errorf("waves status after the last wave:\n%s", stdout)
	}

	// A wave that can't be: refused before anything is written.
	if _, stderr, code := summonctl(t, kubeconfig, append([]string{"waves", "open", "--percent", "101"}, rollout...)...); code != cli.ExitUsage || !strings.Contains(stderr, "percent 101") {
		t.Errorf("waves open --percent 101: exit %d: %s", code, stderr)
	}
}
