package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/platform"
)

// BackupsOptions are the options of summonctl backups.
type BackupsOptions struct {
	Name string
	g    *globals
}

func newBackupsCommand(g *globals) *cobra.Command {
	o := &BackupsOptions{g: g}
	return &cobra.Command{
		Use:   "backups NAME",
		Short: "List the backups taken before an instance's migrations",
		Long: `List the backups Summon took before an instance's migrations, newest first, as its status records
them (status.backups, at most spec.backups.keep): the version each preceded, the version it goes
back to, its phase, when it completed and where the dump is. Bring one back with summonctl restore.`,
		Example: example(g.name, `
{{.}} backups car1-qa -n summon-qa`),
		Args:              args(1, 1, "exactly one NAME"),
		ValidArgsFunction: completePlatforms(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Name = a[0]
			return o.Run(cmd.Context())
		},
	}
}

// Run prints the instance's backups.
func (o *BackupsOptions) Run(ctx context.Context) error {
	sp, err := readPlatform(ctx, o.g, o.Name)
	if err != nil {
		return err
	}
	return writeBackups(o.g.streams.Out, sp.Status)
}

// MigrationsOptions are the options of summonctl migrations.
type MigrationsOptions struct {
	Name string
	g    *globals
}

func newMigrationsCommand(g *globals) *cobra.Command {
	o := &MigrationsOptions{g: g}
	return &cobra.Command{
		Use:   "migrations NAME",
		Short: "List an instance's last migrations and where their logs are",
		Long: `List the last migrations of an instance that succeeded, newest first (status.migrations): Summon keeps
their Jobs, and so their logs, while they are listed here.`,
		Example: example(g.name, `
{{.}} migrations car1-qa -n summon-qa`),
		Args:              args(1, 1, "exactly one NAME"),
		ValidArgsFunction: completePlatforms(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Name = a[0]
			return o.Run(cmd.Context())
		},
	}
}

// Run prints the instance's migrations.
func (o *MigrationsOptions) Run(ctx context.Context) error {
	sp, err := readPlatform(ctx, o.g, o.Name)
	if err != nil {
		return err
	}
	return writeMigrations(o.g.streams.Out, sp)
}

func readPlatform(ctx context.Context, g *globals, name string) (*v1beta1.SummonPlatform, error) {
	c, err := g.clients()
	if err != nil {
		return nil, err
	}
	p, err := c.getPlatform(ctx, g, c.namespace, name)
	if err != nil {
		return nil, err
	}
	var sp v1beta1.SummonPlatform
	if err := runtimeFromUnstructured(p.Object, &sp); err != nil {
		return nil, err
	}
	return &sp, nil
}

func writeBackups(out io.Writer, st v1beta1.Status) error {
	if len(st.Backups) == 0 {
		_, err := fmt.Fprintln(out, "no backup recorded: Summon takes one before each migration of an instance on the shared Postgres when the hook has --backup-image (docs/backups.md)")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tBEFORE VERSION\tRESTORES VERSION\tPHASE\tCOMPLETED\tLOCATION")
	for _, b := range st.Backups {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.Version, orDash(b.FromVersion), b.Phase, timeOrDash(b.CompletedAt), orDash(b.Location))
	}
	return w.Flush()
}

