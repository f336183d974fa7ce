package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/forklift-dev/summon/pkg/children"
)

// LogsOptions are the options of summonctl logs.
type LogsOptions struct {
	Name      string
	Component children.Component
	Follow    bool
	Tail      int64
	g         *globals
}

func newLogsCommand(g *globals) *cobra.Command {
	o := &LogsOptions{g: g}
	cmd := &cobra.Command{
		Use:   "logs NAME [COMPONENT]",
		Short: "Print (or follow) the logs of a pod of an instance",
		Long: `Print the logs of a ready pod of the instance's web component, or of the one named (` + componentList() + `),
or of the newest pod of its migration Job (migrations). -f follows them.`,
		Example: example(g.name, `
# The web logs
{{.}} logs car1-qa -n summon-qa

# Follow a Celery worker
{{.}} logs car1-qa celeryd -n summon-qa -f

# Why did the migration fail?
{{.}} logs car1-qa migrations -n summon-qa`),
		Args:              args(1, 2, "NAME and at most one COMPONENT"),
		ValidArgsFunction: completeNameAndComponent(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Name = a[0]
			comp := ""
			if len(a) == 2 {
				comp = a[1]
			}
			var err error
			if o.Component, err = componentArg(comp, append(append([]children.Component{}, children.AppComponents...), children.Migrations)); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "follow the logs until interrupted")
	cmd.Flags().Int64Var(&o.Tail, "tail", -1, "lines from the end to print (-1: all)")
	return cmd
}

// Run streams the logs.
func (o *LogsOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	pod, err := c.componentPod(ctx, o.g, c.namespace, o.Name, o.Component)
	if err != nil {
		return err
	}
	opts := logOptions(o.Component, o.Follow, o.Tail)
	stream, err := c.kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, opts).Stream(ctx)
	if err != nil {
		return fmt.Errorf("reading the logs of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	defer stream.Close()
	_, err = io.Copy(o.g.streams.Out, stream)
	return err
}

// logOptions are the log request of a component's container.
func logOptions(c children.Component, follow bool, tail int64) *corev1.PodLogOptions {
	opts := &corev1.PodLogOptions{Container: string(c), Follow: follow}
	if tail >= 0 {
		opts.TailLines = &tail
	}
	return opts
}
