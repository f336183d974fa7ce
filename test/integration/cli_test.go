package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/forklift-dev/summon/internal/cli"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// cliSetup is a cluster with Summon's CRD, the hook of this process behind a Service, and an
// admin kubeconfig for summonctl.
type cliSetup struct {
	k          kube
	c          client.Client
	kubeconfig string
	hook       *hookServer
	mc         *standIn
}

func newCLISetup(t *testing.T) *cliSetup {
	t.Helper()
	k := cluster(t)
	k.requireCRDs(t, repoFile(t, "manifests", "crd.yaml"))
	k.requireCRDs(t, metacontrollerCRDs(t))
	c := k.client(t, nil)
	hook := startHookServer(t)
	exposeHook(t, c, hook.url)
	return &cliSetup{k: k, c: c, kubeconfig: k.kubeconfig(t), hook: hook, mc: &standIn{t: t, c: c, hookURL: hook.url, token: hook.token}}
}

func (s *cliSetup) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return summonctl(t, s.kubeconfig, args...)
}

// apply creates the SummonPlatform of a file as kubectl apply would (with its last-applied
// annotation, as Argo CD's default apply leaves it).
func (s *cliSetup) apply(t *testing.T, file string) {
	t.Helper()
	if _, stderr, err := s.k.kubectl(t, s.kubeconfig, nil, "apply", "-f", file); err != nil {
		t.Fatalf("kubectl apply -f %s: %v\n%s", file, err, stderr)
	}
}

func configSecretKey(t *testing.T, c client.Client, ns string) string {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: children.NamesFor("car1-qa").Config()}, &s); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(s.Data[children.ConfigFileName]), "\n") {
		if v, ok := strings.CutPrefix(line, "SECRET_KEY: "); ok {
			return strings.Trim(v, `"'`)
		}
	}
	t.Fatal("the config file has no SECRET_KEY")
	return ""
}

// The review a GitOps pull request needs: the same file against a converged instance is an empty
// diff (the CLI has no credential key, so the generated secrets and the config hash come from the
// live config Secret), and a version bump says which Job starts and which workloads keep the old
// version, with no secret value anywhere in the output.
func TestSummonctlDiffOfAConvergedInstance(t *testing.T) {
	s := newCLISetup(t)
	file, qa := qaIn(t, s.c, "summon-cli-diff")
	ns := qa.GetNamespace()
	key := client.ObjectKey{Namespace: ns, Name: qa.GetName()}
	s.apply(t, file)
	version, _, _ := unstructured.NestedString(qa.Object, "spec", "version")
	s.mc.converge(key, version)

	stdout, _, code := s.run(t, append([]string{"diff", "-f", file}, hookFlags...)...)
	if code != cli.ExitOK || stdout != "" {
		t.Errorf("diff of the applied file against the converged instance: exit %d, want 0 and no output:\n%s", code, stdout)
	}

	secret := configSecretKey(t, s.c, ns)
	bumped := qa.DeepCopy()
	const v2 = "109004-a41c9d0-release-2019-9"
	_ = unstructured.SetNestedField(bumped.Object, v2, "spec", "version")
	stdout, _, code = s.run(t, append([]string{"diff", "-f", writePlatformFile(t, bumped)}, hookFlags...)...)
	if code != cli.ExitFound {
		t.Errorf("diff of a version bump: exit %d, want %d", code, cli.ExitFound)
	}
	job := children.NamesFor("car1-qa").MigrationJob(v2, 0)
	for _, want := range []string{
		"-  version: " + version, "+  version: " + v2,
		"diff Job " + ns + "/" + job,
		"#   starts Job " + job + ": the migrations of version " + v2,
		"#   web, daphne, channel-worker, celeryd, celerybeat, static keep running " + version + " until it succeeds",
		"#   phase Ready → Migrating",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the diff of a version bump lacks %q", want)
		}
	}
	if strings.Contains(stdout, "diff Deployment") || strings.Contains(stdout, "diff StatefulSet") {
		t.Errorf("a version bump must not touch a workload before its migration succeeds:\n%s", stdout)
	}

	changed := qa.DeepCopy()
	_ = unstructured.SetNestedField(changed.Object, "Car One", "spec", "config", "SITE_NAME")
	stdout, _, code = s.run(t, append([]string{"diff", "-f", writePlatformFile(t, changed)}, hookFlags...)...)
	if code != cli.ExitFound {
		t.Errorf("diff of a config change: exit %d, want %d", code, cli.ExitFound)
	}
	for _, want := range []string{"+    SITE_NAME: '***'", "     SECRET_KEY: '***'", "#   restarts the pods of web, daphne, channel-worker, celeryd, celerybeat, static: the app config changed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the diff of a config change lacks %q", want)
		}
	}
	if strings.Contains(stdout, secret) || strings.Contains(stdout, base64.StdEncoding.EncodeToString([]byte(secret))[:20]) {
		t.Errorf("the diff shows the SECRET_KEY")
	}
}