func writeMigrations(out io.Writer, sp *v1beta1.SummonPlatform) error {
	if len(sp.Status.Migrations) == 0 {
		_, err := fmt.Fprintln(out, "no migration recorded yet")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tATTEMPT\tJOB\tCOMPLETED\tLOGS")
	for _, m := range sp.Status.Migrations {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\tkubectl logs job/%s -n %s\n", m.Version, m.Attempt, m.Job, timeOrDash(m.CompletedAt), m.Job, sp.Namespace)
	}
	return w.Flush()
}

func timeOrDash(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// RestoreOptions are the options of summonctl restore.
type RestoreOptions struct {
	Name    string
	Backup  string
	Yes     bool
	Image   string
	Region  string
	Timeout time.Duration
	g       *globals
}

func newRestoreCommand(g *globals) *cobra.Command {
	o := &RestoreOptions{g: g}
	cmd := &cobra.Command{
		Use:   "restore NAME --backup BACKUP --yes",
		Short: "Bring an instance's database back to a backup taken before a migration",
		Long: `Bring an instance's database back to one of its backups (summonctl backups lists them), and the
instance back to the version that backup goes with:

  1. pause the instance (spec.paused: true), and wait for the hook to freeze it;
  2. run a restore Job: pg_restore --clean of the dump, in one transaction, with the instance's
     own credentials (a failed restore leaves the database as it was);
  3. set spec.version to the version the backup restores, and unpause: the hook then takes a
     backup of the restored database, runs that version's migrations (which find nothing to do)
     and rolls the workloads back onto it.

Everything written to the database since the backup is lost; it refuses without --yes. If the
restore fails the instance stays paused, on the version it ran, and the command says how to read
the Job's logs. Only backups of a shared database (pg_dump into the instance's bucket) can be
restored this way (docs/backups.md).`,
		Example: example(g.name, `
{{.}} backups car1-qa -n summon-qa
{{.}} restore car1-qa -n summon-qa --backup car1-qa-backup-9df088c0 --yes`),
		Args:              args(1, 1, "exactly one NAME"),
		ValidArgsFunction: completePlatforms(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Name = a[0]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Backup, "backup", "", "the backup to restore: its NAME, or the version it preceded (summonctl backups)")
	cmd.Flags().BoolVar(&o.Yes, "yes", false, "confirm: everything written to the database since the backup is lost")
	cmd.Flags().StringVar(&o.Image, "image", "", "the image to run pg_restore with (the hook's --backup-image); default: the image of the instance's backup Job, if one is still there")
	cmd.Flags().StringVar(&o.Region, "region", "", "the bucket's AWS region; default: the backup Job's")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 30*time.Minute, "how long to wait for each step")
	return cmd
}

// Validate refuses what can't run.
func (o *RestoreOptions) Validate() error {
	if o.Backup == "" {
		return usageError("restore needs --backup: list them with summonctl backups %s", o.Name)
	}
	if !o.Yes {
		return usageError("restore replaces the database of %s with backup %s, and loses everything written since: add --yes to go ahead", o.Name, o.Backup)
	}
	return nil
}

// Run pauses, restores and unpauses.
func (o *RestoreOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	out := o.g.streams.Out
	sp, err := readPlatform(ctx, o.g, o.Name)
	if err != nil {
		return err
	}
	rec, err := platform.FindBackup(sp.Status, o.Backup)
	if err != nil {
		return err
	}
	if rec.FromVersion == "" {
		return fmt.Errorf("backup %s does not record the version it restores", rec.Name)
	}
	image, region := o.Image, o.Region
	if image == "" || region == "" {
		i, r := backupJobImage(ctx, c, sp)
		image, region = firstOf(image, i), firstOf(region, r)
	}
	job, err := platform.RestoreJob(sp, rec, image, region)
	if err != nil {
		return fmt.Errorf("%w (pass --image)", err)
	}

	fmt.Fprintf(out, "pausing %s/%s\n", sp.Namespace, sp.Name)
	if err := o.patchSpec(ctx, c, sp.Name, map[string]any{"paused": true}); err != nil {
		return err
	}
	if err := o.waitFor(ctx, c, "the hook to freeze it", func(p *v1beta1.SummonPlatform) bool {
		cond := meta.FindStatusCondition(p.Status.Conditions, v1beta1.ConditionPaused)
		return cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == p.Generation
	}); err != nil {
		return err
	}

	jobs := c.kube.BatchV1().Jobs(sp.Namespace)
	if err := jobs.Delete(ctx, job.Name, metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the earlier restore Job %s: %w", job.Name, err)
	}
	if err := o.waitJobGone(ctx, c, sp.Namespace, job.Name); err != nil {
		return err
	}
	fmt.Fprintf(out, "restoring %s (%s) with Job %s\n", rec.Name, rec.Location, job.Name)
	if _, err := jobs.Create(ctx, job, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("creating the restore Job: %w", err)
	}
	state, err := o.waitJob(ctx, c, sp.Namespace, job.Name)
	if err != nil {
		return err
	}
	if state != batchv1.JobComplete {
		return fmt.Errorf("the restore failed; %s/%s stays paused on the version it ran. Read why with kubectl logs job/%s -n %s, "+
			"then run the restore again, or unpause with kubectl patch summonplatform %s -n %s --type merge -p '{\"spec\":{\"paused\":false}}'",
			sp.Namespace, sp.Name, job.Name, sp.Namespace, sp.Name, sp.Namespace)
	}
	fmt.Fprintf(out, "restored; moving %s to version %s and unpausing\n", sp.Name, rec.FromVersion)
	if err := o.patchSpec(ctx, c, sp.Name, map[string]any{"paused": false, "version": rec.FromVersion}); err != nil {
		return err
	}
	fmt.Fprintf(out, "follow the way back with: %s status %s -n %s -w\n", o.g.name, sp.Name, sp.Namespace)
	return nil
}

// backupJobImage reads the image and region of one of the instance's backup Jobs, the hook's
// --backup-image and the bucket's region, when one is still there.
func backupJobImage(ctx context.Context, c *clients, sp *v1beta1.SummonPlatform) (image, region string) {
	list, err := c.kube.BatchV1().Jobs(sp.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: children.LabelInstance + "=" + sp.Name + "," + children.LabelComponent + "=" + string(children.Backup),
	})
	if err != nil {
		return "", ""
	}
	for _, j := range list.Items {
		if len(j.Spec.Template.Spec.Containers) == 0 {
			continue
		}
		ct := j.Spec.Template.Spec.Containers[0]
		for _, e := range ct.Env {
			if e.Name == "AWS_DEFAULT_REGION" {
				region = e.Value
			}
		}
		return ct.Image, region
	}
	return "", ""
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ptrTo[T any](v T) *T { return &v }

func (o *RestoreOptions) patchSpec(ctx context.Context, c *clients, name string, spec map[string]any) error {
	b, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return err
	}
	if _, err := c.platforms(c.namespace).Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("patching spec of %s: %w", name, err)
	}
	return nil
}

func (o *RestoreOptions) waitFor(ctx context.Context, c *clients, what string, done func(*v1beta1.SummonPlatform) bool) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for {
		sp, err := readPlatform(ctx, o.g, o.Name)
		if err == nil && done(sp) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func (o *RestoreOptions) waitJobGone(ctx context.Context, c *clients, ns, name string) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for {
		_, err := c.kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the earlier restore Job %s to go: %w", name, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// waitJob waits for the Job's final condition, Complete or Failed.
func (o *RestoreOptions) waitJob(ctx context.Context, c *clients, ns, name string) (batchv1.JobConditionType, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for {
		j, err := c.kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range j.Status.Conditions {
				if cond.Status == corev1.ConditionTrue && (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) {
					return cond.Type, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the restore Job %s (it may still run; the instance stays paused): %w", name, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}
