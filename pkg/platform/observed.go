package platform

import (
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/gate"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// The child groups Summon declares in manifests/compositecontroller.yaml, keyed as Metacontroller
// keys them (with those of the data services, data.go).
const (
	GroupDeployment  = "Deployment.apps/v1"
	GroupStatefulSet = "StatefulSet.apps/v1"
	GroupService     = "Service.v1"
	GroupSecret      = "Secret.v1"
	GroupIngress     = "Ingress.networking.k8s.io/v1"
	GroupPDB         = "PodDisruptionBudget.policy/v1"
	GroupHPA         = "HorizontalPodAutoscaler.autoscaling/v2"
	GroupJob         = "Job.batch/v1"
)

// childRef names one child across groups.
type childRef struct {
	group string
	name  string
}

func refOf(obj metacontroller.Object) childRef {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	return childRef{group: metacontroller.GroupKey(kind, apiVersion), name: nameOf(obj)}
}

func nameOf(obj metacontroller.Object) string {
	meta, _ := obj["metadata"].(map[string]any)
	n, _ := meta["name"].(string)
	return n
}

func labelsOf(obj metacontroller.Object) map[string]string {
	meta, _ := obj["metadata"].(map[string]any)
	return children.StringValues(meta["labels"])
}

func annotationsOf(obj metacontroller.Object) map[string]string {
	meta, _ := obj["metadata"].(map[string]any)
	return children.StringValues(meta["annotations"])
}

// decodeTyped reads an observed child into its k8s.io/api type. It leaves out managedFields and
// Metacontroller's last-applied annotation, which nothing here reads and which are most of an
// observed object's bytes.
func decodeTyped(obj metacontroller.Object, into any) error {
	trimmed := make(map[string]any, len(obj))
	for k, v := range obj {
		trimmed[k] = v
	}
	if meta, ok := obj["metadata"].(map[string]any); ok {
		m := map[string]any{}
		for _, k := range []string{"name", "namespace", "uid", "generation", "labels"} {
			if v, ok := meta[k]; ok {
				m[k] = v
			}
		}
		ann := annotationsOf(obj)
		delete(ann, children.LastAppliedAnnotation)
		m["annotations"] = ann
		trimmed["metadata"] = m
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(trimmed, into)
}

// observedWorkload is one of Summon's app workloads as observed.
type observedWorkload struct {
	obj        metacontroller.Object
	version    string
	configHash string
	rolledOut  func(want int32) bool
	replicas   *int32
	ready      int32
	updated    int32
}

// observation is what the hook learns from the request's children.
type observation struct {
	all        map[childRef]metacontroller.Object
	workloads  map[children.Component]*observedWorkload
	jobs       []gate.MigrationJob
	jobObjects map[string]metacontroller.Object
	// completed is when each succeeded migration Job completed, as it reports it.
	completed  map[string]*metav1.Time
	otherBeats []childRef
	unreadable []childRef
	configSeen bool
}

// observe indexes the observed children of one instance.
func observe(p children.Platform, groups metacontroller.RelativeObjects) observation {
	o := observation{
		all:        map[childRef]metacontroller.Object{},
		workloads:  map[children.Component]*observedWorkload{},
		jobObjects: map[string]metacontroller.Object{},
		completed:  map[string]*metav1.Time{},
	}
	for _, byName := range groups {
		for _, obj := range byName {
			if obj == nil {
				continue
			}
			o.all[refOf(obj)] = obj
		}
	}
	for ref, obj := range o.all {
		switch ref.group {
		case GroupDeployment, GroupStatefulSet:
			o.observeWorkload(p, ref, obj)
		case GroupJob:
			o.observeJob(p, obj)
		case GroupSecret:
			if ref.name == p.Names.Config() {
				o.configSeen = true
			}
		}
	}
	slices.SortFunc(o.jobs, func(a, b gate.MigrationJob) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(o.otherBeats, compareRefs)
	slices.SortFunc(o.unreadable, compareRefs)
	return o
}

func compareRefs(a, b childRef) int {
	if c := strings.Compare(a.group, b.group); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

func (o *observation) observeWorkload(p children.Platform, ref childRef, obj metacontroller.Object) {
	c, ours := workloadComponent(p, ref)
	if !ours {
		if isBeat(ref, obj) {
			o.otherBeats = append(o.otherBeats, ref)
		}
		return
	}
	w := &observedWorkload{obj: obj}
	var tpl corev1.PodTemplateSpec
	if ref.group == GroupDeployment {
		var d appsv1.Deployment
		if err := decodeWorkload(obj, &d); err != nil {
			o.unreadable = append(o.unreadable, ref)
			return
		}
		tpl, w.replicas = d.Spec.Template, d.Spec.Replicas
		w.ready, w.updated = d.Status.ReadyReplicas, d.Status.UpdatedReplicas
		w.rolledOut = func(want int32) bool {
			st := d.Status
			return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas >= want &&
				st.AvailableReplicas >= want && st.Replicas == want
		}
	} else {
		var s appsv1.StatefulSet
		if err := decodeWorkload(obj, &s); err != nil {
			o.unreadable = append(o.unreadable, ref)
			return
		}
		tpl, w.replicas = s.Spec.Template, s.Spec.Replicas
		w.ready, w.updated = s.Status.ReadyReplicas, s.Status.UpdatedReplicas
		w.rolledOut = func(want int32) bool {
			st := s.Status
			return st.ObservedGeneration >= s.Generation && st.UpdatedReplicas >= want &&
				st.ReadyReplicas >= want && st.Replicas == want
		}
	}
	w.version = TemplateVersion(tpl)
	w.configHash = tpl.Annotations[children.AnnotationConfigHash]
	if w.version == "" {
		// A workload whose version can't be read can't be gated: keep it untouched and say so.
		o.unreadable = append(o.unreadable, ref)
		return
	}
	o.workloads[c] = w
}

// workloadComponent says which of Summon's app components a workload is, by the name and kind
// Summon gives it.
func workloadComponent(p children.Platform, ref childRef) (children.Component, bool) {
	for _, c := range children.AppComponents {
		group := GroupDeployment
		if c == children.CeleryBeat {
			group = GroupStatefulSet
		}
		if ref.group == group && ref.name == p.Names.Of(c) {
			return c, true
		}
	}
	return "", false
}

// isBeat recognises a beat workload that Summon did not build: one left by an older layout (a
// Deployment, or another name) or made by hand.
func isBeat(ref childRef, obj metacontroller.Object) bool {
	if labelsOf(obj)[children.LabelComponent] == string(children.CeleryBeat) {
		return true
	}
	return strings.HasSuffix(ref.name, "-celerybeat") || strings.HasSuffix(ref.name, "-beat")
}

// TemplateVersion reads the version a pod template runs: Summon's version label, or else the tag
// of its first container's image. "" means it can't be read.
func TemplateVersion(tpl corev1.PodTemplateSpec) string {
	if v := tpl.Labels[children.LabelVersion]; v != "" {
		return v
	}
	if len(tpl.Spec.Containers) == 0 {
		return ""
	}
	image := tpl.Spec.Containers[0].Image
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return ""
}

func (o *observation) observeJob(p children.Platform, obj metacontroller.Object) {
	var j batchv1.Job
	if err := decodeJob(obj, &j); err != nil {
		return
	}
	mj, ok := MigrationJobOf(p.Name, &j)
	if !ok {
		return
	}
	o.jobs = append(o.jobs, mj)
	o.jobObjects[mj.Name] = obj
	o.completed[mj.Name] = j.Status.CompletionTime
}

// MigrationJobOf reads a Job as the migration gate sees it: its version, attempt and state. ok is
// false when the Job is not a migration Job of the instance named instance. Readers of the
// cluster (summonctl, the dashboard) call it too, so that a Job's state means the same everywhere.
func MigrationJobOf(instance string, j *batchv1.Job) (mj gate.MigrationJob, ok bool) {
	if j.Labels[children.LabelComponent] != string(children.Migrations) || j.Labels[children.LabelInstance] != instance {
		return gate.MigrationJob{}, false
	}
	attempt, _ := strconv.Atoi(j.Annotations[children.AnnotationMigrationAttempt])
	mj = gate.MigrationJob{Name: j.Name, Version: j.Labels[children.LabelVersion], Attempt: int32(attempt), State: gate.JobActive, UID: string(j.UID),
		Record: j.Annotations[children.AnnotationMigrationRecord] == "true"}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		// Complete and Failed are final; SuccessCriteriaMet and FailureTarget come first, while
		// the Job's pods may still be terminating.
		switch c.Type {
		case batchv1.JobComplete:
			mj.State = gate.JobSucceeded
		case batchv1.JobFailed:
			mj.State = gate.JobFailed
			mj.Reason = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	return mj, true
}