// status prints one table per instance from the live status and the migration Job, -o yaml the
// objects; restart rolls the pods through the pod template, and the next sync keeps it; and
// retry-migration refuses an instance whose migration did not fail.
func TestSummonctlStatusRestartAndRetryOfAReadyInstance(t *testing.T) {
	s := newCLISetup(t)
	file, qa := qaIn(t, s.c, "summon-cli-status")
	ns := qa.GetNamespace()
	key := client.ObjectKey{Namespace: ns, Name: qa.GetName()}
	s.apply(t, file)
	version, _, _ := unstructured.NestedString(qa.Object, "spec", "version")
	s.mc.converge(key, version)

	stdout, _, code := s.run(t, "status", "-n", ns)
	if code != cli.ExitOK {
		t.Fatalf("status: exit %d", code)
	}
	for _, want := range []string{
		ns + "/car1-qa\n", "phase       Ready", "wanted " + version + " · migrated " + version + " · deployed " + version,
		"web 1/1 · daphne 1/1 · channel-worker 1/1 · celeryd 1/1 · celerybeat 1/1 · static 1/1",
		"ready       True: version " + version + " is ready",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	stdout, _, code = s.run(t, "status", "car1-qa", "-n", ns, "-o", "yaml")
	if code != cli.ExitOK || !strings.Contains(stdout, "kind: SummonPlatform") || !strings.Contains(stdout, "phase: Ready") {
		t.Errorf("status -o yaml: exit %d:\n%s", code, stdout)
	}
	if _, stderr, code := s.run(t, "status", "car2-qa", "-n", ns); code != cli.ExitFailed || !strings.Contains(stderr, `no SummonPlatform "car2-qa" in namespace "`+ns+`"`) {
		t.Errorf("status of a missing instance: exit %d: %s", code, stderr)
	}

	if _, stderr, code := s.run(t, "retry-migration", "car1-qa", "-n", ns); code != cli.ExitFailed || !strings.Contains(stderr, "has no failed migration to retry (phase Ready") {
		t.Errorf("retry-migration of a Ready instance: exit %d: %s", code, stderr)
	}

	if _, _, code := s.run(t, "restart", "car1-qa", "web", "-n", ns); code != cli.ExitOK {
		t.Fatalf("restart: exit %d", code)
	}
	web := children.NamesFor("car1-qa").Of(children.Web)
	restartedAt := func() string {
		var d appsv1.Deployment
		if err := s.c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: web}, &d); err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Annotations[cli.RestartedAtAnnotation]
	}
	stamp := restartedAt()
	if stamp == "" {
		t.Fatalf("restart did not annotate the pod template of %s", web)
	}
	s.mc.sync(key)
	if got := restartedAt(); got != stamp {
		t.Errorf("the next sync changed the restart annotation from %q to %q", stamp, got)
	}
	if stdout, _, code := s.run(t, append([]string{"diff", "-f", file}, hookFlags...)...); code != cli.ExitOK {
		t.Errorf("after a restart the file still matches the instance; diff: exit %d\n%s", code, stdout)
	}
}

// A failed migration, retried: retry-migration raises spec.migrations.attempt, and the next sync
// starts the Job of that attempt.
func TestSummonctlRetriesAFailedMigration(t *testing.T) {
	s := newCLISetup(t)
	file, qa := qaIn(t, s.c, "summon-cli-retry")
	ns := qa.GetNamespace()
	key := client.ObjectKey{Namespace: ns, Name: qa.GetName()}
	s.apply(t, file)
	version, _, _ := unstructured.NestedString(qa.Object, "spec", "version")
	s.mc.converge(key, version)

	const v2 = "109004-a41c9d0-release-2019-9"
	bumped := qa.DeepCopy()
	_ = unstructured.SetNestedField(bumped.Object, v2, "spec", "version")
	s.apply(t, writePlatformFile(t, bumped))
	s.mc.sync(key)
	names := children.NamesFor("car1-qa")
	failJob(t, s.c, ns, names.MigrationJob(v2, 0))
	if st := s.mc.sync(key); st.Phase != v1beta1.PhaseError {
		t.Fatalf("phase %s after the failed Job, want Error: %s", st.Phase, st.Message)
	}

	stdout, _, code := s.run(t, "retry-migration", "car1-qa", "-n", ns)
	if code != cli.ExitOK || !strings.Contains(stdout, "to 1: the hook starts Job "+names.MigrationJob(v2, 1)) {
		t.Fatalf("retry-migration: exit %d:\n%s", code, stdout)
	}
	p := &unstructured.Unstructured{}
	p.SetAPIVersion(v1beta1.APIVersion)
	p.SetKind(v1beta1.Kind)
	if err := s.c.Get(t.Context(), key, p); err != nil {
		t.Fatal(err)
	}
	if attempt, _, _ := unstructured.NestedInt64(p.Object, "spec", "migrations", "attempt"); attempt != 1 {
		t.Errorf("spec.migrations.attempt is %d, want 1", attempt)
	}
	s.mc.sync(key)
	var job batchv1.Job
	if err := s.c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: names.MigrationJob(v2, 1)}, &job); err != nil {
		t.Errorf("the retried Job: %v", err)
	}
	// Argo CD's next sync applies the Git file again, which never set the attempt: kubectl
	// apply's three-way merge leaves it.
	s.apply(t, writePlatformFile(t, bumped))
	if err := s.c.Get(t.Context(), key, p); err != nil {
		t.Fatal(err)
	}
	if attempt, _, _ := unstructured.NestedInt64(p.Object, "spec", "migrations", "attempt"); attempt != 1 {
		t.Errorf("applying the Git file again reset spec.migrations.attempt to %d", attempt)
	}
	if stdout, _, code := s.run(t, append([]string{"diff", "-f", writePlatformFile(t, bumped)}, hookFlags...)...); strings.Contains(stdout, "attempt") {
		t.Errorf("diff (exit %d) says the Git file would change the attempt:\n%s", code, stdout)
	}
}

