package cli

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/platform"
)

func configSecret(file string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "car1-qa-config"},
		"data": map[string]any{children.ConfigFileName: base64.StdEncoding.EncodeToString([]byte(file)), "other": "c2VjcmV0"}}
}

func TestSecretsAreMaskedAsKubectlDiffMasksThem(t *testing.T) {
	before := configSecret("DEBUG: true\nSECRET_KEY: abc\nGONE: x\n")
	after := configSecret("DEBUG: false\nSECRET_KEY: abc\nNEW: y\n")
	after["data"].(map[string]any)["other"] = "b3RoZXI="
	b, a := maskSecretPair(before, after)
	wantB := map[string]any{children.ConfigFileName: map[string]any{"DEBUG": maskedBefore, "SECRET_KEY": masked, "GONE": masked}, "other": maskedBefore}
	wantA := map[string]any{children.ConfigFileName: map[string]any{"DEBUG": maskedAfter, "SECRET_KEY": masked, "NEW": masked}, "other": maskedAfter}
	if diff := cmp.Diff(wantB, b["data"]); diff != "" {
		t.Errorf("before (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantA, a["data"]); diff != "" {
		t.Errorf("after (-want +got):\n%s", diff)
	}
	if strings.Contains(before["data"].(map[string]any)["other"].(string), "*") {
		t.Error("masking changed its input")
	}
	one := maskSecret(configSecret("not: [a mapping"))
	if got := one["data"].(map[string]any)[children.ConfigFileName]; got != masked {
		t.Errorf("an unreadable config file is masked whole, got %v", got)
	}
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"k": "v"}}
	if got := maskSecret(cm); got["data"].(map[string]any)["k"] != "v" {
		t.Error("a ConfigMap was masked")
	}
}

func workload(kind, component, version, hash string) map[string]any {
	return map[string]any{"apiVersion": "apps/v1", "kind": kind, "metadata": map[string]any{"name": "car1-qa-" + component,
		"labels": map[string]any{children.LabelComponent: component}},
		"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
			"labels":      map[string]any{children.LabelVersion: version},
			"annotations": map[string]any{children.AnnotationConfigHash: hash},
		}}}}
}

