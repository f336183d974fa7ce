package dashboard

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/gate"
	"github.com/forklift-dev/summon/pkg/platform"
)

// maxEvents bounds the events an instance page lists, newest first.
const maxEvents = 30

// instanceModel is one instance's page.
type instanceModel struct {
	Namespace, Name string
	Phase           string
	PhaseClass      string
	Message         string
	MigrationFailed bool
	Wanted          string
	Migrated        string
	Deployed        string
	// Generation is the spec's; ObservedGeneration the one the status was written for.
	Generation         int64
	ObservedGeneration int64
	Stale              bool
	Paused             bool
	Deleting           bool
	Problem            string
	CreatedAge         string
	Created            string
	Hosts              []hostLink
	Conditions         []conditionRow
	Components         []componentRow
	Jobs               []jobRow
	Backups            []backupRow
	External           []nameValue
	Config             []nameValue
	// Secrets are the names of the input Secrets; the dashboard never reads one.
	Secrets []string
	Events  []eventRow
}

// hostLink is one of the instance's public hosts.
type hostLink struct{ Host, URL string }

type nameValue struct{ Name, Value string }

type conditionRow struct {
	Type, Status, Reason, Message string
	StatusClass                   string
	Changed, ChangedAge           string
}

// componentRow is one app component: what the hook last wrote in the status, and its workload
// as the informers see it now.
type componentRow struct {
	Component string
	// Status is status.components[component], when the hook wrote one.
	Status *v1beta1.ComponentStatus
	// Kind and Workload name the observed workload; "" when there is none.
	Kind, Workload string
	Desired        int32
	Ready          int32
	Updated        int32
	Version        string
	Pods           int
	PodsReady      int
	Restarts       int32
	PodProblems    []string
	ReadyClass     string
}

// jobRow is one migration Job.
type jobRow struct {
	Name        string
	Version     string
	Attempt     int32
	State       string
	StateClass  string
	Reason      string
	Current     bool
	Started     string
	StartedAge  string
	Finished    string
	FinishedAge string
	PodProblems []string
	// KubectlLogs and SummonctlLogs are the commands that print the migration's output.
	KubectlLogs   string
	SummonctlLogs string
}

// backupRow is one backup taken before a migration, as status.backups records it.
type backupRow struct {
	Name, Version, FromVersion, Phase, PhaseClass, Location string
	Completed, CompletedAge                                 string
	// Restore is the command that brings it back.
	Restore string
}

type eventRow struct {
	Type, Reason, Object, Message string
	Count                         int32
	Last, LastAge                 string
	Warning                       bool
	at                            time.Time
}

