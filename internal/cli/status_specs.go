package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// instanceView is one SummonPlatform as status shows it.
type instanceView struct {
	Namespace, Name string
	Created         time.Time
	Spec            v1beta1.Spec
	Status          v1beta1.Status
	Generation      int64
	// Job is the migration Job of the spec's version and attempt, if it exists.
	Job *batchv1.Job
}

// viewOf reads a SummonPlatform object (as the API server serves it) and its namespace's
// migration Jobs.
func viewOf(obj map[string]any, jobs []batchv1.Job) (instanceView, error) {
	var p v1beta1.SummonPlatform
	b, err := json.Marshal(obj)
	if err != nil {
		return instanceView{}, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return instanceView{}, fmt.Errorf("reading SummonPlatform %s/%s: %w", metaString(obj, "namespace"), metaString(obj, "name"), err)
	}
	v := instanceView{Namespace: p.Namespace, Name: p.Name, Created: p.CreationTimestamp.Time, Spec: p.Spec, Status: p.Status, Generation: p.Generation}
	want := children.NamesFor(p.Name).MigrationJob(p.Spec.Version, p.Spec.Migrations.Attempt)
	for i := range jobs {
		if jobs[i].Namespace == p.Namespace && jobs[i].Name == want {
			v.Job = &jobs[i]
		}
	}
	return v, nil
}

// jobState says in a word where a migration Job is.
func jobState(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return "Succeeded"
		case batchv1.JobFailed:
			return "Failed (" + strings.TrimSuffix(strings.TrimSpace(c.Reason+": "+c.Message), ":") + ")"
		}
	}
	if j.Status.Active > 0 {
		return fmt.Sprintf("Running (%d pod)", j.Status.Active)
	}
	return "Pending"
}

// statusTable is the block status prints for one instance.
func statusTable(v instanceView, now time.Time) string {
	var b strings.Builder
	row := func(k, val string) { fmt.Fprintf(&b, "  %-11s %s\n", k, val) }
	age := "-"
	if !v.Created.IsZero() {
		age = duration.HumanDuration(now.Sub(v.Created))
	}
	fmt.Fprintf(&b, "%s/%s\n", v.Namespace, v.Name)
	phase := string(v.Status.Phase)
	if phase == "" {
		phase = "(not synced yet)"
	}
	if v.Spec.Paused {
		phase += ", paused"
	}
	row("phase", fmt.Sprintf("%s   age %s", phase, age))
	row("version", fmt.Sprintf("wanted %s · migrated %s · deployed %s", orDash(v.Spec.Version), orDash(v.Status.MigratedVersion), orDash(v.Status.DeployedVersion)))
	var comps []string
	for _, c := range children.AppComponents {
		cs, ok := v.Status.Components[string(c)]
		if !ok {
			comps = append(comps, string(c)+" -")
			continue
		}
		s := fmt.Sprintf("%s %d/%d", c, cs.Ready, cs.Desired)
		if cs.Version != "" && cs.Version != v.Spec.Version {
			s += " on " + cs.Version
		}
		comps = append(comps, s)
	}
	row("components", strings.Join(comps, " · "))
	job := "none"
	switch {
	case v.Job != nil:
		job = fmt.Sprintf("Job %s: %s", v.Job.Name, jobState(v.Job))
	case v.Status.MigratedVersion == v.Spec.Version && v.Spec.Version != "":
		job = "none (version " + v.Spec.Version + " is migrated)"
	}
	row("migration", job)
	ready := "Unknown: the hook has not written a Ready condition"
	if c := meta.FindStatusCondition(v.Status.Conditions, v1beta1.ConditionReady); c != nil {
		ready = string(c.Status) + ": " + c.Message
		if c.ObservedGeneration != 0 && c.ObservedGeneration < v.Generation {
			ready += fmt.Sprintf(" (for generation %d; the spec is at %d)", c.ObservedGeneration, v.Generation)
		}
	}
	row("ready", ready)
	return b.String()
}

// statusLine is one line about an instance, for a watch whose output is not a terminal.
func statusLine(v instanceView, now time.Time) string {
	msg := v.Status.Message
	return fmt.Sprintf("%s  %s/%s  %s  wanted=%s migrated=%s deployed=%s  %s",
		now.UTC().Format(time.RFC3339), v.Namespace, v.Name, orDash(string(v.Status.Phase)),
		orDash(v.Spec.Version), orDash(v.Status.MigratedVersion), orDash(v.Status.DeployedVersion), msg)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