func TestDiffSummarySaysWhatASyncWillDo(t *testing.T) {
	job := map[string]any{"apiVersion": "batch/v1", "kind": "Job", "metadata": map[string]any{"name": "car1-qa-migrate-1a2b3c4d",
		"labels": map[string]any{children.LabelComponent: "migrations", children.LabelVersion: "v2"}}}
	ready := v1beta1.Status{Phase: v1beta1.PhaseReady, Message: "version v1 is ready"}
	tests := map[string]struct {
		version string
		after   v1beta1.Status
		changes []change
		want    []string
	}{
		"a version bump starts the Job and keeps the workloads": {
			version: "v2", after: v1beta1.Status{Phase: v1beta1.PhaseMigrating, Message: "starting the migrations of version v2"},
			changes: []change{
				{kind: "Job", key: "ns/j", after: job},
				{kind: "StatefulSet", before: workload("StatefulSet", "celerybeat", "v1", "h"), after: workload("StatefulSet", "celerybeat", "v1", "h")},
				{kind: "Deployment", before: workload("Deployment", "web", "v1", "h"), after: workload("Deployment", "web", "v1", "h")},
			},
			want: []string{
				"starts Job car1-qa-migrate-1a2b3c4d: the migrations of version v2",
				"web, celerybeat keep running v1 until it succeeds",
				"phase Ready → Migrating: starting the migrations of version v2",
			},
		},
		"a migrated version rolls the workloads": {
			version: "v2", after: v1beta1.Status{Phase: v1beta1.PhaseDeploying, Message: "rolling out"},
			changes: []change{
				{kind: "Deployment", before: workload("Deployment", "web", "v1", "h"), after: workload("Deployment", "web", "v2", "h")},
				{kind: "Job", key: "ns/j", before: job},
			},
			want: []string{"rolls web to version v2", "deletes Job car1-qa-migrate-1a2b3c4d", "phase Ready → Deploying: rolling out"},
		},
		"a config change restarts the pods": {
			version: "v1", after: ready,
			changes: []change{{kind: "Deployment", before: workload("Deployment", "static", "v1", "h1"), after: workload("Deployment", "static", "v1", "h2")}},
			want:    []string{"restarts the pods of static: the app config changed"},
		},
		"nothing changing says nothing": {
			version: "v1", after: ready,
			changes: []change{{kind: "Deployment", before: workload("Deployment", "web", "v1", "h"), after: workload("Deployment", "web", "v1", "h")}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := diffSummary(tc.version, ready, tc.after, tc.changes)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestComparableLeavesOutWhatTheServerOwns(t *testing.T) {
	live := map[string]any{"apiVersion": "v1", "kind": "Service", "status": map[string]any{"x": 1},
		"metadata": map[string]any{"name": "s", "uid": "u", "resourceVersion": "1", "generation": int64(2), "creationTimestamp": "t",
			"managedFields": []any{}, "ownerReferences": []any{},
			"annotations": map[string]any{"metacontroller.k8s.io/last-applied-configuration": "{}", kubectlLastApplied: "{}"},
			"labels":      map[string]any{"controller-uid": "u", "app": "a"}}}
	want := map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "s", "labels": map[string]any{"app": "a"}}}
	if diff := cmp.Diff(want, comparable(live)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	c := change{kind: "Service", key: "ns/s", before: live, after: deepCopyJSON(live)}
	c.after["metadata"].(map[string]any)["resourceVersion"] = "2"
	if text, _ := c.unified(); text != "" {
		t.Errorf("a change of server-owned fields only is a diff:\n%s", text)
	}
}

func TestStatusTableShowsAnInstanceAtAGlance(t *testing.T) {
	created := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	jobName := children.NamesFor("car1-qa").MigrationJob("v2", 0)
	p := map[string]any{"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": "car1-qa", "namespace": "qa", "generation": int64(3), "creationTimestamp": created.Format(time.RFC3339)},
		"spec":     map[string]any{"version": "v2"},
		"status": map[string]any{"phase": "Migrating", "migratedVersion": "v1", "deployedVersion": "v1",
			"components": map[string]any{"web": map[string]any{"desired": int64(2), "ready": int64(2), "updated": int64(2), "version": "v1"}},
			"conditions": []any{map[string]any{"type": "Ready", "status": "False", "observedGeneration": int64(3), "reason": "Migrating",
				"message": "running the migrations of version v2", "lastTransitionTime": created.Format(time.RFC3339)}}}}
	jobs := []batchv1.Job{{ObjectMeta: metav1.ObjectMeta{Name: jobName, Namespace: "qa"}, Status: batchv1.JobStatus{Active: 1}}}
	got, err := statusTables([]map[string]any{p}, jobs, created.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := `qa/car1-qa
  phase       Migrating   age 3h
  version     wanted v2 · migrated v1 · deployed v1
  components  web 2/2 on v1 · daphne - · channel-worker - · celeryd - · celerybeat - · static -
  migration   Job ` + jobName + `: Running (1 pod)
  ready       False: running the migrations of version v2
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestRetryPatchOnlyForAFailedMigrationOfTheCurrentGeneration(t *testing.T) {
	platformWith := func(reason string, observed int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
			"metadata": map[string]any{"name": "car1-qa", "namespace": "qa", "generation": int64(4), "resourceVersion": "77"},
			"spec":     map[string]any{"version": "v2", "migrations": map[string]any{"attempt": int64(2)}},
			"status": map[string]any{"phase": "Error", "message": "failed", "conditions": []any{map[string]any{"type": "Migrated", "status": "False",
				"reason": reason, "observedGeneration": observed, "message": "m", "lastTransitionTime": "2026-11-27T09:00:00Z"}}}}}
	}
	patch, next, err := retryPatch(platformWith(platform.ReasonMigrationFailed, 4))
	if err != nil || next != 3 || string(patch) != `{"metadata":{"resourceVersion":"77"},"spec":{"migrations":{"attempt":3}}}` {
		t.Errorf("patch %s, next %d, err %v", patch, next, err)
	}
	if _, _, err := retryPatch(platformWith("Migrating", 4)); err == nil || !strings.Contains(err.Error(), "no failed migration to retry") {
		t.Errorf("a running migration is not retried: %v", err)
	}
	if _, _, err := retryPatch(platformWith(platform.ReasonMigrationFailed, 3)); err == nil || !strings.Contains(err.Error(), "generation 3") {
		t.Errorf("a failure seen for an older spec is not retried: %v", err)
	}
}

// The test cluster has no kubelet, so no exec runs here: this checks the request the exec commands
// build (the integration tests send it to the real API server, which refuses a pod no node runs).
func TestExecRequestNamesThePodContainerCommandAndStreams(t *testing.T) {
	// A client of a cluster that is never called: only the request's URL is built.
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "https://kube.example:6443"})
	if err != nil {
		t.Fatal(err)
	}
	client := cs.CoreV1().RESTClient()
	for name, tc := range map[string]struct {
		tty  bool
		want url.Values
	}{
		"with a terminal, stderr is merged into it": {tty: true, want: url.Values{"container": {"web"}, "command": {"python", "manage.py", "shell"}, "stdin": {"true"}, "stdout": {"true"}, "tty": {"true"}}},
		"without one, stderr is its own stream":     {tty: false, want: url.Values{"container": {"web"}, "command": {"python", "manage.py", "shell"}, "stdin": {"true"}, "stdout": {"true"}, "stderr": {"true"}}},
	} {
		t.Run(name, func(t *testing.T) {
			u := execURL(client, "qa", "car1-qa-web-0", "web", pyshellCommand, tc.tty)
			if !strings.HasSuffix(u.Path, "/namespaces/qa/pods/car1-qa-web-0/exec") {
				t.Errorf("path %s", u.Path)
			}
			if diff := cmp.Diff(tc.want, u.Query()); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
		})
	}
	if got := logOptions(children.Celeryd, true, 20); got.Container != "celeryd" || !got.Follow || *got.TailLines != 20 {
		t.Errorf("log options %+v", got)
	}
}

func TestPickPodTakesAReadyPodThatStays(t *testing.T) {
	at := func(h int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, h, 0, 0, 0, time.UTC)) }
	pod := func(name string, ready bool, created metav1.Time, deleting bool) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: created}}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
		if deleting {
			p.DeletionTimestamp = &created
		}
		return p
	}
	pods := []corev1.Pod{pod("new", true, at(5), false), pod("old-going", true, at(1), true), pod("old", true, at(2), false), pod("unready", false, at(0), false)}
	if got, err := pickPod(pods, children.Web); err != nil || got.Name != "old" {
		t.Errorf("picked %v (%v), want the oldest ready pod that is not going away", got, err)
	}
	if got, err := pickPod(pods, children.Migrations); err != nil || got.Name != "new" {
		t.Errorf("picked %v (%v), want the newest migration pod", got, err)
	}
	if _, err := pickPod([]corev1.Pod{pod("unready", false, at(0), false)}, children.Web); err == nil || !strings.Contains(err.Error(), "no ready pod of web") {
		t.Errorf("no ready pod: %v", err)
	}
}

func TestPsqlGetsTheURLWithoutItsPassword(t *testing.T) {
	c, err := psqlConnection("postgres://car1:p%40ss:w0rd@db.internal:5432/car1?sslmode=require", "127.0.0.1", "15432")
	if err != nil {
		t.Fatal(err)
	}
	if c.url != "postgres://car1@127.0.0.1:15432/car1?sslmode=require" || c.password != "p@ss:w0rd" {
		t.Errorf("got %+v", c)
	}
	if got := passFileLine(`a:b\c`); got != `*:*:*:*:a\:b\\c`+"\n" {
		t.Errorf("password file line %q", got)
	}
	if _, err := psqlConnection("mysql://x:y@h/d", "", ""); err == nil || strings.Contains(err.Error(), "y@h") {
		t.Errorf("a non-postgres URL: %v", err)
	}
	if _, err := databaseURL([]byte("DEBUG: true\n")); err == nil {
		t.Error("a config file without DATABASE_URL was read")
	}
}

func TestClientEnvReadsSecretsBackAndStandsInForTheRest(t *testing.T) {
	file := "SECRET_KEY: the-live-key\nDATABASE_URL: postgres://r:the-db-password@h:5432/d\n"
	env, stand, err := clientEnv(platform.HookProfile{CredentialKey: true}, time.Time{}, []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if got := env.Credentials.Derive("u", credentials.DjangoSecretKey); got != "the-live-key" {
		t.Errorf("SECRET_KEY %q", got)
	}
	if got := env.Credentials.Derive("u", credentials.DatabasePassword); got != "the-db-password" {
		t.Errorf("database password %q", got)
	}
	if got := env.Credentials.Derive("u", credentials.RabbitMQPassword); got != (credentials.Placeholder{}).Derive("u", credentials.RabbitMQPassword) {
		t.Errorf("a secret the file lacks should be the placeholder, got %q", got)
	}
	if diff := cmp.Diff([]string{credentials.RabbitMQPassword}, stand.purposes); diff != "" {
		t.Errorf("stand-ins (-want +got):\n%s", diff)
	}
	env, _, _ = clientEnv(platform.HookProfile{}, time.Time{}, []byte(file))
	if env.Credentials.Ready() {
		t.Error("a hook without a key generates nothing; the client must not either")
	}
}

func TestExitCodesAndTheKubectlPluginName(t *testing.T) {
	if _, _, code := run(t, "no-such-command"); code != ExitUsage {
		t.Errorf("an unknown command: exit %d", code)
	}
	if _, _, code := run(t, "lint", "--no-such-flag", "x"); code != ExitUsage {
		t.Errorf("an unknown flag: exit %d", code)
	}
	if _, _, code := run(t, "lint"); code != ExitUsage {
		t.Errorf("lint without a file: exit %d", code)
	}
	if _, _, code := run(t, "lint", "no-such-file.yaml"); code != ExitFailed {
		t.Errorf("lint of a missing file: exit %d", code)
	}
	out, _, code := run(t, "--help")
	if code != ExitOK || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "summonctl lint instances/") {
		t.Errorf("--help: exit %d:\n%s", code, out)
	}
	if got := commandName("/usr/local/bin/kubectl-summon"); got != "kubectl summon" {
		t.Errorf("as a kubectl plugin the command is %q", got)
	}
	for _, sub := range []string{"render", "lint", "new", "diff", "status", "doctor", "shell", "pyshell", "logs", "dbshell", "retry-migration", "restart"} {
		out, _, code := run(t, sub, "--help")
		if code != ExitOK || !strings.Contains(out, "Examples:\n  ") {
			t.Errorf("%s --help has no example (exit %d)", sub, code)
		}
	}
}

func TestPathSegmentsOfFieldPaths(t *testing.T) {
	for path, want := range map[string][]string{
		"spec.version":    {"spec", "version"},
		"spec.aliases[1]": {"spec", "aliases", "1"},
		"spec.ingress.annotations[cert-manager.io/x]": {"spec", "ingress", "annotations", "cert-manager.io/x"},
		"": nil,
	} {
		if diff := cmp.Diff(want, pathSegments(path)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", path, diff)
		}
	}
}
