package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// RenderOptions are the options of summonctl render.
type RenderOptions struct {
	Filenames    []string
	Observed     string
	HookConfig   string
	DefaultImage string
	ShowSecrets  bool
	Output       string
	// Now is the hook's clock (conditions that change are stamped with it).
	Now func() time.Time
	g   *globals
}

func newRenderCommand(g *globals) *cobra.Command {
	o := &RenderOptions{g: g, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "render -f FILE",
		Short: "Print the children and status the hook would answer for a SummonPlatform, offline",
		Long: `Run the hook's own sync function (platform.Sync) offline on the SummonPlatforms of a file and print
the desired children and the status, as helm template prints a chart. With no observed objects it
shows a fresh install: what is created first. --observed takes live objects (a List or YAML
documents, e.g. from kubectl get ... -o yaml) to show what a sync would answer for them; the
SummonPlatform itself among them gives the status (migratedVersion) the hook remembers, and input
Secrets among them are the instance's inputs.

The hook's configuration (default image, systems outside the cluster) comes from --hook-config
(the JSON the hook serves at GET /config) or --default-image; without either, every system
outside the cluster is off. summonctl never has the hook's credential key: generated secrets are
placeholders, and an input Secret that is not given is rendered as empty (a warning says so).
Secret values are masked (***); the app config file shows its setting names only.

Exits 1 when the rendered status is an Error.`,
		Example: example(g.name, `
# A fresh install of a new instance
{{.}} render -f instances/summon-qa/car1-qa.yaml --hook-config hook-config.json

# What the hook would answer for the live objects
kubectl get summonplatform,deploy,sts,svc,secret,ing,pdb,hpa,job -n summon-qa -l app.kubernetes.io/instance=car1-qa -o yaml > observed.yaml
kubectl get summonplatform car1-qa -n summon-qa -o yaml >> observed.yaml
{{.}} render -f instances/summon-qa/car1-qa.yaml --observed observed.yaml`),
		Args: args(0, 0, "no arguments; name the file with -f"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.Filenames, "filename", "f", nil, "file(s) or directory of SummonPlatforms to render (- for stdin)")
	f.StringVar(&o.Observed, "observed", "", "file of live objects (children, input Secrets, the SummonPlatform with its status)")
	f.StringVar(&o.HookConfig, "hook-config", "", "the hook's configuration, as its GET /config serves it (JSON)")
	f.StringVar(&o.DefaultImage, "default-image", "", "the hook's --default-image, when there is no --hook-config")
	f.BoolVar(&o.ShowSecrets, "show-secrets", false, "print Secret values instead of masking them (placeholders for generated ones)")
	f.StringVarP(&o.Output, "output", "o", "yaml", "output format: yaml or json")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	_ = cmd.MarkFlagFilename("observed", "yaml", "yml", "json")
	_ = cmd.MarkFlagFilename("hook-config", "json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Validate checks the flags.
func (o *RenderOptions) Validate() error {
	if len(o.Filenames) == 0 {
		return usageError("render needs -f FILE")
	}
	if o.Output != "yaml" && o.Output != "json" {
		return usageError("--output must be yaml or json, not %q", o.Output)
	}
	if o.HookConfig != "" && o.DefaultImage != "" {
		return usageError("give --hook-config or --default-image, not both: the hook's configuration has its default image")
	}
	return nil
}

// Run renders every SummonPlatform of the files.
func (o *RenderOptions) Run(ctx context.Context) error {
	profile, err := o.profile()
	if err != nil {
		return err
	}
	docs, err := readDocuments(o.Filenames, o.g.streams.In)
	if err != nil {
		return err
	}
	var observed []map[string]any
	if o.Observed != "" {
		obsDocs, err := readDocuments([]string{o.Observed}, o.g.streams.In)
		if err != nil {
			return err
		}
		for _, d := range obsDocs {
			if d.err != nil {
				return fmt.Errorf("%s:%d: %v", d.file, d.line, d.err)
			}
			observed = append(observed, d.object)
		}
	}
	if o.ShowSecrets {
		fmt.Fprintln(o.g.streams.ErrOut, "warning: --show-secrets: the output holds the values of Secrets; keep it out of pull requests, CI logs and chat")
	}
	var out []map[string]any
	errorPhase := false
	n := 0
	for _, d := range docs {
		if d.err != nil {
			return fmt.Errorf("%s:%d: %v", d.file, d.line, d.err)
		}
		if !isSummonPlatform(d.object) {
			continue
		}
		n++
		r, err := renderPlatform(d.object, observed, profile, o.Now())
		if err != nil {
			return fmt.Errorf("%s:%d: %w", d.file, d.line, err)
		}
		for _, w := range r.warnings {
			fmt.Fprintf(o.g.streams.ErrOut, "warning: %s/%s: %s\n", metaString(d.object, "namespace"), metaString(d.object, "name"), w)
		}
		errorPhase = errorPhase || r.status.Phase == v1beta1.PhaseError
		out = append(out, r.objects(o.ShowSecrets)...)
	}
	if n == 0 {
		return fmt.Errorf("no SummonPlatform in %v", o.Filenames)
	}
	if err := printObjects(o.g.streams.Out, o.Output, out); err != nil {
		return err
	}
	if errorPhase {
		return found()
	}
	return nil
}

// profile is the hook's configuration from the flags.
func (o *RenderOptions) profile() (platform.HookProfile, error) {
	if o.HookConfig != "" {
		return readHookConfig(o.HookConfig)
	}
	// The install's hook has a credential key: its pods don't start without the Secret.
	return platform.HookProfile{Defaults: v1beta1.HookDefaults{Image: o.DefaultImage}, CredentialKey: true}, nil
}

// readHookConfig reads a file of the JSON the hook serves at GET /config.
func readHookConfig(path string) (platform.HookProfile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return platform.HookProfile{}, fmt.Errorf("reading the hook's configuration: %w", err)
	}
	return decodeHookProfile(b, path)
}

func decodeHookProfile(b []byte, from string) (platform.HookProfile, error) {
	var p platform.HookProfile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%s is not the hook's configuration (GET /config): %w", from, err)
	}
	return p, nil
}

// rendered is one SummonPlatform rendered.
type rendered struct {
	parent   map[string]any
	status   v1beta1.Status
	children []map[string]any
	warnings []string
}

// renderPlatform runs Sync on a SummonPlatform from a file and what was observed of it.
func renderPlatform(file map[string]any, observed []map[string]any, profile platform.HookProfile, now time.Time) (rendered, error) {
	parent := deepCopyJSON(file)
	name := metaString(parent, "name")
	meta, _ := parent["metadata"].(map[string]any)
	if meta == nil {
		return rendered{}, fmt.Errorf("the SummonPlatform has no metadata")
	}
	if metaString(parent, "namespace") == "" {
		meta["namespace"] = "default"
	}
	ns := metaString(parent, "namespace")
	var r rendered
	var rest []map[string]any
	for _, obj := range observed {
		if isSummonPlatform(obj) {
			if metaString(obj, "name") == name && (metaString(obj, "namespace") == ns || metaString(obj, "namespace") == "") {
				adoptLive(parent, obj)
			}
			continue
		}
		rest = append(rest, obj)
	}
	inputs, err := inputNames(parent)
	if err != nil {
		return r, err
	}
	var kids, related []map[string]any
	for _, obj := range rest {
		if isSecret(obj) && slices.Contains(inputs, metaString(obj, "name")) {
			related = append(related, obj)
			continue
		}
		kids = append(kids, obj)
	}
	for _, in := range inputs {
		if !hasObject(related, in) {
			r.warnings = append(r.warnings, fmt.Sprintf("input Secret %s is not among the observed objects: rendered as if it were empty; pass it with --observed to use its keys", in))
			related = append(related, emptySecret(ns, in, name))
		}
	}
	req, other, err := syncRequest(parent, kids, related, platform.DeclaredGroups(profile.Data))
	if err != nil {
		return r, err
	}
	for _, o := range other {
		r.warnings = append(r.warnings, o+" is not a child type Summon declares: left out")
	}
	configFile, err := configFileOf(name, kids)
	if err != nil {
		return r, err
	}
	env, stand, err := clientEnv(profile, now, configFile)
	if err != nil {
		return r, err
	}
	reason := assumeEnsured(req, &env)
	resp := platform.Sync(req, env)
	if configFile == nil {
		// Offline, every generated secret is a placeholder, as the help says; no note needed.
		stand.purposes = nil
	}
	r.warnings = append(r.warnings, notes(stand, reason)...)
	r.status, err = statusOf(resp)
	if err != nil {
		return r, err
	}
	r.parent = parent
	r.children = resp.Children
	return r, nil
}

// adoptLive gives the file's SummonPlatform what the live one has and a file doesn't: its UID,
// its generation (one more when the spec differs, as the API server counts) and its status.
func adoptLive(parent, live map[string]any) {
	meta := parent["metadata"].(map[string]any)
	liveMeta, _ := live["metadata"].(map[string]any)
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "generation"} {
		if v, ok := liveMeta[k]; ok {
			meta[k] = v
		}
	}
	if g, ok := liveMeta["generation"].(int64); ok && !reflect.DeepEqual(parent["spec"], live["spec"]) {
		meta["generation"] = g + 1
	}
	if st, ok := live["status"]; ok {
		parent["status"] = st
	}
}

