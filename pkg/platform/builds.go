package platform

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// A Summon release that changes a builder (a probe, a security setting, a preStop) changes the
// pod template of every instance at once, and Metacontroller would roll every app pod of the
// fleet within one resync. So a template change that comes from Summon itself waits for the
// instance's wave, while a change the user asks for (a version, a setting) rolls at once.
//
// Telling the two apart needs no memory besides the pod templates themselves: each app workload's
// template carries the builder revision that built it and a hash of the instance's inputs that
// shaped it. When the inputs are what they were and only the revision differs, the difference is
// Summon's, and the observed template is kept until the wave opens (docs/upgrading.md).

// Pod template annotations that record how an app workload's template was built.
const (
	AnnotationBuilderRevision = "summon.forklift.dev/builder-revision"
	AnnotationBuildInputs     = "summon.forklift.dev/build-inputs"
)

// BuilderRevision names the builders compiled into this build of Summon: a short hash of the pod
// templates they build for a fixed reference instance. Any builder change that changes a pod
// template changes it by itself; there is no constant to bump by hand and forget.
var BuilderRevision = builderRevision()

// referencePlatform is the instance BuilderRevision is computed for. It sets every optional field
// the app builders read, so that a change behind one of them still changes the revision.
func referencePlatform() children.Platform {
	one := int32(1)
	spec := v1beta1.Spec{
		Version:          "reference",
		Hostname:         "reference.example.com",
		ImagePullSecrets: []string{"reference-pull"},
		Config:           map[string]v1beta1.ConfigValue{"DEBUG": v1beta1.BoolValue(false)},
		Replicas:         v1beta1.Replicas{Web: &one, Daphne: &one, ChannelWorker: &one, Celeryd: &one, Static: &one, CeleryBeat: &one},
	}
	return children.NewPlatform("reference", "reference", spec.Defaulted(v1beta1.HookDefaults{Image: "registry.example.com/reference"}))
}

