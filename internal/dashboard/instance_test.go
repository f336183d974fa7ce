package dashboard

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/forklift-dev/summon/internal/testing/fleettest"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

const (
	v1 = "108912-6e2f8b7-release-2019-8"
	v2 = "109004-a41c9d0-release-2019-9"
)

func spec(name string) *v1beta1.SummonPlatform {
	return &v1beta1.SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "summon-qa"},
		Spec: v1beta1.Spec{
			Version:  v1,
			Hostname: name + ".example.com",
			Aliases:  []string{"www." + name + ".example.com"},
			Config:   map[string]v1beta1.ConfigValue{"DEBUG": v1beta1.BoolValue(true), "TIME_ZONE": v1beta1.StringValue("Europe/Berlin")},
			Secrets:  []string{name + "-inputs"},
		},
	}
}

// componentSummary is what a component row says, in one line.
func componentSummary(rows []componentRow) []string {
	var out []string
	for _, r := range rows {
		status := "no status"
		if r.Status != nil {
			status = fmt.Sprintf("status %d/%d %s", r.Status.Ready, r.Status.Desired, r.Status.Version)
		}
		out = append(out, fmt.Sprintf("%s: %s %s %d/%d %s; %s", r.Component, r.Kind, r.Workload, r.Ready, r.Desired, r.Version, status))
	}
	return out
}

func TestAFailedUpgradeShowsTheFailedJobWhileTheOldVersionServes(t *testing.T) {
	in := fleettest.New(spec("car1-qa"), now.Add(-time.Hour)).Ready().Upgrade(v2).MigrationFailed()
	m := instancePage(observed(t, in), now)

	if m.Phase != "Error" || !m.MigrationFailed || m.Wanted != v2 || m.Migrated != v1 || m.Deployed != v1 {
		t.Errorf("phase %s (migration failed %v), versions %s/%s/%s", m.Phase, m.MigrationFailed, m.Wanted, m.Migrated, m.Deployed)
	}
	if !strings.Contains(m.Message, "BackoffLimitExceeded") {
		t.Errorf("the message doesn't say why the migration failed: %q", m.Message)
	}
	job := children.NamesFor("car1-qa").MigrationJob(v2, 0)
	wantJobs := []jobRow{{
		Name: job, Version: v2, Attempt: 0, State: "Failed", StateClass: "job-failed",
		Reason:        "BackoffLimitExceeded: Job has reached the specified backoff limit",
		Current:       true,
		KubectlLogs:   "kubectl logs job/" + job + " -n summon-qa",
		SummonctlLogs: "summonctl logs car1-qa migrations -n summon-qa",
	}, {
		// The Job of v1's migration, kept as its record (status.migrations), with its logs.
		Name: children.NamesFor("car1-qa").MigrationJob(v1, 0), Version: v1, State: "Succeeded", StateClass: "job-succeeded",
		KubectlLogs:   "kubectl logs job/" + children.NamesFor("car1-qa").MigrationJob(v1, 0) + " -n summon-qa",
		SummonctlLogs: "summonctl logs car1-qa migrations -n summon-qa",
	}}
	gotJobs := m.Jobs
	for i := range gotJobs {
		// The sim's clock sets these; the test checks only that they are there.
		if gotJobs[i].Started == "" || gotJobs[i].Finished == "" {
			t.Errorf("job %s has no start or finish time: %+v", gotJobs[i].Name, gotJobs[i])
		}
		gotJobs[i].Started, gotJobs[i].StartedAge, gotJobs[i].Finished, gotJobs[i].FinishedAge = "", "", "", ""
	}
	if diff := cmp.Diff(wantJobs, gotJobs); diff != "" {
		t.Errorf("migration jobs (-want +got):\n%s", diff)
	}

	names := children.NamesFor("car1-qa")
	var want []string
	for _, c := range children.AppComponents {
		kind := "Deployment"
		if c == children.CeleryBeat {
			kind = "StatefulSet"
		}
		want = append(want, fmt.Sprintf("%s: %s %s 1/1 %s; status 1/1 %s", c, kind, names.Of(c), v1, v1))
	}
	if diff := cmp.Diff(want, componentSummary(m.Components)); diff != "" {
		t.Errorf("components (-want +got):\n%s", diff)
	}

	var conds []string
	for _, c := range m.Conditions {
		conds = append(conds, c.Type+"="+c.Status+" "+c.Reason)
	}
	wantConds := []string{"SpecValid=True Valid", "Migrated=False MigrationFailed", "Deployed=False AwaitingMigration", "Ready=False MigrationFailed", "BuildersUpToDate=True Current", "BackedUp=False NotAvailable"}
	if diff := cmp.Diff(wantConds, conds); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}

