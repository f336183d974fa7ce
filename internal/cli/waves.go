package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/platform"
)

// rolloutFlags name the ConfigMap that holds the open builder wave.
type rolloutFlags struct {
	namespace, name string
}

func (r *rolloutFlags) add(f *pflag.FlagSet) {
	f.StringVar(&r.namespace, "rollout-namespace", defaultRolloutNamespace, "namespace of the hook and of its rollout ConfigMap")
	f.StringVar(&r.name, "rollout-configmap", defaultRolloutConfigMap, "name of the ConfigMap mounted at the hook's --rollout-file")
}

// wave reads the open wave; no ConfigMap is no wave.
func (r *rolloutFlags) wave(ctx context.Context, c *clients) (platform.Wave, error) {
	cm, err := c.kube.CoreV1().ConfigMaps(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return platform.Wave{}, nil
	}
	if err != nil {
		return platform.Wave{}, fmt.Errorf("reading ConfigMap %s/%s: %w", r.namespace, r.name, err)
	}
	return waveOfConfigMap(cm)
}

// instances reads every SummonPlatform of namespace ("" for all).
func waveInstances(ctx context.Context, c *clients, namespace string) ([]waveInstance, error) {
	list, err := c.platforms(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing SummonPlatforms: %w", err)
	}
	out := make([]waveInstance, 0, len(list.Items))
	for _, item := range list.Items {
		i, err := waveInstanceOf(item.Object)
		if err != nil {
			return nil, fmt.Errorf("reading SummonPlatform %s/%s: %w", item.GetNamespace(), item.GetName(), err)
		}
		out = append(out, i)
	}
	return out, nil
}

func newWavesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "waves",
		Short: "Roll a new Summon release's builder changes out across the fleet in waves",
		Long: `Roll a new Summon release's builder changes out across the fleet in waves.

A Summon release that changes how pods are built (a probe, a security setting) does not restart
every instance at once: each instance keeps the pod templates it runs until its wave opens, while
a change its user asks for (a version, a setting) rolls at once. The open wave is a ConfigMap that
the hook reads (docs/upgrading.md).`,
		Example: example(g.name, `
# Which instances run which builder revision, and which are held
{{.}} waves status

# Canaries first, then 5%, 25%, everyone; watch each wave become Ready
{{.}} waves open --percent 0 --selector tier=canary && {{.}} waves watch --timeout 15m
{{.}} waves open --percent 5 --selector tier=canary && {{.}} waves watch --timeout 15m
{{.}} waves open --percent 25 && {{.}} waves watch --timeout 30m
{{.}} waves open --percent 100 && {{.}} waves watch --timeout 1h`),
		Args: args(0, 0, "a subcommand: status, open or watch"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newWavesStatusCommand(g), newWavesOpenCommand(g), newWavesWatchCommand(g))
	return cmd
}

// WavesStatusOptions are the options of summonctl waves status.
type WavesStatusOptions struct {
	AllNamespaces bool
	rollout       rolloutFlags
	g             *globals
}

func newWavesStatusCommand(g *globals) *cobra.Command {
	o := &WavesStatusOptions{g: g}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which instances run which builder revision, which are held and which are in the open wave",
		Example: example(g.name, `
# The whole fleet
{{.}} waves status -A`),
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context()) },
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "every namespace")
	o.rollout.add(cmd.Flags())
	return cmd
}

// Run prints the table.
func (o *WavesStatusOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if o.AllNamespaces {
		ns = ""
	}
	w, err := o.rollout.wave(ctx, c)
	if err != nil {
		return err
	}
	instances, err := waveInstances(ctx, c, ns)
	if err != nil {
		return err
	}
	_, err = io.WriteString(o.g.streams.Out, wavesTable(w, instances))
	return err
}

// WavesOpenOptions are the options of summonctl waves open.
type WavesOpenOptions struct {
	Wave    platform.Wave
	rollout rolloutFlags
	g       *globals
}

func newWavesOpenCommand(g *globals) *cobra.Command {
	o := &WavesOpenOptions{g: g}
	cmd := &cobra.Command{
		Use:   "open --percent N [--selector LABELS] [--urgent]",
		Short: "Open a wave: the share of the fleet (and the instances matching a selector) that takes the hook's builder revision",
		Long: `Open a wave: write the ConfigMap the hook reads at its --rollout-file. An instance is in the wave
when a stable hash of its UID falls below --percent, or its labels match --selector; a larger wave
holds every instance of a smaller one. The revision is the one the instances report available
(status.builders.available) unless --revision names it. The hook sees the change once the kubelet
refreshes its ConfigMap volume (up to about a minute). --urgent releases every instance at once,
for a security fix. --percent 0 without a selector closes the wave: instances not yet rolled keep
their templates (those rolled stay rolled).`,
		Example: example(g.name, `
# Canaries first
{{.}} waves open --percent 0 --selector tier=canary

# A quarter of the fleet, canaries included
{{.}} waves open --percent 25 --selector tier=canary

# A security fix: everyone now
{{.}} waves open --urgent`),
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Wave.Percent, "percent", 0, "share of the fleet, 0 to 100, by a stable hash of each instance's UID")
	f.StringVar(&o.Wave.Selector, "selector", "", "label selector of instances that are in the wave whatever their share (tier=canary)")
	f.BoolVar(&o.Wave.Urgent, "urgent", false, "every instance at once (a security fix)")
	f.StringVar(&o.Wave.Revision, "revision", "", "the builder revision to roll out; default: the one the instances report available")
	o.rollout.add(f)
	return cmd
}

