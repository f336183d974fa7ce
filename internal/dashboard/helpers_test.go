package dashboard

import (
	"encoding/json"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/forklift-dev/summon/internal/testing/fleettest"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// now is the clock of every test.
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type platformOption func(*Platform)

// testPlatform builds a view's SummonPlatform: testPlatform("qa", "car1", phase(v1beta1.PhaseReady)).
func testPlatform(namespace, name string, opts ...platformOption) Platform {
	var p Platform
	p.Meta = metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(now.Add(-48 * time.Hour))}
	p.Spec = v1beta1.Spec{Version: "v1"}
	p.Status.ObservedGeneration = 1
	for _, o := range opts {
		o(&p)
	}
	return p
}

func version(v string) platformOption { return func(p *Platform) { p.Spec.Version = v } }

func versions(migrated, deployed string) platformOption {
	return func(p *Platform) { p.Status.MigratedVersion, p.Status.DeployedVersion = migrated, deployed }
}

func hostname(h string, aliases ...string) platformOption {
	return func(p *Platform) { p.Spec.Hostname, p.Spec.Aliases = h, aliases }
}

func phase(ph v1beta1.Phase, message string) platformOption {
	return func(p *Platform) { p.Status.Phase, p.Status.Message = ph, message }
}

func condition(typ string, ok bool, reason, message string, ago time.Duration) platformOption {
	return func(p *Platform) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		p.Status.Conditions = append(p.Status.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(now.Add(-ago)),
		})
	}
}

// ready is a Ready instance on version v.
func ready(v string, ago time.Duration) []platformOption {
	return []platformOption{
		version(v), versions(v, v), phase(v1beta1.PhaseReady, ""),
		condition(v1beta1.ConditionMigrated, true, "Succeeded", "", ago),
		condition(v1beta1.ConditionReady, true, "Ready", "every component is ready on "+v, ago),
	}
}

// failedMigration is an instance whose migration to v failed while old keeps serving.
func failedMigration(v, old string, ago time.Duration) []platformOption {
	msg := "the migration of " + v + " failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
	return []platformOption{
		version(v), versions(old, old), phase(v1beta1.PhaseError, msg),
		condition(v1beta1.ConditionMigrated, false, "MigrationFailed", msg, ago),
		condition(v1beta1.ConditionReady, false, "MigrationFailed", msg, ago),
	}
}

func migrating(v, old string, ago time.Duration) []platformOption {
	return []platformOption{
		version(v), versions(old, old), phase(v1beta1.PhaseMigrating, "migrating to "+v),
		condition(v1beta1.ConditionMigrated, false, "Migrating", "migrating to "+v, ago),
		condition(v1beta1.ConditionReady, false, "Migrating", "migrating to "+v, ago),
	}
}

func with(groups ...[]platformOption) []platformOption {
	var out []platformOption
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// observed is what the informers would hold for a simulated instance: the SummonPlatform, read
// as the view reads it, and its workloads and Jobs.
func observed(t *testing.T, in *fleettest.Instance) instanceData {
	t.Helper()
	raw, err := json.Marshal(in.Parent)
	if err != nil {
		t.Fatal(err)
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	d := instanceData{Platform: platformFrom(&u)}
	for _, obj := range in.Workloads() {
		switch obj["kind"] {
		case "Deployment":
			d.Deployments = append(d.Deployments, typed[appsv1.Deployment](t, obj))
		case "StatefulSet":
			d.StatefulSets = append(d.StatefulSets, typed[appsv1.StatefulSet](t, obj))
		case "Job":
			d.Jobs = append(d.Jobs, typed[batchv1.Job](t, obj))
		}
	}
	return d
}

func typed[T any](t *testing.T, obj map[string]any) *T {
	t.Helper()
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}