// The exec commands build the API server's exec and log requests for a ready pod of the
// component. This cluster has no kubelet, so no exec happens: the API server refuses a pod that
// no node runs, and that refusal shows the request reached it for that pod.
func TestSummonctlExecAndLogsReachTheAPIServerForAReadyPod(t *testing.T) {
	s := newCLISetup(t)
	file, qa := qaIn(t, s.c, "summon-cli-exec")
	ns := qa.GetNamespace()
	s.apply(t, file)
	if _, stderr, code := s.run(t, "shell", "car1-qa", "-n", ns); code != cli.ExitFailed || !strings.Contains(stderr, "no ready pod of web") {
		t.Errorf("shell without a pod: exit %d: %s", code, stderr)
	}
	pod := notRunningPod(ns, "car1-qa-web-0", "web", children.SelectorLabels("car1-qa", children.Web), "10.0.0.7")
	createPodWithStatus(t, s.c, pod)
	for _, args := range [][]string{
		{"shell", "car1-qa", "-n", ns},
		{"pyshell", "car1-qa", "-n", ns},
		{"shell", "car1-qa", "web", "-n", ns, "--", "python", "manage.py", "check"},
	} {
		_, stderr, code := s.run(t, args...)
		if code != cli.ExitFailed || !strings.Contains(stderr, "car1-qa-web-0") || !strings.Contains(stderr, "does not have a host assigned") {
			t.Errorf("%v: exit %d, want the API server's refusal for a pod without a node: %s", args, code, stderr)
		}
	}
	// For the logs of a pod that no node runs the API server answers with none at all.
	if stdout, stderr, code := s.run(t, "logs", "car1-qa", "-n", ns, "--tail", "5"); code != cli.ExitOK || stdout != "" {
		t.Errorf("logs: exit %d, want 0 and nothing from a pod without a node: %s%s", code, stdout, stderr)
	}
	if _, stderr, code := s.run(t, "shell", "car9", "-n", ns); code != cli.ExitFailed || !strings.Contains(stderr, `no SummonPlatform "car9"`) {
		t.Errorf("shell of a missing instance: exit %d: %s", code, stderr)
	}
}

