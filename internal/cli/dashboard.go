package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/forklift-dev/summon/internal/dashboard"
)

// DashboardOptions are the options of summonctl dashboard.
type DashboardOptions struct {
	Listen    string
	Open      bool
	InCluster bool
	// AllowedHosts are host names the dashboard answers for beside localhost and IP addresses.
	AllowedHosts []string
	// MaxViewers caps the live viewers.
	MaxViewers int
	g          *globals
}

func newDashboardCommand(g *globals) *cobra.Command {
	o := &DashboardOptions{g: g}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the read-only web view of the fleet",
		Long: `Serve the read-only web view of the fleet: every SummonPlatform with its versions, phase and
Ready message, and a page per instance with its conditions, components, migration Jobs and
events, updated live from watches. It reads the cluster with your own kubeconfig and
permissions (every namespace you may list, or the one -n names) and never shows a Secret's value.

In a cluster, manifests/dashboard/ runs it with --in-cluster, as its own read-only
ServiceAccount, behind the team's single sign-on (docs/dashboard.md).`,
		Example: example(g.name, `
# On a laptop: serve on 127.0.0.1:8090 and open the browser
{{.}} dashboard --open

# Only one namespace
{{.}} dashboard -n summon-qa`),
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context()) },
	}
	cmd.Flags().StringVar(&o.Listen, "listen", dashboard.DefaultListen, "host:port to serve on")
	cmd.Flags().BoolVar(&o.Open, "open", false, "open the fleet page in the browser once the fleet is loaded")
	cmd.Flags().StringSliceVar(&o.AllowedHosts, "allowed-host", nil, "a host name the dashboard answers for, beside localhost and IP addresses (e.g. its Service's or Ingress's); repeatable")
	cmd.Flags().IntVar(&o.MaxViewers, "max-viewers", dashboard.DefaultMaxViewers, "pages open with live updates at once; beyond it live updates answer 503")
	cmd.Flags().BoolVar(&o.InCluster, "in-cluster", false, "use the pod's ServiceAccount instead of a kubeconfig (manifests/dashboard/)")
	return cmd
}

// Run serves until ctx ends (Ctrl-C).
func (o *DashboardOptions) Run(ctx context.Context) error {
	var cfg *rest.Config
	var err error
	if o.InCluster {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return fmt.Errorf("reading the in-cluster configuration (--in-cluster runs inside a pod): %w", err)
		}
	} else if cfg, err = o.g.kube.ToRESTConfig(); err != nil {
		return fmt.Errorf("reading the kubeconfig: %w", err)
	}
	// The fleet spans namespaces: only a namespace given with -n narrows it, not the kubeconfig's.
	namespace := ""
	if o.g.kube.Namespace != nil {
		namespace = *o.g.kube.Namespace
	}
	return dashboard.Run(ctx, cfg, dashboard.Options{
		Listen:       o.Listen,
		Open:         o.Open,
		AllowedHosts: o.AllowedHosts,
		MaxViewers:   o.MaxViewers,
		Namespace:    namespace,
		Log:          slog.New(slog.NewJSONHandler(o.g.streams.ErrOut, nil)),
	})
}
