package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/platform"
)

// fieldManager names summonctl's writes in managedFields.
const fieldManager = "summonctl"

// RetryMigrationOptions are the options of summonctl retry-migration.
type RetryMigrationOptions struct {
	Name string
	g    *globals
}

func newRetryMigrationCommand(g *globals) *cobra.Command {
	o := &RetryMigrationOptions{g: g}
	return &cobra.Command{
		Use:   "retry-migration NAME",
		Short: "Retry the failed migration of an instance",
		Long: `Retry the failed migration of an instance, once its cause is fixed: raise spec.migrations.attempt by
one, which names a fresh migration Job for the same version (the failed Job stays, with its logs).
The change is a JSON merge patch of that one field, conditional on the version read: Argo CD's
three-way merge (and kubectl apply's) leaves a field alone that the Git file never set, so the
next sync from Git does not undo it (docs/gitops.md). It refuses when the instance's migration
has not failed.`,
		Example: example(g.name, `
# The status says the migrations of the new version failed; read why, fix it, then:
{{.}} logs car1-qa migrations -n summon-qa
{{.}} retry-migration car1-qa -n summon-qa`),
		Args:              args(1, 1, "exactly one NAME"),
		ValidArgsFunction: completePlatforms(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Name = a[0]
			return o.Run(cmd.Context())
		},
	}
}

// Run raises the attempt, re-reading on a conflict.
func (o *RetryMigrationOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	for {
		p, err := c.getPlatform(ctx, o.g, c.namespace, o.Name)
		if err != nil {
			return err
		}
		patch, next, err := retryPatch(p)
		if err != nil {
			return err
		}
		_, err = c.platforms(p.GetNamespace()).Patch(ctx, p.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("raising spec.migrations.attempt of %s/%s: %w", p.GetNamespace(), p.GetName(), err)
		}
		version, _, _ := unstructured.NestedString(p.Object, "spec", "version")
		fmt.Fprintf(o.g.streams.Out, "raised spec.migrations.attempt of %s/%s to %d: the hook starts Job %s for version %s\n",
			p.GetNamespace(), p.GetName(), next, children.NamesFor(p.GetName()).MigrationJob(version, next), version)
		fmt.Fprintf(o.g.streams.Out, "follow it with: %s status %s -n %s -w\n", o.g.name, p.GetName(), p.GetNamespace())
		return nil
	}
}

// retryPatch is the merge patch that retries a failed migration, conditional on the
// resourceVersion read (the API server refuses it with a conflict if the instance changed since),
// or a refusal that says why there is nothing to retry.
func retryPatch(p *unstructured.Unstructured) ([]byte, int32, error) {
	var sp v1beta1.SummonPlatform
	if err := runtimeFromUnstructured(p.Object, &sp); err != nil {
		return nil, 0, err
	}
	cond := meta.FindStatusCondition(sp.Status.Conditions, v1beta1.ConditionMigrated)
	if cond == nil || cond.Reason != platform.ReasonMigrationFailed {
		phase := string(sp.Status.Phase)
		if phase == "" {
			phase = "not synced yet"
		}
		return nil, 0, fmt.Errorf("%s/%s has no failed migration to retry (phase %s: %s)", sp.Namespace, sp.Name, phase, sp.Status.Message)
	}
	if cond.ObservedGeneration != sp.Generation {
		return nil, 0, fmt.Errorf("%s/%s: the failed migration was seen for generation %d, but the spec is at %d; wait for the hook to sync it, then look again",
			sp.Namespace, sp.Name, cond.ObservedGeneration, sp.Generation)
	}
	next := sp.Spec.Migrations.Attempt + 1
	patch := map[string]any{
		"metadata": map[string]any{"resourceVersion": sp.ResourceVersion},
		"spec":     map[string]any{"migrations": map[string]any{"attempt": next}},
	}
	b, err := json.Marshal(patch)
	return b, next, err
}
