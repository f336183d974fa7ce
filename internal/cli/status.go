package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/forklift-dev/summon/pkg/children"
)

// StatusOptions are the options of summonctl status.
type StatusOptions struct {
	Name          string
	AllNamespaces bool
	Watch         bool
	Output        string
	Now           func() time.Time
	g             *globals
}

func newStatusCommand(g *globals) *cobra.Command {
	o := &StatusOptions{g: g, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show each instance's phase, versions, components, migration Job and Ready condition",
		Long: `Show a table per SummonPlatform: the phase, the wanted, migrated and deployed versions, each
component's ready/desired pods, the migration Job of the wanted version and its state, the Ready
condition's message and the age. -w follows changes through a watch until interrupted: on a
terminal the tables are redrawn in place, otherwise a line is printed per change. -o yaml|json
prints the SummonPlatforms themselves.`,
		Example: example(g.name, `
# Every instance of a namespace
{{.}} status -n summon-qa

# Follow one instance's upgrade
{{.}} status car1-qa -n summon-qa -w

# Every instance of the cluster, as data
{{.}} status -A -o json`),
		Args:              args(0, 1, "at most one NAME"),
		ValidArgsFunction: completePlatforms(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				o.Name = a[0]
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "every namespace")
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "follow changes until interrupted")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "print the SummonPlatforms as yaml or json instead of the tables")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	if o.Output != "" && o.Output != "yaml" && o.Output != "json" {
		return usageError("--output must be yaml or json, not %q", o.Output)
	}
	if o.Watch && o.Output != "" {
		return usageError("--watch draws tables; it takes no --output")
	}
	if o.AllNamespaces && o.Name != "" {
		return usageError("give a NAME or --all-namespaces, not both")
	}
	return nil
}

// Run prints the tables once, or follows them.
func (o *StatusOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if o.AllNamespaces {
		ns = ""
	}
	if o.Watch {
		return o.follow(ctx, c, ns)
	}
	var items []unstructured.Unstructured
	if o.Name != "" {
		p, err := c.getPlatform(ctx, o.g, ns, o.Name)
		if err != nil {
			return err
		}
		items = []unstructured.Unstructured{*p}
	} else {
		list, err := c.platforms(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing SummonPlatforms: %w", err)
		}
		items = list.Items
		if len(items) == 0 {
			where := "namespace " + ns
			if ns == "" {
				where = "any namespace"
			}
			fmt.Fprintf(o.g.streams.ErrOut, "no SummonPlatform in %s\n", where)
			return nil
		}
	}
	if o.Output != "" {
		objs := make([]map[string]any, len(items))
		for i := range items {
			objs[i] = items[i].Object
		}
		return printObjects(o.g.streams.Out, o.Output, objs)
	}
	jobs, err := c.kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: children.LabelComponent + "=" + string(children.Migrations)})
	if err != nil {
		return fmt.Errorf("listing migration Jobs: %w", err)
	}
	objs := make([]map[string]any, len(items))
	for i := range items {
		objs[i] = items[i].Object
	}
	text, err := statusTables(objs, jobs.Items, o.Now())
	if err != nil {
		return err
	}
	_, err = io.WriteString(o.g.streams.Out, text)
	return err
}

// statusTables are the tables of several instances, sorted by namespace and name.
func statusTables(objs []map[string]any, jobs []batchv1.Job, now time.Time) (string, error) {
	views, err := viewsOf(objs, jobs)
	if err != nil {
		return "", err
	}
	blocks := make([]string, len(views))
	for i, v := range views {
		blocks[i] = statusTable(v, now)
	}
	return strings.Join(blocks, "\n"), nil
}

func viewsOf(objs []map[string]any, jobs []batchv1.Job) ([]instanceView, error) {
	var views []instanceView
	for _, obj := range objs {
		v, err := viewOf(obj, jobs)
		if err != nil {
			return nil, err
		}
		views = append(views, v)
	}
	slices.SortFunc(views, func(a, b instanceView) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return views, nil
}

// follow watches the SummonPlatforms and their migration Jobs (informers: a list, then a watch)
// and prints on every change until ctx ends.
func (o *StatusOptions) follow(ctx context.Context, c *clients, ns string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	platforms := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.dyn, 0, ns, func(lo *metav1.ListOptions) {
		if o.Name != "" {
			lo.FieldSelector = "metadata.name=" + o.Name
		}
	})
	pInformer := platforms.ForResource(platformsGVR).Informer()
	if _, err := pInformer.AddEventHandler(handler); err != nil {
		return err
	}
	jobsFactory := informers.NewSharedInformerFactoryWithOptions(c.kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.LabelSelector = children.LabelComponent + "=" + string(children.Migrations)
		}))
	jInformer := jobsFactory.Batch().V1().Jobs()
	if _, err := jInformer.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	platforms.Start(ctx.Done())
	jobsFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pInformer.HasSynced, jInformer.Informer().HasSynced) {
		return ctx.Err()
	}
	terminal := isTerminal(o.g.streams.Out)
	last := map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		var objs []map[string]any
		for _, it := range pInformer.GetStore().List() {
			objs = append(objs, it.(*unstructured.Unstructured).Object)
		}
		jobPtrs, err := jInformer.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		jobs := make([]batchv1.Job, len(jobPtrs))
		for i, j := range jobPtrs {
			jobs[i] = *j
		}
		views, err := viewsOf(objs, jobs)
		if err != nil {
			return err
		}
		now := o.Now()
		if terminal {
			var b strings.Builder
			b.WriteString("\x1b[H\x1b[2J")
			fmt.Fprintf(&b, "%s   (watching; Ctrl-C to stop)\n\n", now.Format(time.TimeOnly))
			for i, v := range views {
				if i > 0 {
					b.WriteString("\n")
				}
				b.WriteString(statusTable(v, now))
			}
			if len(views) == 0 {
				b.WriteString("no SummonPlatform yet\n")
			}
			fmt.Fprint(o.g.streams.Out, b.String())
			continue
		}
		for _, v := range views {
			key := v.Namespace + "/" + v.Name
			// The line without its timestamp says whether anything changed.
			line := statusLine(v, time.Time{})
			if last[key] == line {
				continue
			}
			last[key] = line
			fmt.Fprintln(o.g.streams.Out, statusLine(v, now))
		}
	}
}

// isTerminal says whether w is a terminal, where output is redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// completePlatforms completes a NAME with the SummonPlatforms of the namespace.
func completePlatforms(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, a []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(a) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := g.clients()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		list, err := c.platforms(c.namespace).List(cmd.Context(), metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []cobra.Completion
		for _, p := range list.Items {
			names = append(names, p.GetName())
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
