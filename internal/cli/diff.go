package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/jsonmergepatch"
	"k8s.io/apimachinery/pkg/util/mergepatch"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// DiffOptions are the options of summonctl diff.
type DiffOptions struct {
	Filenames []string
	Hook      hookFlags
	Now       func() time.Time
	g         *globals
}

func newDiffCommand(g *globals) *cobra.Command {
	o := &DiffOptions{g: g, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "diff -f FILE",
		Short: "Show what applying a SummonPlatform file would change in the cluster",
		Long: `Show what applying a SummonPlatform file would change: the SummonPlatform itself as the API server
would store it (a server-side dry run of kubectl apply's three-way merge, as Argo CD applies),
then every child as Metacontroller would leave it after the hook's next sync, as unified diffs,
then a summary in words: which migration Job starts, which workloads keep running the old version
until it succeeds, what is created and deleted. Server-owned fields (status, uid,
resourceVersion, managedFields, ownerReferences, the last-applied annotations, the
controller-uid label) are left out. Secret values are masked as kubectl diff masks them: only
which keys, and which settings of the app config file, change.

It reads the live objects with your credentials and the hook's configuration through the API
server's service proxy. It never has the hook's credential key: generated secrets and the config
hash come from the live config Secret, so a file that matches a converged instance gives an
empty diff.

Exits 0 with no differences, 1 with differences, more than 1 on an error (as kubectl diff).`,
		Example: example(g.name, `
# Review a version bump before merging it
{{.}} diff -f instances/summon-qa/car1-qa.yaml`),
		Args: args(0, 0, "no arguments; name the file with -f"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.Filenames) == 0 {
				return usageError("diff needs -f FILE")
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringSliceVarP(&o.Filenames, "filename", "f", nil, "file(s) or directory of SummonPlatforms (- for stdin)")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	o.Hook.add(cmd.Flags(), true)
	return cmd
}

// Run diffs every SummonPlatform of the files against the cluster.
func (o *DiffOptions) Run(ctx context.Context) error {
	docs, err := readDocuments(o.Filenames, o.g.streams.In)
	if err != nil {
		return err
	}
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	profile, err := o.Hook.profile(ctx, c.kube)
	if err != nil {
		return err
	}
	if note := builderMismatch(profile); note != "" {
		fmt.Fprintf(o.g.streams.ErrOut, "note: %s\n", note)
	}
	differs := false
	n := 0
	for _, d := range docs {
		if d.err != nil {
			return fmt.Errorf("%s:%d: %v", d.file, d.line, d.err)
		}
		if !isSummonPlatform(d.object) {
			continue
		}
		n++
		res, err := o.diffOne(ctx, c, profile, d.object)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", d.file, d.line, err)
		}
		for _, note := range res.notes {
			fmt.Fprintf(o.g.streams.ErrOut, "note: %s\n", note)
		}
		if len(res.diffs) == 0 && len(res.summary) == 0 {
			continue
		}
		differs = true
		for _, text := range res.diffs {
			fmt.Fprint(o.g.streams.Out, text)
		}
		fmt.Fprintf(o.g.streams.Out, "# summary: a sync of SummonPlatform %s\n", res.key)
		for _, line := range res.summary {
			fmt.Fprintf(o.g.streams.Out, "#   %s\n", line)
		}
	}
	if n == 0 {
		return fmt.Errorf("no SummonPlatform in %v", o.Filenames)
	}
	if differs {
		return found()
	}
	return nil
}

// diffResult is the diff of one SummonPlatform.
type diffResult struct {
	key     string
	diffs   []string
	summary []string
	notes   []string
}

func (o *DiffOptions) diffOne(ctx context.Context, c *clients, profile platform.HookProfile, file map[string]any) (diffResult, error) {
	file = deepCopyJSON(file)
	meta, _ := file["metadata"].(map[string]any)
	if meta == nil {
		return diffResult{}, fmt.Errorf("the SummonPlatform has no metadata")
	}
	if metaString(file, "namespace") == "" {
		meta["namespace"] = c.namespace
	}
	ns, name := metaString(file, "namespace"), metaString(file, "name")
	res := diffResult{key: ns + "/" + name}

	live, err := c.platforms(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return res, fmt.Errorf("reading SummonPlatform %s: %w", res.key, err)
	}
	if apierrors.IsNotFound(err) {
		live = nil
	}
	after, err := o.dryRunApply(ctx, c, live, file)
	if err != nil {
		return res, err
	}

	var observed []map[string]any
	if live != nil {
		if observed, err = c.observedChildren(ctx, live, platform.DeclaredGroups(profile.Data)); err != nil {
			return res, err
		}
	}
	related, err := c.relatedSecrets(ctx, after.Object)
	if err != nil {
		return res, err
	}
	req, _, err := syncRequest(after.Object, observed, related, platform.DeclaredGroups(profile.Data))
	if err != nil {
		return res, err
	}
	configFile, err := configFileOf(name, observed)
	if err != nil {
		return res, err
	}
	env, stand, err := clientEnv(profile, o.Now(), configFile)
	if err != nil {
		return res, err
	}
	reason := assumeEnsured(req, &env)
	resp := platform.Sync(req, env)
	res.notes = notes(stand, reason)
	newStatus, err := statusOf(resp)
	if err != nil {
		return res, err
	}

	var changes []change
	parentBefore := map[string]any(nil)
	if live != nil {
		parentBefore = live.Object
	}
	changes = append(changes, change{kind: v1beta1.Kind, key: res.key, before: parentBefore, after: after.Object})
	childChanges, err := childChanges(ns, after.GetUID(), observed, resp.Children, updateMethods(ctx, c))
	if err != nil {
		return res, err
	}
	changes = append(changes, childChanges...)
	for _, ch := range changes {
		text, err := ch.unified()
		if err != nil {
			return res, err
		}
		if text != "" {
			res.diffs = append(res.diffs, text)
		}
	}
	var oldStatus v1beta1.Status
	if live != nil {
		if st, ok := live.Object["status"]; ok {
			b, _ := json.Marshal(st)
			_ = json.Unmarshal(b, &oldStatus)
		}
	}
	version, _, _ := unstructured.NestedString(after.Object, "spec", "version")
	res.summary = diffSummary(version, oldStatus, newStatus, changes)
	return res, nil
}

// dryRunApply is the SummonPlatform as the API server would store it once the file is applied
// as kubectl apply (and Argo CD, by default) applies it: a three-way JSON merge patch from the
// last applied file (kubectl's annotation), the new file and the live object, so that a field
// removed from the file is removed and one that someone else set (retry-migration's attempt)
// stays. The server runs it as a dry run: defaulting, validation and the generation bump, and
// nothing stored.
func (o *DiffOptions) dryRunApply(ctx context.Context, c *clients, live *unstructured.Unstructured, file map[string]any) (*unstructured.Unstructured, error) {
	ns, name := metaString(file, "namespace"), metaString(file, "name")
	opts := metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "summonctl-diff"}
	if live == nil {
		out, err := c.platforms(ns).Create(ctx, &unstructured.Unstructured{Object: file}, metav1.CreateOptions{DryRun: opts.DryRun, FieldManager: opts.FieldManager})
		if err != nil {
			return nil, fmt.Errorf("the API server would refuse to create SummonPlatform %s/%s: %w", ns, name, err)
		}
		return out, nil
	}
	modified, err := json.Marshal(file)
	if err != nil {
		return nil, err
	}
	current, err := json.Marshal(live.Object)
	if err != nil {
		return nil, err
	}
	var original []byte
	if s := live.GetAnnotations()[kubectlLastApplied]; s != "" {
		original = []byte(s)
	}
	patch, err := jsonmergepatch.CreateThreeWayJSONMergePatch(original, modified, current,
		mergepatch.RequireKeyUnchanged("apiVersion"), mergepatch.RequireKeyUnchanged("kind"), mergepatch.RequireMetadataKeyUnchanged("name"))
	if err != nil {
		return nil, fmt.Errorf("merging the file into SummonPlatform %s/%s: %w", ns, name, err)
	}
	out, err := c.platforms(ns).Patch(ctx, name, types.MergePatchType, patch, opts)
	if err != nil {
		return nil, fmt.Errorf("the API server would refuse the file for SummonPlatform %s/%s: %w", ns, name, err)
	}
	return out, nil
}