func TestTheInstancePageShowsTheBackupsAndHowToRestoreOne(t *testing.T) {
	in := fleettest.New(spec("car1-qa"), now.Add(-time.Hour)).Ready()
	d := observed(t, in)
	at := metav1.NewTime(now.Add(-30 * time.Minute))
	d.Platform.Status.Backups = []v1beta1.BackupRecord{
		{Name: "car1-qa-backup-2", Version: "v3", FromVersion: v2, Phase: v1beta1.BackupPhaseFailed, Location: "s3://b/backups/v3/a0/"},
		{Name: "car1-qa-backup-1", Version: v2, FromVersion: v1, Phase: v1beta1.BackupPhaseCompleted, Location: "s3://b/backups/" + v2 + "/a0/", CompletedAt: &at},
		// CloudNativePG's snapshot of an own Postgres comes back as a new Cluster, not through
		// summonctl restore: no command is offered for it.
		{Name: "car1-qa-backup-0", Version: v1, FromVersion: "v0", Phase: v1beta1.BackupPhaseCompleted, Location: children.PostgresBackupLocation("car1-qa-backup-0"), CompletedAt: &at},
	}
	m := instancePage(d, now)
	var got []string
	for _, b := range m.Backups {
		got = append(got, fmt.Sprintf("%s %s→%s %s %s %q", b.Name, b.FromVersion, b.Version, b.Phase, b.CompletedAge, b.Restore))
	}
	want := []string{
		`car1-qa-backup-2 ` + v2 + `→v3 Failed  ""`,
		`car1-qa-backup-1 ` + v1 + `→` + v2 + ` Completed 30m "summonctl restore car1-qa -n summon-qa --backup car1-qa-backup-1 --yes"`,
		`car1-qa-backup-0 v0→` + v1 + ` Completed 30m ""`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backups (-want +got):\n%s", diff)
	}
}

func TestAFreshInstanceHasNoComponentYetAndItsFirstMigrationRuns(t *testing.T) {
	in := fleettest.New(spec("car2-qa"), now.Add(-time.Minute)).Migrating()
	m := instancePage(observed(t, in), now)
	if len(m.Components) != 0 {
		t.Errorf("components before the first migration: %v", componentSummary(m.Components))
	}
	if len(m.Jobs) != 1 || m.Jobs[0].State != "Active" || !m.Jobs[0].Current {
		t.Errorf("jobs: %+v", m.Jobs)
	}
	if m.Phase != "Migrating" || m.PhaseClass != "phase-progress" {
		t.Errorf("phase %s (%s)", m.Phase, m.PhaseClass)
	}
}

func TestTheInstancePageNamesWhatLivesOutsideAndNeverASecretsValue(t *testing.T) {
	p := testPlatform("summon-qa", "car1-qa", hostname("car1-qa.example.com", "www.car1-qa.example.com"))
	p.Spec.Secrets = []string{"car1-qa-inputs"}
	p.Spec.Config = map[string]v1beta1.ConfigValue{"TIME_ZONE": v1beta1.StringValue("Europe/Berlin"), "DEBUG": v1beta1.BoolValue(false), "WORKERS": v1beta1.NumberValue(3)}
	p.Status.External = &v1beta1.ExternalStatus{Bucket: "acme-car1-qa", IAMUser: "summon-car1-qa", RabbitVhost: "summon-qa.car1-qa"}
	m := instancePage(instanceData{Platform: p}, now)

	if diff := cmp.Diff([]hostLink{
		{Host: "car1-qa.example.com", URL: "https://car1-qa.example.com/"},
		{Host: "www.car1-qa.example.com", URL: "https://www.car1-qa.example.com/"},
	}, m.Hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]nameValue{{"S3 bucket", "acme-car1-qa"}, {"IAM user", "summon-car1-qa"}, {"RabbitMQ vhost", "summon-qa.car1-qa"}}, m.External); diff != "" {
		t.Errorf("external (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]nameValue{{"DEBUG", "false"}, {"TIME_ZONE", "Europe/Berlin"}, {"WORKERS", "3"}}, m.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"car1-qa-inputs"}, m.Secrets); diff != "" {
		t.Errorf("secret names (-want +got):\n%s", diff)
	}
}