func builderRevision() string {
	p := referencePlatform()
	r := children.Release{Version: "reference", ConfigHash: "reference"}
	templates := []any{
		children.WebDeployment(p, r, 1).Spec.Template,
		children.DaphneDeployment(p, r).Spec.Template,
		children.ChannelWorkerDeployment(p, r).Spec.Template,
		children.CeleryWorkerDeployment(p, r, 1).Spec.Template,
		children.StaticDeployment(p, r).Spec.Template,
		children.BeatStatefulSet(p, r, 1).Spec.Template,
	}
	b, err := json.Marshal(templates)
	if err != nil {
		panic(fmt.Sprintf("encoding the reference pod templates: %v", err))
	}
	h := sha256.New()
	h.Write(b)
	h.Write([]byte(testBuilderMark))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Wave is the builder rollout the operator has opened: the hook reads it from its --rollout-file,
// and summonctl waves open writes it. With no wave open, every app workload that only today's
// builders would change keeps its template.
type Wave struct {
	// Revision is the builder revision being rolled out. A wave for another revision opens
	// nothing: a file left from the last release's rollout must not release the next one.
	Revision string `json:"revision,omitempty"`
	// Percent of the fleet, by a stable hash of each instance's UID, that takes the revision.
	Percent int `json:"percent,omitempty"`
	// Selector is a label selector of instances that take the revision whatever their share
	// (canaries first: tier=canary).
	Selector string `json:"selector,omitempty"`
	// Urgent releases every instance at once, for a security fix that must not wait.
	Urgent bool `json:"urgent,omitempty"`
}

// Validate says what is wrong with a wave, or nil.
func (w Wave) Validate() error {
	var errs []string
	if w.Revision == "" {
		errs = append(errs, "revision is empty: name the builder revision to roll out (summonctl waves status shows it)")
	}
	if w.Percent < 0 || w.Percent > 100 {
		errs = append(errs, fmt.Sprintf("percent %d is not between 0 and 100", w.Percent))
	}
	if _, err := labels.Parse(w.Selector); err != nil {
		errs = append(errs, fmt.Sprintf("selector %q: %v", w.Selector, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid rollout wave: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Open says whether the wave releases revision to the instance with this UID and these labels.
// It is a pure function of the instance, so every hook replica, and summonctl, agree on it.
func (w Wave) Open(revision, uid string, instanceLabels map[string]string) bool {
	if w.Revision == "" || w.Revision != revision {
		return false
	}
	if w.Urgent || WaveBucket(uid) < w.Percent {
		return true
	}
	if w.Selector == "" {
		return false
	}
	sel, err := labels.Parse(w.Selector)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(instanceLabels))
}

// WaveBucket places an instance in [0, 100) by its UID: a wave of N percent opens for the buckets
// below N, so a larger wave always holds every instance of a smaller one.
func WaveBucket(uid string) int {
	sum := sha256.Sum256([]byte("summon-wave/" + uid))
	return int(binary.BigEndian.Uint64(sum[:8]) % 100)
}

// builds is what settling the app workloads' templates found.
type builds struct {
	// held are the components kept on their observed template, and heldRevision the revision
	// they were built with.
	held         []string
	heldRevision string
}

// settleBuilds stamps every app workload in d with the builder revision and the inputs it is
// built from, and holds on its observed template each one that only today's builders would
// change, unless the instance's wave is open. Everything outside the template (replicas, the
// migration gate's version choice, the beat cap applied later) is today's answer either way.
func settleBuilds(d *desired, p children.Platform, par parent, seen observation, targets map[string]string, configHash string, env Env) builds {
	base := inputsBase(par.rawSpec, env.Defaults)
	open := env.Rollout.Open(BuilderRevision, string(par.meta.UID), par.meta.Labels)
	var b builds
	for _, obj := range d.objects {
		c, ok := workloadComponent(p, refOf(obj))
		if !ok {
			continue
		}
		version := targets[string(c)]
		inputs := inputsHash(base, c, version, configHash)
		tpl := templateOf(obj)
		if tpl == nil {
			continue
		}
		setAnnotation(tpl, AnnotationBuilderRevision, BuilderRevision)
		setAnnotation(tpl, AnnotationBuildInputs, inputs)
		if testBuilderMark != "" {
			setAnnotation(tpl, "summon.forklift.dev/test-builder-mark", testBuilderMark)
		}

		w := seen.workloads[c]
		if w == nil || open {
			continue
		}
		if ann, hasTemplate, ok := children.TemplateAnnotationsAsObserved(w.obj); ok && (!hasTemplate || ann[AnnotationBuilderRevision] == BuilderRevision) {
			continue // built by today's builders, or nothing to hold: as below, without building the observed object
		}
		observedTpl := templateOf(children.AsObserved(w.obj))
		if observedTpl == nil {
			continue
		}
		ann := children.StringValues(mapAt(observedTpl, "metadata")["annotations"])
		revision := ann[AnnotationBuilderRevision]
		if revision == BuilderRevision {
			continue
		}
		unchanged := ann[AnnotationBuildInputs] == inputs
		if _, recorded := ann[AnnotationBuildInputs]; !recorded {
			// Built before Summon recorded its inputs: the version and the config hash are the
			// user's changes it can still see.
			unchanged = w.version == version && w.configHash == configHash
		}
		if !unchanged {
			continue
		}
		obj["spec"].(map[string]any)["template"] = observedTpl
		b.held = append(b.held, string(c))
		b.heldRevision = revision
	}
	return b
}

// status is the instance's status.builders and its BuildersUpToDate condition.
func (b builds) status(conds *conditions) *v1beta1.BuildersStatus {
	if len(b.held) == 0 {
		conds.set(v1beta1.ConditionBuildersUpToDate, true, reasonBuildersCurrent, "the app workloads are built by builder revision "+BuilderRevision)
		return &v1beta1.BuildersStatus{Revision: BuilderRevision, Available: BuilderRevision}
	}
	was := b.heldRevision
	if was == "" {
		was = "(unrecorded)"
	}
	conds.set(v1beta1.ConditionBuildersUpToDate, false, ReasonBuildersHeld, fmt.Sprintf(
		"%s keep builder revision %s: revision %s waits for this instance's wave (summonctl waves status; docs/upgrading.md)",
		strings.Join(b.held, ", "), was, BuilderRevision))
	return &v1beta1.BuildersStatus{Revision: b.heldRevision, Available: BuilderRevision, Held: true, HeldComponents: b.held}
}

// ReasonBuildersHeld is the reason of a False BuildersUpToDate condition: the instance waits for
// its wave.
const ReasonBuildersHeld = "Held"

const reasonBuildersCurrent = "Current"

// notTemplateInputs are the spec fields that shape no app pod template, or shape it only through
// the component's version or config hash, which the inputs hash records apart. Leaving one of
// them in would make its change restart every app pod (the recorded inputs are in the template);
// a field missing from here (a new one) at worst restarts the pods on a change of it that a
// builder didn't read, and never holds back a change that a builder did read.
var notTemplateInputs = []string{
	"version", "replicas", "autoscaling", "paused", "migrations", "deletionPolicy",
	"ingress", "aliases", "config", "secrets", "database", "redis",
}

// inputsBase is what the inputs hash starts from: what shapes an app pod template apart from
// the builders and the component's release. That is the spec as the user wrote it (not as
// defaulted: a release that adds a default must not look like a user change) without
// notTemplateInputs, and the hook's defaults, as inputsBaseByMaps writes them. rawSpec is the
// parent's spec as decodeParent cut it out. Every app pod template records the hash of these
// bytes, so they must never change from one release to the next
// (TestBuildInputsHashIsStableAcrossReleases): children.CanonicalObject writes them without
// decoding where it can tell them exactly, and the maps write them everywhere else.
func inputsBase(rawSpec json.RawMessage, defaults v1beta1.HookDefaults) []byte {
	const head, middle = `{"spec":`, `,"defaults":`
	b := make([]byte, 0, len(head)+len(rawSpec)+len(middle)+64)
	b, ok := children.CanonicalObject(append(b, head...), string(rawSpec), notTemplateInputs...)
	if !ok {
		return inputsBaseByMaps(rawSpec, defaults)
	}
	d, _ := json.Marshal(defaults) // a struct of strings: it always encodes
	b = append(append(b, middle...), d...)
	return append(b, '}')
}

// inputsBaseByMaps is the definition of inputsBase's bytes: the spec decoded into a map, the
// fields that are not template inputs deleted, and the map and the defaults encoded (keys
// sorted).
func inputsBaseByMaps(rawSpec json.RawMessage, defaults v1beta1.HookDefaults) []byte {
	var spec map[string]any
	_ = json.Unmarshal(rawSpec, &spec)
	for _, k := range notTemplateInputs {
		delete(spec, k)
	}
	b, _ := json.Marshal(struct {
		Spec     map[string]any       `json:"spec"`
		Defaults v1beta1.HookDefaults `json:"defaults"`
	}{spec, defaults})
	return b
}

// inputsHash is what a component's template records of its inputs: the spec's part, the version
// the gate lets it run and the config it was rolled with.
func inputsHash(base []byte, c children.Component, version, configHash string) string {
	h := sha256.New()
	h.Write(base)
	fmt.Fprintf(h, "\x00%s\x00%s\x00%s", c, version, configHash)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// templateOf is a workload's spec.template, or nil.
func templateOf(obj metacontroller.Object) map[string]any {
	spec, _ := obj["spec"].(map[string]any)
	tpl, _ := spec["template"].(map[string]any)
	return tpl
}

func mapAt(m map[string]any, key string) map[string]any {
	out, _ := m[key].(map[string]any)
	return out
}

func setAnnotation(tpl map[string]any, key, value string) {
	meta := mapAt(tpl, "metadata")
	if meta == nil {
		meta = map[string]any{}
		tpl["metadata"] = meta
	}
	ann := mapAt(meta, "annotations")
	if ann == nil {
		ann = map[string]any{}
		meta["annotations"] = ann
	}
	ann[key] = value
}
