package cli

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// kubectlLastApplied is kubectl apply's (and Argo CD's) record of the last applied file.
const kubectlLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// serverOwned are the metadata fields the API server or Metacontroller writes; a diff of what
// an apply changes leaves them out.
var serverOwned = []string{
	"managedFields", "uid", "resourceVersion", "generation", "creationTimestamp",
	"ownerReferences", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
}

// comparable is an object as a diff shows it: no status, nothing the server owns, neither
// Metacontroller's nor kubectl's last-applied annotation, no controller-uid label.
func comparable(obj map[string]any) map[string]any {
	if obj == nil {
		return nil
	}
	out := deepCopyJSON(obj)
	delete(out, "status")
	meta, _ := out["metadata"].(map[string]any)
	if meta == nil {
		return out
	}
	for _, f := range serverOwned {
		delete(meta, f)
	}
	for key, drop := range map[string][]string{
		"annotations": {metacontroller.LastAppliedAnnotation, kubectlLastApplied},
		"labels":      {metacontroller.ControllerUIDLabel},
	} {
		m, _ := meta[key].(map[string]any)
		for _, k := range drop {
			delete(m, k)
		}
		if m != nil && len(m) == 0 {
			delete(meta, key)
		}
	}
	return out
}

// change is one object a sync changes: before is what is live, after what Metacontroller would
// leave; either is nil for an object created or deleted.
type change struct {
	kind, key     string
	before, after map[string]any
}

func (c change) action() string {
	switch {
	case c.before == nil:
		return "creates"
	case c.after == nil:
		return "deletes"
	}
	return "updates"
}

// differs says whether a change changes anything a diff shows.
func (c change) differs() bool {
	return !reflect.DeepEqual(comparable(c.before), comparable(c.after))
}

// unified is the unified diff of one change, with Secret values masked, headed by the object it
// is about; "" when nothing changes.
func (c change) unified() (string, error) {
	if !c.differs() {
		return "", nil
	}
	before, after := maskSecretPair(comparable(c.before), comparable(c.after))
	text := func(obj map[string]any) ([]string, error) {
		if obj == nil {
			return nil, nil
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		lines := strings.SplitAfter(string(b), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		return lines, nil
	}
	a, err := text(before)
	if err != nil {
		return "", err
	}
	b, err := text(after)
	if err != nil {
		return "", err
	}
	from, to := "live "+c.kind+" "+c.key, "after sync "+c.kind+" "+c.key
	if c.before == nil {
		from = "/dev/null"
	}
	if c.after == nil {
		to = "/dev/null"
	}
	out, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: a, B: b, FromFile: from, ToFile: to, Context: 3})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("diff %s %s\n%s", c.kind, c.key, out), nil
}

// workloadRelease is the version and config hash a workload's pod template runs.
func workloadRelease(obj map[string]any) (version, configHash string) {
	spec, _ := obj["spec"].(map[string]any)
	tpl, _ := spec["template"].(map[string]any)
	meta, _ := tpl["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	version, _ = labels[children.LabelVersion].(string)
	configHash, _ = ann[children.AnnotationConfigHash].(string)
	return version, configHash
}

func labelOf(obj map[string]any, key string) string {
	meta, _ := obj["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	s, _ := labels[key].(string)
	return s
}

// diffSummary says in words what a sync of the new spec will do: which Job starts, which
// workloads move or keep running the old version until it succeeds, what is created and deleted,
// and how the phase moves.
func diffSummary(version string, before, after v1beta1.Status, changes []change) []string {
	var out []string
	var startedJob string
	var keep, roll, restart, create []string
	keptOn := ""
	other := map[string][]string{}
	for _, c := range changes {
		if !c.differs() {
			continue
		}
		obj := c.after
		if obj == nil {
			obj = c.before
		}
		component := labelOf(obj, children.LabelComponent)
		name := metaString(obj, "name")
		switch {
		case c.kind == "Job" && component == string(children.Migrations) && c.before == nil:
			startedJob = name
			out = append(out, fmt.Sprintf("starts Job %s: the migrations of version %s", name, labelOf(obj, children.LabelVersion)))
			continue
		case (c.kind == "Deployment" || c.kind == "StatefulSet") && c.before != nil && c.after != nil:
			bv, bh := workloadRelease(c.before)
			av, ah := workloadRelease(c.after)
			switch {
			case av != bv:
				roll = append(roll, component)
			case ah != bh:
				restart = append(restart, component)
			default:
				other["updates"] = append(other["updates"], c.kind+" "+name)
			}
			continue
		case (c.kind == "Deployment" || c.kind == "StatefulSet") && c.before == nil && component != "":
			create = append(create, component)
			continue
		}
		other[c.action()] = append(other[c.action()], c.kind+" "+name)
	}
	for _, c := range changes {
		if c.after == nil || c.before == nil || (c.kind != "Deployment" && c.kind != "StatefulSet") {
			continue
		}
		av, _ := workloadRelease(c.after)
		if av != "" && av != version {
			keep = append(keep, labelOf(c.after, children.LabelComponent))
			keptOn = av
		}
	}
	byComponent := func(names []string) []string {
		var out []string
		for _, c := range children.AppComponents {
			if slices.Contains(names, string(c)) {
				out = append(out, string(c))
			}
		}
		return out
	}
	keep, roll, restart, create = byComponent(keep), byComponent(roll), byComponent(restart), byComponent(create)
	if len(keep) > 0 {
		until := "until the migrations of " + version + " succeed"
		if startedJob != "" {
			until = "until it succeeds"
		}
		out = append(out, fmt.Sprintf("%s keep running %s %s", strings.Join(keep, ", "), keptOn, until))
	}
	if len(roll) > 0 {
		out = append(out, fmt.Sprintf("rolls %s to version %s", strings.Join(roll, ", "), version))
	}
	if len(restart) > 0 {
		out = append(out, fmt.Sprintf("restarts the pods of %s: the app config changed", strings.Join(restart, ", ")))
	}
	if len(create) > 0 {
		out = append(out, fmt.Sprintf("creates %s", strings.Join(create, ", ")))
	}
	for _, verb := range []string{"creates", "updates", "deletes"} {
		if names := other[verb]; len(names) > 0 {
			slices.Sort(names)
			out = append(out, verb+" "+strings.Join(names, ", "))
		}
	}
	switch {
	case before.Phase != after.Phase:
		from := string(before.Phase)
		if from == "" {
			from = "(none)"
		}
		out = append(out, fmt.Sprintf("phase %s → %s: %s", from, after.Phase, after.Message))
	case before.Message != after.Message:
		out = append(out, fmt.Sprintf("phase stays %s: %s", after.Phase, after.Message))
	}
	return out
}