// Validate checks the flags that need no cluster.
func (o *WavesOpenOptions) Validate(cmd *cobra.Command) error {
	if !cmd.Flags().Changed("percent") && !o.Wave.Urgent && o.Wave.Selector == "" {
		return usageError("give --percent, --selector or --urgent")
	}
	probe := o.Wave
	if probe.Revision == "" {
		probe.Revision = "-"
	}
	if err := probe.Validate(); err != nil {
		return usageError("%v", err)
	}
	return nil
}

// Run writes the ConfigMap and says who is in the wave.
func (o *WavesOpenOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	instances, err := waveInstances(ctx, c, "")
	if err != nil {
		return err
	}
	w := o.Wave
	if w.Revision == "" {
		if w.Revision, err = availableRevision(instances); err != nil {
			return err
		}
	}
	cms := c.kube.CoreV1().ConfigMaps(o.rollout.namespace)
	data := map[string]string{rolloutKey: rolloutFileText(w)}
	cm, err := cms.Get(ctx, o.rollout.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: o.rollout.name, Namespace: o.rollout.namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "summon", "app.kubernetes.io/part-of": "summon"}}, Data: data}
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager})
	case err == nil:
		cm.Data = data
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	if err != nil {
		return fmt.Errorf("writing ConfigMap %s/%s: %w", o.rollout.namespace, o.rollout.name, err)
	}
	done, pending := waveProgress(w, instances)
	fmt.Fprintf(o.g.streams.Out, "%s\n%d of %d instances are in the wave: %d rolled and Ready, %d to roll; follow them with %s waves watch\n",
		describeWave(w), len(done)+len(pending), len(instances), len(done), len(pending), o.g.name)
	return nil
}

// WavesWatchOptions are the options of summonctl waves watch.
type WavesWatchOptions struct {
	// AllNamespaces watches the wave in every namespace, as a fleet-wide rollout needs; without
	// it, the namespace of -n (or the kubeconfig's), as kubectl reads one.
	AllNamespaces bool
	Timeout       time.Duration
	Interval      time.Duration
	Now           func() time.Time
	rollout       rolloutFlags
	g             *globals
}

func newWavesWatchCommand(g *globals) *cobra.Command {
	o := &WavesWatchOptions{g: g, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "watch --timeout DURATION",
		Short: "Wait until every instance of the open wave runs its revision and is Ready; fail if one is not by the deadline",
		Long: `Wait until every instance of the open wave runs the wave's builder revision and is Ready. It exits
0 then, and 1 when the deadline passes first, naming each instance that is not there and why (its
Ready condition): that is where a rollout stops. Close or shrink the wave (waves open --percent 0),
or roll back the hook (docs/upgrading.md).`,
		Example: example(g.name, `
# In CI, after each waves open
{{.}} waves watch -A --timeout 20m`),
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Timeout <= 0 || o.Interval <= 0 {
				return usageError("--timeout and --interval must be positive")
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "every namespace")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 15*time.Minute, "how long the wave may take to become Ready")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "how often the fleet is read")
	o.rollout.add(cmd.Flags())
	return cmd
}

// Run polls the fleet until the wave is rolled out, or the deadline.
func (o *WavesWatchOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	deadline := o.Now().Add(o.Timeout)
	last := ""
	for {
		w, err := o.rollout.wave(ctx, c)
		if err != nil {
			return err
		}
		if w == (platform.Wave{}) {
			return fmt.Errorf("no wave is open (ConfigMap %s/%s); open one with %s waves open", o.rollout.namespace, o.rollout.name, o.g.name)
		}
		ns := c.namespace
		if o.AllNamespaces {
			ns = ""
		}
		instances, err := waveInstances(ctx, c, ns)
		if err != nil {
			return err
		}
		done, pending := waveProgress(w, instances)
		line := fmt.Sprintf("%d of %d instances of the wave rolled and Ready", len(done), len(done)+len(pending))
		if line != last {
			fmt.Fprintln(o.g.streams.Out, line)
			last = line
		}
		if len(pending) == 0 {
			fmt.Fprintf(o.g.streams.Out, "the wave is rolled out: %s\n", describeWave(w))
			return nil
		}
		if !o.Now().Before(deadline) {
			var b strings.Builder
			fmt.Fprintf(&b, "the wave is not rolled out after %s; %d instances are not there:\n", o.Timeout, len(pending))
			for _, i := range sortedInstances(pending) {
				fmt.Fprintf(&b, "  %s: %s\n", i.key(), pendingReason(w, i))
			}
			fmt.Fprint(&b, "stop here: close the wave (waves open --percent 0) or roll the hook back (docs/upgrading.md)\n")
			fmt.Fprint(o.g.streams.ErrOut, b.String())
			return found()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Interval):
		}
	}
}

// pendingReason says why an instance of the wave is not rolled out yet.
func pendingReason(w platform.Wave, i waveInstance) string {
	b := i.Builders
	switch {
	case b == nil:
		return "no status.builders yet (has the hook synced it?)"
	case b.Available != w.Revision:
		return fmt.Sprintf("the hook offers revision %s, not the wave's %s", orDash(b.Available), w.Revision)
	case b.Held || b.Revision != w.Revision:
		return "still held on revision " + orDash(b.Revision)
	}
	return "not Ready: " + orDash(i.ReadyMessage)
}
