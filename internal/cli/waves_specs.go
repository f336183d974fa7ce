package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/platform"
)

// Where the hook's open builder wave lives in a cluster: a ConfigMap that manifests/deployment.yaml
// mounts (optional) at the hook's --rollout-file.
const (
	defaultRolloutNamespace = "summon-system"
	defaultRolloutConfigMap = "summon-rollout"
	rolloutKey              = "rollout.yaml"
)

// waveInstance is one SummonPlatform as the waves commands see it.
type waveInstance struct {
	Namespace, Name string
	UID             string
	Labels          map[string]string
	Builders        *v1beta1.BuildersStatus
	Ready           bool
	ReadyMessage    string
}

func (i waveInstance) key() string { return i.Namespace + "/" + i.Name }

// waveInstanceOf reads a SummonPlatform as the hook reads it.
func waveInstanceOf(obj map[string]any) (waveInstance, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return waveInstance{}, err
	}
	p, err := platform.ReadParent(raw)
	if err != nil {
		return waveInstance{}, err
	}
	i := waveInstance{Namespace: p.Meta.Namespace, Name: p.Meta.Name, UID: string(p.Meta.UID), Labels: p.Meta.Labels, Builders: p.Status.Builders}
	if c := meta.FindStatusCondition(p.Status.Conditions, v1beta1.ConditionReady); c != nil {
		i.Ready, i.ReadyMessage = c.Status == metav1.ConditionTrue, c.Message
	}
	return i, nil
}

// inWave says whether the wave releases its revision to the instance, as the hook decides it.
func inWave(w platform.Wave, i waveInstance) bool {
	return w.Open(w.Revision, i.UID, i.Labels)
}

// rolled says whether an instance of the wave runs the wave's revision and is Ready.
func rolled(w platform.Wave, i waveInstance) bool {
	b := i.Builders
	return b != nil && !b.Held && b.Revision == w.Revision && i.Ready
}

// waveProgress splits the instances of the wave into those rolled and those still pending.
func waveProgress(w platform.Wave, instances []waveInstance) (done, pending []waveInstance) {
	for _, i := range instances {
		if !inWave(w, i) {
			continue
		}
		if rolled(w, i) {
			done = append(done, i)
		} else {
			pending = append(pending, i)
		}
	}
	return done, pending
}

// describeWave says what a wave opens, in one line.
func describeWave(w platform.Wave) string {
	if w == (platform.Wave{}) {
		return "no wave open: every instance keeps the builder revision it runs until its wave opens"
	}
	parts := []string{fmt.Sprintf("revision %s", w.Revision)}
	switch {
	case w.Urgent:
		parts = append(parts, "urgent: every instance")
	default:
		parts = append(parts, fmt.Sprintf("%d%% of the fleet", w.Percent))
	}
	if w.Selector != "" {
		parts = append(parts, "and instances matching "+w.Selector)
	}
	return "wave open: " + strings.Join(parts, ", ")
}

// wavesTable shows which instances run which builder revision, which are held, which are in the
// open wave, and whether they are Ready; then a count per revision.
func wavesTable(w platform.Wave, instances []waveInstance) string {
	var b strings.Builder
	fmt.Fprintln(&b, describeWave(w))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tREVISION\tAVAILABLE\tHELD\tIN WAVE\tREADY")
	count := map[string]int{}
	held := 0
	for _, i := range sortedInstances(instances) {
		rev, avail, h := "-", "-", "no"
		if i.Builders != nil {
			rev, avail = orDash(i.Builders.Revision), orDash(i.Builders.Available)
			if i.Builders.Held {
				h = "yes"
				held++
			}
		}
		count[rev]++
		in := "no"
		if inWave(w, i) {
			in = "yes"
		}
		ready := "False"
		if i.Ready {
			ready = "True"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.key(), rev, avail, h, in, ready)
	}
	tw.Flush()
	var revs []string
	for _, r := range slices.Sorted(maps.Keys(count)) {
		revs = append(revs, fmt.Sprintf("%d on %s", count[r], r))
	}
	fmt.Fprintf(&b, "%d instances: %s; %d held\n", len(instances), strings.Join(revs, ", "), held)
	return b.String()
}

func sortedInstances(in []waveInstance) []waveInstance {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b waveInstance) int { return strings.Compare(a.key(), b.key()) })
	return out
}

// availableRevision is the builder revision the hook offers, as the instances' statuses report
// it: exactly one, or an error that says to name it.
func availableRevision(instances []waveInstance) (string, error) {
	seen := map[string]bool{}
	for _, i := range instances {
		if i.Builders != nil && i.Builders.Available != "" {
			seen[i.Builders.Available] = true
		}
	}
	switch revs := slices.Sorted(maps.Keys(seen)); len(revs) {
	case 1:
		return revs[0], nil
	case 0:
		return "", fmt.Errorf("no instance reports the hook's builder revision yet (status.builders.available): give --revision")
	default:
		return "", fmt.Errorf("the instances report several builder revisions available (%s): the hook is being replaced; wait for it, or give --revision", strings.Join(revs, ", "))
	}
}

// waveOfConfigMap reads the wave a rollout ConfigMap holds; a ConfigMap without the key is no
// wave, as a missing file is for the hook.
func waveOfConfigMap(cm *corev1.ConfigMap) (platform.Wave, error) {
	var w platform.Wave
	text, ok := cm.Data[rolloutKey]
	if !ok || strings.TrimSpace(text) == "" {
		return w, nil
	}
	if err := yaml.UnmarshalStrict([]byte(text), &w); err != nil {
		return w, fmt.Errorf("ConfigMap %s/%s holds no wave in %s: %w", cm.Namespace, cm.Name, rolloutKey, err)
	}
	return w, nil
}

// rolloutFileText is what waves open writes for the hook to read.
func rolloutFileText(w platform.Wave) string {
	b, _ := yaml.Marshal(w)
	return "# The open builder wave (docs/upgrading.md), written by summonctl waves open.\n" + string(b)
}

// builderMismatch warns when this summonctl builds pod templates with other builders than the
// hook's: its diff then shows the templates this build would make, not the hook's.
func builderMismatch(p platform.HookProfile) string {
	if p.BuilderRevision == "" || p.BuilderRevision == platform.BuilderRevision {
		return ""
	}
	return fmt.Sprintf("this summonctl's builders (revision %s) are not the hook's (%s): pod templates are shown as this build makes them; "+
		"use the summonctl of the release the hook runs", platform.BuilderRevision, p.BuilderRevision)
}
