package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/pkg/children"
)

// RestartedAtAnnotation is the pod-template annotation a restart sets, the one kubectl rollout
// restart and Argo CD's restart action set. It survives Metacontroller's next apply because
// Summon's answer never holds it: Metacontroller's three-way merge removes only what its
// last-applied answer held and the new answer drops (pkg/metacontroller.Apply).
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// RestartOptions are the options of summonctl restart.
type RestartOptions struct {
	Name       string
	Components []children.Component
	Now        func() time.Time
	g          *globals
}

func newRestartCommand(g *globals) *cobra.Command {
	o := &RestartOptions{g: g, Now: time.Now}
	return &cobra.Command{
		Use:   "restart NAME [COMPONENT]",
		Short: "Roll an instance's pods, in a way the next sync does not undo",
		Long: `Roll the pods of every app workload of an instance, or of one component (` + componentList() + `),
with the workloads' own rolling update: the pod template gets the annotation ` + RestartedAtAnnotation + `.
Metacontroller re-applies Summon's answer on every sync, but its three-way merge keeps what the
answer never set, so the annotation stays and the pods are not rolled again.`,
		Example: example(g.name, `
# Roll every pod of an instance
{{.}} restart car1-qa -n summon-qa

# Roll only the Celery workers
{{.}} restart car1-qa celeryd -n summon-qa`),
		Args:              args(1, 2, "NAME and at most one COMPONENT"),
		ValidArgsFunction: completeNameAndComponent(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Name = a[0]
			o.Components = children.AppComponents
			if len(a) == 2 {
				c, err := componentArg(a[1], children.AppComponents)
				if err != nil {
					return err
				}
				o.Components = []children.Component{c}
			}
			return o.Run(cmd.Context())
		},
	}
}

// Run patches each workload's pod template.
func (o *RestartOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if _, err := c.getPlatform(ctx, o.g, ns, o.Name); err != nil {
		return err
	}
	patch := restartPatch(o.Now())
	names := children.NamesFor(o.Name)
	restarted := 0
	for _, comp := range o.Components {
		name := names.Of(comp)
		var err error
		kind := "Deployment"
		if comp == children.CeleryBeat {
			kind = "StatefulSet"
			_, err = c.kube.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		} else {
			_, err = c.kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		}
		if apierrors.IsNotFound(err) {
			fmt.Fprintf(o.g.streams.ErrOut, "%s %s/%s does not exist (yet): nothing to restart\n", kind, ns, name)
			continue
		}
		if err != nil {
			return fmt.Errorf("restarting %s %s/%s: %w", kind, ns, name, err)
		}
		restarted++
		fmt.Fprintf(o.g.streams.Out, "%s %s/%s restarting\n", kind, ns, name)
	}
	if restarted == 0 {
		return fmt.Errorf("%s/%s has no workload to restart yet; see %s status %s -n %s", ns, o.Name, o.g.name, o.Name, ns)
	}
	return nil
}

// restartPatch sets the restart annotation on a workload's pod template.
func restartPatch(now time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{RestartedAtAnnotation: now.UTC().Format(time.RFC3339)},
	}}}})
	return b
}