// instancePage builds an instance's page from its SummonPlatform and the objects beside it.
func instancePage(d instanceData, now time.Time) instanceModel {
	p := d.Platform
	st := p.Status
	m := instanceModel{
		Namespace:          p.Meta.Namespace,
		Name:               p.Meta.Name,
		Phase:              string(st.Phase),
		Message:            st.Message,
		MigrationFailed:    platform.MigrationFailed(st),
		Wanted:             p.Spec.Version,
		Migrated:           st.MigratedVersion,
		Deployed:           st.DeployedVersion,
		Generation:         p.Meta.Generation,
		ObservedGeneration: st.ObservedGeneration,
		Stale:              st.Phase != "" && st.ObservedGeneration < p.Meta.Generation,
		Paused:             p.Spec.Paused,
		Deleting:           p.Meta.DeletionTimestamp != nil,
		Problem:            problemOf(p),
		Created:            stamp(p.Meta.CreationTimestamp.Time),
		CreatedAge:         age(now, p.Meta.CreationTimestamp.Time),
		Secrets:            p.Spec.Secrets,
	}
	if m.Phase == "" {
		m.Phase = phaseNoneLabel
	}
	m.PhaseClass = phaseClass(m.Phase)
	for _, h := range append([]string{p.Spec.Hostname}, p.Spec.Aliases...) {
		if h != "" {
			m.Hosts = append(m.Hosts, hostLink{Host: h, URL: "https://" + h + "/"})
		}
	}
	for _, c := range st.Conditions {
		m.Conditions = append(m.Conditions, conditionRow{
			Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message,
			StatusClass: "cond-" + strings.ToLower(string(c.Status)),
			Changed:     stamp(c.LastTransitionTime.Time), ChangedAge: age(now, c.LastTransitionTime.Time),
		})
	}
	m.Components = componentRows(d)
	m.Jobs = jobRows(d, now)
	for _, b := range st.Backups {
		r := backupRow{Name: b.Name, Version: b.Version, FromVersion: b.FromVersion, Phase: b.Phase, Location: b.Location,
			PhaseClass: map[string]string{v1beta1.BackupPhaseRunning: "job-active", v1beta1.BackupPhaseCompleted: "job-succeeded", v1beta1.BackupPhaseFailed: "job-failed"}[b.Phase]}
		if b.CompletedAt != nil {
			r.Completed, r.CompletedAge = stamp(b.CompletedAt.Time), age(now, b.CompletedAt.Time)
		}
		if platform.Restorable(b) == nil {
			r.Restore = fmt.Sprintf("summonctl restore %s -n %s --backup %s --yes", p.Meta.Name, p.Meta.Namespace, b.Name)
		}
		m.Backups = append(m.Backups, r)
	}
	if x := st.External; x != nil {
		for _, nv := range []nameValue{{"S3 bucket", x.Bucket}, {"IAM user", x.IAMUser}, {"RabbitMQ vhost", x.RabbitVhost}, {"Postgres database", x.Database}} {
			if nv.Value != "" {
				m.External = append(m.External, nv)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.Spec.Config)) {
		m.Config = append(m.Config, nameValue{Name: k, Value: fmt.Sprint(p.Spec.Config[k].Value())})
	}
	m.Events = eventRows(d, now)
	return m
}

func componentRows(d instanceData) []componentRow {
	names := children.NamesFor(d.Platform.Meta.Name)
	deployments := map[string]*appsv1.Deployment{}
	for _, w := range d.Deployments {
		deployments[w.Name] = w
	}
	statefulSets := map[string]*appsv1.StatefulSet{}
	for _, w := range d.StatefulSets {
		statefulSets[w.Name] = w
	}
	components := map[string]bool{}
	var order []string
	for _, c := range children.AppComponents {
		components[string(c)] = true
		order = append(order, string(c))
	}
	// A component the status reports that this build doesn't know still shows.
	for _, c := range slices.Sorted(maps.Keys(d.Platform.Status.Components)) {
		if !components[c] {
			order = append(order, c)
		}
	}

	var rows []componentRow
	for _, c := range order {
		r := componentRow{Component: c}
		if s, ok := d.Platform.Status.Components[c]; ok {
			r.Status = &s
		}
		name := names.Of(children.Component(c))
		if w, ok := deployments[name]; ok {
			r.Kind, r.Workload = "Deployment", w.Name
			r.Desired, r.Ready, r.Updated = replicas(w.Spec.Replicas), w.Status.ReadyReplicas, w.Status.UpdatedReplicas
			r.Version = platform.TemplateVersion(w.Spec.Template)
		} else if w, ok := statefulSets[name]; ok {
			r.Kind, r.Workload = "StatefulSet", w.Name
			r.Desired, r.Ready, r.Updated = replicas(w.Spec.Replicas), w.Status.ReadyReplicas, w.Status.UpdatedReplicas
			r.Version = platform.TemplateVersion(w.Spec.Template)
		}
		if r.Status == nil && r.Workload == "" {
			// Components the instance doesn't run (no workload, nothing in the status) are
			// left out rather than listed empty.
			continue
		}
		var pods []*corev1.Pod
		for _, pod := range d.Pods {
			if pod.Labels[children.LabelComponent] == c {
				pods = append(pods, pod)
			}
		}
		r.Pods, r.PodsReady, r.Restarts, r.PodProblems = podSummary(pods)
		r.ReadyClass = "count-ok"
		if r.Workload != "" && r.Ready < r.Desired {
			r.ReadyClass = "count-short"
		}
		rows = append(rows, r)
	}
	return rows
}

// replicas is a workload's spec.replicas, which the API server defaults to 1.
func replicas(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}

// podSummary counts pods and says what holds the unready ones back, in the kubelet's words
// ("CrashLoopBackOff ×2").
func podSummary(pods []*corev1.Pod) (total, ready int, restarts int32, problems []string) {
	seen := map[string]int{}
	for _, pod := range pods {
		total++
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready++
			}
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
				seen[c.Reason]++
			}
		}
		for _, cs := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			restarts += cs.RestartCount
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				seen[w.Reason]++
			}
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && t.Reason != "" {
				seen[t.Reason]++
			}
		}
		if pod.Status.Phase == corev1.PodFailed && pod.Status.Reason != "" {
			seen[pod.Status.Reason]++
		}
	}
	for _, reason := range slices.Sorted(maps.Keys(seen)) {
		problems = append(problems, fmt.Sprintf("%s ×%d", reason, seen[reason]))
	}
	return total, ready, restarts, problems
}