// doctor fails each check whose part is missing, with its fix, and passes once everything is
// there: the CRDs, a Metacontroller pod (an object no kubelet runs, Ready by its status), the
// CompositeController pointing at the hook's Service with a ready endpoint, the hook's /readyz
// through the service proxy, and the credential-key Secret.
func TestSummonctlDoctor(t *testing.T) {
	s := newCLISetup(t)
	stdout, _, code := s.run(t, append([]string{"doctor"}, hookFlags...)...)
	if code != cli.ExitFound {
		t.Errorf("doctor before the install: exit %d, want %d", code, cli.ExitFound)
	}
	for _, want := range []string{"✅ kubeconfig", "✅ API server", "✅ SummonPlatform CRD", "❌ CompositeController summon", "❌ credential key", "fix: create it once"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("doctor before the install lacks %q", want)
		}
	}

	ensureNamespace(t, s.c, "metacontroller")
	createPodWithStatus(t, s.c, notRunningPod("metacontroller", "metacontroller-0", "metacontroller", map[string]string{"app.kubernetes.io/name": "metacontroller"}, "10.0.0.9"))
	cc := readObjects(t, repoFile(t, "manifests", "compositecontroller.yaml"))[0]
	for _, hook := range []string{"customize", "sync", "finalize"} {
		_ = unstructured.SetNestedField(cc.Object, cliHookNamespace, "spec", "hooks", hook, "webhook", "service", "namespace")
	}
	if err := s.c.Create(t.Context(), cc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.c.Delete(context.Background(), cc) })
	key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "summon-credential-key", Namespace: cliHookNamespace},
		StringData: map[string]string{"key": strings.Repeat("k", 48)}}
	if err := s.c.Create(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.c.Delete(context.Background(), key) })

	stdout, _, code = s.run(t, append([]string{"doctor"}, hookFlags...)...)
	if code != cli.ExitOK || strings.Contains(stdout, "❌") {
		t.Errorf("doctor after the install: exit %d:\n%s", code, stdout)
	}
	for _, want := range []string{
		"✅ Metacontroller CRDs", "✅ Metacontroller pods: metacontroller/metacontroller-0 ready",
		"✅ CompositeController summon: its sync hook is Service " + cliHookNamespace + "/summon",
		"✅ hook endpoints: Service " + cliHookNamespace + "/summon has 1 ready endpoint(s)",
		`✅ hook /readyz: Service ` + cliHookNamespace + `/summon, port ops answers "ready"`,
		"✅ credential key: Secret " + cliHookNamespace + "/summon-credential-key holds a key (its value is not shown)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("doctor after the install lacks %q", want)
		}
	}
	if strings.Contains(stdout, strings.Repeat("k", 48)) {
		t.Error("doctor printed the credential key")
	}
	_, _, code = s.run(t, "doctor", "--hook-namespace", cliHookNamespace, "--hook-port", "nope")
	if code != cli.ExitFound {
		t.Errorf("doctor with a wrong hook port: exit %d", code)
	}
}

// lockedBuffer is a buffer a command writes to while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// status -w follows the instance through a watch: piped, it prints a line per change (the state
// it finds, the apply of a new version, the sync that moves the phase) and nothing when nothing
// changed; it stops when interrupted.
func TestSummonctlStatusWatchPrintsALinePerChange(t *testing.T) {
	s := newCLISetup(t)
	file, qa := qaIn(t, s.c, "summon-cli-watch")
	ns := qa.GetNamespace()
	key := client.ObjectKey{Namespace: ns, Name: qa.GetName()}
	s.apply(t, file)
	version, _, _ := unstructured.NestedString(qa.Object, "spec", "version")
	s.mc.converge(key, version)

	ctx, cancel := context.WithCancel(t.Context())
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.MainContext(ctx, []string{"summonctl", "--kubeconfig", s.kubeconfig, "status", "car1-qa", "-n", ns, "-w"},
			genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: out, ErrOut: out})
	}()
	lineWith := func(what string) {
		t.Helper()
		eventually(t, 30*time.Second, "a status line with "+what, func(context.Context) (bool, string) {
			return strings.Contains(out.String(), what), out.String()
		})
	}
	lineWith(ns + "/car1-qa  Ready")
	const v2 = "109004-a41c9d0-release-2019-9"
	bumped := qa.DeepCopy()
	_ = unstructured.SetNestedField(bumped.Object, v2, "spec", "version")
	s.apply(t, writePlatformFile(t, bumped))
	s.mc.sync(key)
	lineWith(ns + "/car1-qa  Migrating  wanted=" + v2)
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Errorf("status -w ended with exit %d:\n%s", code, out.String())
	}
	// Three changes: the state found, the apply of the new version, the sync that starts its
	// migration.
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Errorf("status -w printed %d lines, want one per change (3):\n%s", n, out.String())
	}
}

// TestSummonctlDashboardServesTheFleet runs `summonctl dashboard` as a user would, with the test
// kubeconfig, and reads its fleet page once its informers have synced; an interrupt (the
// context) stops it cleanly. The pages themselves are tested in internal/dashboard and in a real
// browser in internal/dashboard/clustertest.
func TestSummonctlDashboardServesTheFleet(t *testing.T) {
	s := newCLISetup(t)
	_, qa := qaIn(t, s.c, "summon-cli-dashboard")
	if err := s.c.Create(t.Context(), qa); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(loopback, freePort(t))
	ctx, stop := context.WithCancel(t.Context())
	var out, errOut bytes.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- cli.MainContext(ctx, []string{"summonctl", "--kubeconfig", s.kubeconfig, "dashboard", "--listen", addr},
			genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	}()
	eventually(t, time.Minute, "the dashboard's fleet page", func(ctx context.Context) (bool, string) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), qa.GetName()), fmt.Sprintf("%d: %.200s", resp.StatusCode, body)
	})
	stop()
	select {
	case code := <-exited:
		if code != cli.ExitOK {
			t.Errorf("summonctl dashboard exited %d after an interrupt:\n%s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("summonctl dashboard did not stop after an interrupt")
	}
}

// freePort is a free TCP port on 127.0.0.1.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