// objects are what render prints: the SummonPlatform with its new status, then the children.
func (r rendered) objects(showSecrets bool) []map[string]any {
	parent := deepCopyJSON(r.parent)
	st, _ := toJSONMap(r.status)
	parent["status"] = st
	out := []map[string]any{parent}
	for _, c := range r.children {
		c = deepCopyJSON(c)
		if m, ok := c["metadata"].(map[string]any); ok && m["namespace"] == nil {
			m["namespace"] = metaString(r.parent, "namespace")
		}
		if !showSecrets {
			c = maskSecret(c)
		}
		out = append(out, c)
	}
	return out
}

// statusOf reads the status of a sync response.
func statusOf(resp *metacontroller.SyncResponse) (v1beta1.Status, error) {
	var st v1beta1.Status
	b, err := json.Marshal(resp.Status)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// printObjects prints objects through cli-runtime's printers: YAML documents, or one JSON List.
func printObjects(w io.Writer, format string, objs []map[string]any) error {
	if format == "json" {
		items := make([]any, len(objs))
		for i, o := range objs {
			items[i] = o
		}
		list := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "List", "items": items}}
		return (&printers.JSONPrinter{}).PrintObj(list, w)
	}
	p := &printers.YAMLPrinter{}
	for _, o := range objs {
		if err := p.PrintObj(&unstructured.Unstructured{Object: o}, w); err != nil {
			return err
		}
	}
	return nil
}

// emptySecret stands for an input Secret that is not given. It is marked as an input of the
// instance, as the real one must be: the render shows the instance as it runs once it is created.
func emptySecret(namespace, name, instance string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata": map[string]any{"name": name, "namespace": namespace,
			"labels":      map[string]any{v1beta1.LabelInput: "true"},
			"annotations": map[string]any{v1beta1.AnnotationInputFor: instance}},
		"data": map[string]any{}}
}

func hasObject(objs []map[string]any, name string) bool {
	for _, o := range objs {
		if metaString(o, "name") == name {
			return true
		}
	}
	return false
}