func TestASpecTheHookCantReadIsShownInTheHooksWords(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1beta1.APIVersion, "kind": v1beta1.Kind,
		"metadata": map[string]any{"name": "car1-qa", "namespace": "summon-qa"},
		"spec":     map[string]any{"version": v1, "replicas": map[string]any{"web": "two"}},
		"status":   map[string]any{"phase": "Error", "message": "invalid spec"},
	}}
	p := platformFrom(u)
	row := fleetRowOf(p, now)
	if row.Problem != "spec can't be read: spec.replicas.web must be a number, not a string" || row.Phase != "Error" {
		t.Errorf("problem %q, phase %q", row.Problem, row.Phase)
	}
}

func event(kind, name, reason, message string, ago time.Duration) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "summon-qa", Name: fmt.Sprintf("%s.%d", name, ago)},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: "summon-qa", Name: name},
		Reason:         reason, Message: message, Type: corev1.EventTypeNormal, Count: 1,
		LastTimestamp: metav1.NewTime(now.Add(-ago)),
	}
}

func TestTheInstancesEventsAreItsOwnAndItsChildrensNewestFirst(t *testing.T) {
	in := fleettest.New(spec("car1-qa"), now.Add(-time.Hour)).Ready()
	d := observed(t, in)
	names := children.NamesFor("car1-qa")
	d.Pods = []*corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Namespace: "summon-qa", Name: names.Of(children.Web) + "-7d9c-x2x4q",
		Labels: children.VersionedLabels("car1-qa", children.Web, v1)}}}
	backoff := event("Pod", names.Of(children.Web)+"-7d9c-x2x4q", "BackOff", "Back-off restarting failed container web", time.Minute)
	backoff.Type, backoff.Count = corev1.EventTypeWarning, 7
	d.Events = []*corev1.Event{
		event(v1beta1.Kind, "car1-qa", "SyncSuccess", "synced", 5*time.Minute),
		backoff,
		event("ReplicaSet", names.Of(children.Web)+"-7d9c5b6f4", "SuccessfulCreate", "Created pod", 3*time.Minute),
		event("Ingress", names.Ingress(), "Sync", "Scheduled for sync", 4*time.Minute),
		// Not the instance's: another instance whose name starts the same, a ReplicaSet of it,
		// and a workload Summon doesn't know.
		event(v1beta1.Kind, "car1-qa-eu", "SyncSuccess", "synced", time.Second),
		event("ReplicaSet", "car1-qa-eu-web-7d9c5b6f4", "SuccessfulCreate", "Created pod", time.Second),
		event("Deployment", "nginx", "ScalingReplicaSet", "Scaled up", time.Second),
	}
	m := instancePage(d, now)
	var got []string
	for _, e := range m.Events {
		got = append(got, fmt.Sprintf("%s %s %s %s ×%d", e.LastAge, e.Type, e.Object, e.Reason, e.Count))
	}
	want := []string{
		"60s Warning pod/car1-qa-web-7d9c-x2x4q BackOff ×7",
		"3m Normal replicaset/car1-qa-web-7d9c5b6f4 SuccessfulCreate ×1",
		"4m Normal ingress/car1-qa Sync ×1",
		"5m Normal summonplatform/car1-qa SyncSuccess ×1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestPodProblemsAreCountedInTheKubeletsWords(t *testing.T) {
	waiting := func(reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
	}
	readyPod := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	pods := []*corev1.Pod{
		readyPod,
		{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("CrashLoopBackOff")}}},
		{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("CrashLoopBackOff")}}},
		{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}}},
		{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}},
	}
	total, ready, restarts, problems := podSummary(pods)
	if total != 5 || ready != 1 || restarts != 4 {
		t.Errorf("total %d, ready %d, restarts %d", total, ready, restarts)
	}
	if diff := cmp.Diff([]string{"CrashLoopBackOff ×2", "OOMKilled ×1", "Unschedulable ×1"}, problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestAMigrationJobsPodProblemShowsOnItsRow(t *testing.T) {
	in := fleettest.New(spec("car1-qa"), now.Add(-time.Minute)).Migrating()
	d := observed(t, in)
	job := d.Jobs[0].Name
	d.Pods = []*corev1.Pod{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "summon-qa", Name: job + "-abcde", Labels: map[string]string{
			batchv1.JobNameLabel: job, children.LabelInstance: "car1-qa", children.LabelComponent: string(children.Migrations)}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}},
	}}
	m := instancePage(d, now)
	if diff := cmp.Diff([]string{"ImagePullBackOff ×1"}, m.Jobs[0].PodProblems); diff != "" {
		t.Errorf("job pod problems (-want +got):\n%s", diff)
	}
}
