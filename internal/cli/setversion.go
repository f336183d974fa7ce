package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// SetVersionOptions are the options of summonctl set-version.
type SetVersionOptions struct {
	Version  string
	Paths    []string
	Selector string
	Percent  int
	DryRun   bool
	pick     versionPick
	g        *globals
}

func newSetVersionCommand(g *globals) *cobra.Command {
	o := &SetVersionOptions{g: g}
	cmd := &cobra.Command{
		Use:   "set-version VERSION PATH... [-l SELECTOR] [--percent N]",
		Short: "Set spec.version in many instance files of a GitOps repository at once, by selector and wave",
		Long: `Set spec.version of the SummonPlatforms in instance files (a directory stands for every .yaml,
.yml and .json file below it), by label selector and wave, rewriting only that value: comments,
order, quoting and every other byte stay as they were, so a CI job can open one pull request per
wave (docs/gitops.md). --percent N takes the instances whose stable hash of namespace/name falls
below N; a larger wave holds every instance of a smaller one, so 5, 25, then 100 never skips or
repeats one. It touches no cluster.`,
		Example: example(g.name, `
# The canaries first
{{.}} set-version 109004-a41c9d0-release-2019-9 instances/ -l tier=canary

# Then a quarter of the production instances (the canaries already moved are left as they are)
{{.}} set-version 109004-a41c9d0-release-2019-9 instances/ -l env=production --percent 25

# What would change, without writing
{{.}} set-version 109004-a41c9d0-release-2019-9 instances/ --dry-run`),
		Args: args(2, -1, "a VERSION and at least one PATH"),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Version, o.Paths = a[0], a[1:]
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "label selector of the instances to move (metadata.labels in the files)")
	cmd.Flags().IntVar(&o.Percent, "percent", 100, "share of the selected instances to move, 0 to 100, by a stable hash of namespace/name")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what would change, write nothing")
	return cmd
}

// Complete checks the arguments and reads the selector.
func (o *SetVersionOptions) Complete() error {
	if msgs := validation.IsValidLabelValue(o.Version); o.Version == "" || len(msgs) > 0 {
		return usageError("VERSION %q must be a label value (spec.version is one): at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", o.Version)
	}
	if o.Percent < 0 || o.Percent > 100 {
		return usageError("--percent %d is not between 0 and 100", o.Percent)
	}
	o.pick = versionPick{percent: o.Percent}
	if o.Selector != "" {
		sel, err := labels.Parse(o.Selector)
		if err != nil {
			return usageError("--selector %q: %v", o.Selector, err)
		}
		o.pick.selector = sel
	}
	return nil
}

// Run edits every file first in memory: one that can't be edited stops the run before any file
// is written.
func (o *SetVersionOptions) Run(_ context.Context) error {
	files, err := expandPaths(o.Paths)
	if err != nil {
		return err
	}
	type edit struct {
		file string
		mode os.FileMode
		out  []byte
	}
	var edits []edit
	var changes []versionChange
	matched := 0
	for _, f := range files {
		if f == "-" {
			return usageError("set-version edits files in place; it reads no stdin")
		}
		info, err := os.Stat(f)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading %s: %w", f, err)
		}
		out, ch, n, err := setVersion(f, data, o.Version, o.pick)
		if err != nil {
			return err
		}
		matched += n
		if len(ch) > 0 {
			edits = append(edits, edit{file: f, mode: info.Mode().Perm(), out: out})
			changes = append(changes, ch...)
		}
	}
	for _, c := range changes {
		fmt.Fprintf(o.g.streams.Out, "%s:%d: %s/%s: %s -> %s\n", c.File, c.Line, c.Namespace, c.Name, c.From, c.To)
	}
	verb := "set"
	if o.DryRun {
		verb = "would set"
	}
	fmt.Fprintf(o.g.streams.Out, "%s spec.version %s on %d instances in %d files (%d matched, %d already on it)\n",
		verb, o.Version, len(changes), len(edits), matched, matched-len(changes))
	if o.DryRun {
		return nil
	}
	for _, e := range edits {
		if err := os.WriteFile(e.file, e.out, e.mode); err != nil {
			return fmt.Errorf("writing %s: %w", e.file, err)
		}
	}
	return nil
}
