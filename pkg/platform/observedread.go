package platform

import (
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// observe reads, on every sync, a few fields of each observed app workload and Job. The
// unstructured converter read them into typed objects through reflection at every level (11 to
// 14% of the core's CPU, docs/performance.md); these readers take them straight from the maps,
// into the same typed fields, with the converter's rules: JSON null is the zero value, a whole
// number fits any integer field (truncated as reflect converts it), and any other type is an
// error, which makes the child unreadable (kept as observed). The converter stays the
// definition: FuzzObservedReadersAreTheConverters compares both on children of every shape.

// decodeWorkload reads an observed Deployment or StatefulSet for observe: its type and identity,
// of its spec the replica count and the pod template's labels, annotations and containers' names
// and images, and of its status the replica counts and the observed generation. Nothing else of
// it is read, so nothing else can make it unreadable.
func decodeWorkload(obj metacontroller.Object, into any) error {
	var r reader
	var (
		tm  metav1.TypeMeta
		om  metav1.ObjectMeta
		rep *int32
		tpl corev1.PodTemplateSpec
		st  appsv1.DeploymentStatus
	)
	r.identity(obj, &tm, &om)
	if spec, ok := r.object(obj["spec"]); ok {
		if v, ok := spec["replicas"]; ok && v != nil {
			n := r.int32(v)
			rep = &n
		}
		if t, ok := r.object(spec["template"]); ok {
			if m, ok := r.object(t["metadata"]); ok {
				tpl.Labels = r.stringMap(m["labels"])
				tpl.Annotations = r.stringMap(m["annotations"])
			}
			if s, ok := r.object(t["spec"]); ok {
				tpl.Spec.Containers = r.containers(s["containers"])
			}
		}
	}
	if s, ok := r.object(obj["status"]); ok {
		st.ObservedGeneration = r.int64(s["observedGeneration"])
		st.Replicas = r.int32(s["replicas"])
		st.ReadyReplicas = r.int32(s["readyReplicas"])
		st.UpdatedReplicas = r.int32(s["updatedReplicas"])
		st.AvailableReplicas = r.int32(s["availableReplicas"])
	}
	if r.err != nil {
		return r.err
	}
	switch w := into.(type) {
	case *appsv1.Deployment:
		*w = appsv1.Deployment{TypeMeta: tm, ObjectMeta: om}
		w.Spec.Replicas, w.Spec.Template, w.Status = rep, tpl, st
	case *appsv1.StatefulSet:
		*w = appsv1.StatefulSet{TypeMeta: tm, ObjectMeta: om}
		w.Spec.Replicas, w.Spec.Template = rep, tpl
		w.Status = appsv1.StatefulSetStatus{ObservedGeneration: st.ObservedGeneration, Replicas: st.Replicas,
			ReadyReplicas: st.ReadyReplicas, UpdatedReplicas: st.UpdatedReplicas, AvailableReplicas: st.AvailableReplicas}
	default:
		return fmt.Errorf("decodeWorkload reads a Deployment or a StatefulSet, not %T", into)
	}
	return nil
}

// decodeJob reads an observed Job for observe: its type and identity, and of its status each
// condition's type, status, reason and message, and the completion time.
func decodeJob(obj metacontroller.Object, j *batchv1.Job) error {
	var r reader
	*j = batchv1.Job{}
	r.identity(obj, &j.TypeMeta, &j.ObjectMeta)
	if s, ok := r.object(obj["status"]); ok {
		if list, ok := r.list(s["conditions"]); ok {
			j.Status.Conditions = make([]batchv1.JobCondition, len(list))
			for i, c := range list {
				if m, ok := r.object(c); ok {
					j.Status.Conditions[i] = batchv1.JobCondition{
						Type:    batchv1.JobConditionType(r.string(m["type"])),
						Status:  corev1.ConditionStatus(r.string(m["status"])),
						Reason:  r.string(m["reason"]),
						Message: r.string(m["message"]),
					}
				}
			}
		}
		j.Status.CompletionTime = r.time(s["completionTime"])
	}
	if r.err != nil {
		*j = batchv1.Job{}
		return r.err
	}
	return nil
}

// reader reads JSON values into Go ones as the unstructured converter does, keeping the first
// error.
type reader struct{ err error }

func (r *reader) fail(v any, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("cannot convert %T to %s", v, want)
	}
}

// identity reads kind, apiVersion and the metadata observe reads (name, namespace, uid,
// generation, labels, and the annotations but Metacontroller's last-applied one).
func (r *reader) identity(obj metacontroller.Object, tm *metav1.TypeMeta, om *metav1.ObjectMeta) {
	tm.Kind, tm.APIVersion = r.string(obj["kind"]), r.string(obj["apiVersion"])
	meta, ok := r.object(obj["metadata"])
	if !ok {
		return
	}
	om.Name = r.string(meta["name"])
	om.Namespace = r.string(meta["namespace"])
	om.UID = types.UID(r.string(meta["uid"]))
	om.Generation = r.int64(meta["generation"])
	om.Labels = r.stringMap(meta["labels"])
	// As annotationsOf reads them: string values only, never nil.
	om.Annotations = annotationsOf(obj)
	delete(om.Annotations, children.LastAppliedAnnotation)
}

// object reads a JSON object; ok is false for null (no error) and for any other type (an error).
func (r *reader) object(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case nil:
		return nil, false
	case map[string]any:
		return m, true
	}
	r.fail(v, "an object")
	return nil, false
}

// list reads a JSON array as object does an object.
func (r *reader) list(v any) ([]any, bool) {
	switch l := v.(type) {
	case nil:
		return nil, false
	case []any:
		return l, true
	}
	r.fail(v, "a list")
	return nil, false
}

func (r *reader) string(v any) string {
	switch s := v.(type) {
	case nil:
		return ""
	case string:
		return s
	}
	r.fail(v, "string")
	return ""
}

// integer reads a whole number, as metacontroller.Decode gives it (int64), or a float64 without
// a fraction, as the converter accepts one.
func (r *reader) integer(v any, want string) (int64, bool) {
	switch n := v.(type) {
	case nil:
		return 0, true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case float64:
		if n == math.Trunc(n) {
			return int64(n), true
		}
	}
	r.fail(v, want)
	return 0, false
}

func (r *reader) int64(v any) int64 {
	n, _ := r.integer(v, "int64")
	return n
}

func (r *reader) int32(v any) int32 {
	n, _ := r.integer(v, "int32")
	return int32(n)
}

// stringMap reads an object of strings; null is a nil map, {} an empty one.
func (r *reader) stringMap(v any) map[string]string {
	m, ok := r.object(v)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		out[k] = r.string(x)
	}
	return out
}

// containers reads the containers' names and images.
func (r *reader) containers(v any) []corev1.Container {
	list, ok := r.list(v)
	if !ok {
		return nil
	}
	out := make([]corev1.Container, len(list))
	for i, c := range list {
		if m, ok := r.object(c); ok {
			out[i] = corev1.Container{Name: r.string(m["name"]), Image: r.string(m["image"])}
		}
	}
	return out
}

// time reads a time as metav1.Time reads its JSON: RFC 3339, in the local zone.
func (r *reader) time(v any) *metav1.Time {
	switch s := v.(type) {
	case nil:
		return nil
	case string:
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			if r.err == nil {
				r.err = err
			}
			return nil
		}
		return &metav1.Time{Time: t.Local()}
	}
	r.fail(v, "a time")
	return nil
}
