package platform

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/gate"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// desired collects the response's children in a stable order.
type desired struct {
	objects []metacontroller.Object
	names   map[childRef]bool
	// conv builds the maps of this answer's children, sharing their strings.
	conv children.Converter
}

// toObject converts a built child to its map: children.Converter's ToObject, which a test checks
// against the unstructured converter on every child the goldens build.
var toObject = (*children.Converter).ToObject

// add appends a built child; a nil one (a PDB or HPA the spec doesn't need) is skipped.
func (d *desired) add(typed any) {
	if v := reflect.ValueOf(typed); v.Kind() == reflect.Pointer && v.IsNil() {
		return
	}
	obj, err := toObject(&d.conv, typed)
	if err != nil {
		// Typed k8s.io/api objects always encode; reaching this is a bug in a builder.
		panic(fmt.Sprintf("building a child: %v", err))
	}
	d.put(obj)
}

// keep appends an observed child as it is.
func (d *desired) keep(observed metacontroller.Object) {
	if observed != nil {
		d.put(children.AsObserved(observed))
	}
}

func (d *desired) put(obj metacontroller.Object) {
	if d.names == nil {
		d.names = map[childRef]bool{}
	}
	d.names[refOf(obj)] = true
	d.objects = append(d.objects, obj)
}

// unknown lists the observed children that Summon neither wants nor may drop: ones it doesn't
// recognise (another layout, a type added to the CompositeController) and workloads whose
// version it can't read. Old migration Jobs, an HPA or PDB the spec no longer needs, and another
// beat workload are Summon's to drop.
func (d *desired) unknown(p children.Platform, seen observation) []childRef {
	known := knownNames(p)
	droppable := map[childRef]bool{}
	for _, r := range seen.otherBeats {
		droppable[r] = true
	}
	for _, r := range seen.unreadable {
		known[r] = false
	}
	var out []childRef
	for ref, obj := range seen.all {
		if d.names[ref] || droppable[ref] || known[ref] || isGateChild(p, ref, obj) {
			continue
		}
		out = append(out, ref)
	}
	slices.SortFunc(out, compareRefs)
	return out
}

// isGateChild says whether an observed child is one the migration gate made and let go: a
// migration or backup Job, or CNPG's Backup of an own Postgres beyond spec.backups.keep.
func isGateChild(p children.Platform, ref childRef, obj metacontroller.Object) bool {
	l := labelsOf(obj)
	c := l[children.LabelComponent]
	if l[children.LabelInstance] != p.Name {
		return false
	}
	switch ref.group {
	case GroupJob:
		return c == string(children.Migrations) || c == string(children.Backup)
	case GroupPostgresBackup:
		return c == string(children.Backup)
	}
	return false
}

// knownNames are the children Summon builds for some spec: dropping one of them when the spec no
// longer asks for it is Summon's decision to make.
func knownNames(p children.Platform) map[childRef]bool {
	known := map[childRef]bool{
		{GroupSecret, p.Names.Config()}:                     true,
		{GroupSecret, p.Names.AWSCredentials()}:             true,
		{GroupIngress, p.Names.Ingress()}:                   true,
		{GroupStatefulSet, p.Names.Of(children.CeleryBeat)}: true,
		{GroupService, p.Names.Of(children.CeleryBeat)}:     true,
		{GroupHPA, p.Names.Of(children.Web)}:                true,
		{GroupHPA, p.Names.Of(children.Celeryd)}:            true,
		{GroupSecret, p.Names.Database()}:                   true,
	}
	for _, c := range children.AppComponents {
		if c != children.CeleryBeat {
			known[childRef{GroupDeployment, p.Names.Of(c)}] = true
		}
	}
	for _, c := range children.ServingComponents {
		known[childRef{GroupService, p.Names.Of(c)}] = true
		known[childRef{GroupPDB, p.Names.Of(c)}] = true
	}
	for _, r := range dataNames(p) {
		known[r] = true
	}
	return known
}

// everythingElse returns, as observed, every observed child not already desired.
func (d *desired) everythingElse(seen observation) []metacontroller.Object {
	refs := slices.SortedFunc(maps.Keys(seen.all), compareRefs)
	var out []metacontroller.Object
	for _, ref := range refs {
		if !d.names[ref] {
			out = append(out, children.AsObserved(seen.all[ref]))
		}
	}
	return out
}

// capBeats is the beat singleton's last word on a response: whatever else happened, the beat
// workloads in it ask for one pod at most between them. A children list is never null: a null
// one deletes every child.
func capBeats(out []metacontroller.Object) []metacontroller.Object {
	if out == nil {
		return []metacontroller.Object{}
	}
	var beats []metacontroller.Object
	var replicas []int32
	for _, obj := range out {
		ref := refOf(obj)
		if (ref.group == GroupDeployment || ref.group == GroupStatefulSet) && isBeat(ref, obj) {
			beats = append(beats, obj)
			replicas = append(replicas, specReplicas(obj))
		}
	}
	for i, r := range gate.CapBeats(replicas) {
		if r != replicas[i] {
			spec, _ := beats[i]["spec"].(map[string]any)
			if spec == nil {
				spec = map[string]any{}
				beats[i]["spec"] = spec
			}
			spec["replicas"] = int64(r)
		}
	}
	return out
}

// specReplicas reads spec.replicas of a workload; an absent one is the API default, 1.
func specReplicas(obj metacontroller.Object) int32 {
	spec, _ := obj["spec"].(map[string]any)
	v, ok := spec["replicas"]
	if !ok || v == nil {
		return 1
	}
	n, err := strconv.ParseFloat(fmt.Sprint(v), 64)
	if err != nil {
		return 1
	}
	return int32(n)
}

// rollout is how far the app workloads have come.
type rollout struct {
	complete   bool
	pending    []string
	components map[string]v1beta1.ComponentStatus
}

// rolloutOf compares each desired app workload with what is observed: rolled out means the
// workload's controller has seen the desired template (version and config) and every pod runs
// it and is available.
func rolloutOf(p children.Platform, seen observation, targets map[string]string, configHash string, beatReplicas int32) rollout {
	r := rollout{complete: true, components: map[string]v1beta1.ComponentStatus{}}
	for _, c := range children.AppComponents {
		w := seen.workloads[c]
		want := desiredReplicas(p, c, w, beatReplicas)
		if w != nil {
			r.components[string(c)] = v1beta1.ComponentStatus{Desired: want, Ready: w.ready, Updated: w.updated, Version: w.version}
		}
		target, ok := targets[string(c)]
		if !ok || w == nil || w.version != target || w.configHash != configHash || !w.rolledOut(want) {
			r.complete = false
			r.pending = append(r.pending, string(c))
		}
	}
	if len(r.components) == 0 {
		r.components = nil
	}
	return r
}

func (r rollout) waitingMessage(version string) string {
	if r.complete {
		return ""
	}
	return fmt.Sprintf("rolling out version %s: waiting for %s", version, strings.Join(r.pending, ", "))
}