// childChanges pairs every observed child with what Metacontroller would make of it after the
// hook's answer: applied (InPlace), left alone (OnDelete), created, or deleted (left out of the
// answer).
func childChanges(namespace string, uid types.UID, observed []map[string]any, desired []metacontroller.Object, methods map[string]string) ([]change, error) {
	type ref struct{ group, key string }
	refOf := func(obj map[string]any) ref {
		kind, _ := obj["kind"].(string)
		apiVersion, _ := obj["apiVersion"].(string)
		ns := metaString(obj, "namespace")
		if ns == "" {
			ns = namespace
		}
		return ref{metacontroller.GroupKey(kind, apiVersion), ns + "/" + metaString(obj, "name")}
	}
	live := map[ref]map[string]any{}
	for _, obj := range observed {
		live[refOf(obj)] = obj
	}
	var out []change
	answered := map[ref]bool{}
	for _, d := range desired {
		d = asApplied(d, namespace, uid)
		r := refOf(d)
		answered[r] = true
		kind := strings.SplitN(r.group, ".", 2)[0]
		obs, ok := live[r]
		switch {
		case !ok:
			out = append(out, change{kind: kind, key: r.key, after: d})
		case methods[r.group] == "OnDelete":
			out = append(out, change{kind: kind, key: r.key, before: obs, after: obs})
		default:
			applied, err := metacontroller.Apply(obs, d)
			if err != nil {
				return nil, fmt.Errorf("applying %s %s: %w", kind, r.key, err)
			}
			out = append(out, change{kind: kind, key: r.key, before: obs, after: applied})
		}
	}
	for _, r := range slices.SortedFunc(maps.Keys(live), func(a, b ref) int { return strings.Compare(a.group+a.key, b.group+b.key) }) {
		if !answered[r] {
			out = append(out, change{kind: strings.SplitN(r.group, ".", 2)[0], key: r.key, before: live[r]})
		}
	}
	return out, nil
}

// asApplied is a child of the answer as Metacontroller applies it: in the parent's namespace,
// with the controller-uid label of generateSelector.
func asApplied(obj metacontroller.Object, namespace string, uid types.UID) map[string]any {
	out := deepCopyJSON(obj)
	meta, _ := out["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		out["metadata"] = meta
	}
	if meta["namespace"] == nil {
		meta["namespace"] = namespace
	}
	labels, _ := meta["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
		meta["labels"] = labels
	}
	if _, ok := labels[metacontroller.ControllerUIDLabel]; !ok {
		labels[metacontroller.ControllerUIDLabel] = string(uid)
	}
	return out
}