func jobRows(d instanceData, now time.Time) []jobRow {
	p := d.Platform
	jobs := slices.Clone(d.Jobs)
	// Newest first: the migration that matters is the last one.
	slices.SortFunc(jobs, func(a, b *batchv1.Job) int {
		if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	var rows []jobRow
	for _, j := range jobs {
		mj, ok := platform.MigrationJobOf(p.Meta.Name, j)
		if !ok {
			continue
		}
		r := jobRow{
			Name: mj.Name, Version: mj.Version, Attempt: mj.Attempt, State: mj.State.String(), Reason: mj.Reason,
			Current:       mj.Version == p.Spec.Version && mj.Attempt == p.Spec.Migrations.Attempt,
			KubectlLogs:   fmt.Sprintf("kubectl logs job/%s -n %s", j.Name, j.Namespace),
			SummonctlLogs: fmt.Sprintf("summonctl logs %s migrations -n %s", p.Meta.Name, p.Meta.Namespace),
		}
		r.StateClass = map[gate.JobState]string{gate.JobActive: "job-active", gate.JobSucceeded: "job-succeeded", gate.JobFailed: "job-failed"}[mj.State]
		if t := j.Status.StartTime; t != nil {
			r.Started, r.StartedAge = stamp(t.Time), age(now, t.Time)
		}
		if t := finishedAt(j); !t.IsZero() {
			r.Finished, r.FinishedAge = stamp(t), age(now, t)
		}
		var pods []*corev1.Pod
		for _, pod := range d.Pods {
			if pod.Labels[batchv1.JobNameLabel] == j.Name {
				pods = append(pods, pod)
			}
		}
		_, _, _, r.PodProblems = podSummary(pods)
		rows = append(rows, r)
	}
	return rows
}

func finishedAt(j *batchv1.Job) time.Time {
	if j.Status.CompletionTime != nil {
		return j.Status.CompletionTime.Time
	}
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// eventRows picks the events about the instance and its children: the SummonPlatform itself
// (Metacontroller's events), its workloads, Jobs and pods, the ReplicaSets of its Deployments,
// and the other children by the names Summon gives them.
func eventRows(d instanceData, now time.Time) []eventRow {
	names := children.NamesFor(d.Platform.Meta.Name)
	about := map[string]bool{v1beta1.Kind + "/" + d.Platform.Meta.Name: true}
	var deployments []string
	for _, w := range d.Deployments {
		about["Deployment/"+w.Name] = true
		deployments = append(deployments, w.Name)
	}
	for _, w := range d.StatefulSets {
		about["StatefulSet/"+w.Name] = true
	}
	for _, j := range d.Jobs {
		about["Job/"+j.Name] = true
	}
	for _, pod := range d.Pods {
		about["Pod/"+pod.Name] = true
	}
	for _, c := range children.AppComponents {
		for _, kind := range []string{"Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
			about[kind+"/"+names.Of(c)] = true
		}
	}
	about["Ingress/"+names.Ingress()] = true

	var rows []eventRow
	for _, ev := range d.Events {
		obj := ev.InvolvedObject
		if !about[obj.Kind+"/"+obj.Name] && (obj.Kind != "ReplicaSet" || !replicaSetOf(obj.Name, deployments)) {
			continue
		}
		last := eventTime(ev)
		count := ev.Count
		if ev.Series != nil {
			count = ev.Series.Count
		}
		rows = append(rows, eventRow{
			Type: ev.Type, Reason: ev.Reason, Object: strings.ToLower(obj.Kind) + "/" + obj.Name, Message: ev.Message,
			Count: max(count, 1), Last: stamp(last), LastAge: age(now, last), Warning: ev.Type == corev1.EventTypeWarning,
			at: last,
		})
	}
	slices.SortStableFunc(rows, func(a, b eventRow) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return cmp.Compare(a.Object+"\n"+a.Reason, b.Object+"\n"+b.Reason)
	})
	return rows[:min(len(rows), maxEvents)]
}

// replicaSetOf says whether a ReplicaSet name is one of the Deployments' own: Kubernetes names
// them <deployment>-<pod-template-hash>, and the hash has no dash.
func replicaSetOf(name string, deployments []string) bool {
	for _, d := range deployments {
		if rest, ok := strings.CutPrefix(name, d+"-"); ok && rest != "" && !strings.Contains(rest, "-") {
			return true
		}
	}
	return false
}

// eventTime is when an event last happened, from whichever field its reporter filled.
func eventTime(ev *corev1.Event) time.Time {
	var t time.Time
	for _, c := range []time.Time{ev.LastTimestamp.Time, ev.EventTime.Time, ev.FirstTimestamp.Time, ev.CreationTimestamp.Time} {
		if c.After(t) {
			t = c
		}
	}
	if ev.Series != nil && ev.Series.LastObservedTime.After(t) {
		t = ev.Series.LastObservedTime.Time
	}
	return t
}
