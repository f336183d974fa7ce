package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/forklift-dev/summon/pkg/crdschema"
)

// LintOptions are the options of summonctl lint.
type LintOptions struct {
	Paths []string
	g     *globals
}

func newLintCommand(g *globals) *cobra.Command {
	o := &LintOptions{g: g}
	return &cobra.Command{
		Use:   "lint FILE|DIR...",
		Short: "Check every SummonPlatform in files with the CRD's schema and the hook's rules",
		Long: `Check every SummonPlatform in the files (a directory stands for every .yaml, .yml and .json file
below it) with the same rules as the CRD's schema, which the API server applies, and the hook's
own checks. A Secret that a SummonPlatform names (spec.secrets, a urlSecret) and that the files
create, as a Secret or a SealedSecret's or ExternalSecret's template, is checked for the marks that
hand it to that instance (docs/gitops.md, "Input Secrets"). Each problem is printed as
file:line: field: message. Other documents are skipped. Exits 1 on any problem: this is what a GitOps repository's CI runs
on every pull request. No cluster is needed.`,
		Example: example(g.name, `
# Check one file
{{.}} lint instances/summon-qa/car1-qa.yaml

# Check a whole repository
{{.}} lint instances/`),
		Args: args(1, -1, "one or more files or directories"),
		RunE: func(cmd *cobra.Command, a []string) error {
			o.Paths = a
			return o.Run(cmd.Context())
		},
	}
}

// Run checks the files and prints what it found.
func (o *LintOptions) Run(ctx context.Context) error {
	docs, err := readDocuments(o.Paths, o.g.streams.In)
	if err != nil {
		return err
	}
	crd, err := crdschema.SummonPlatform()
	if err != nil {
		return err
	}
	r := lintDocuments(ctx, docs, crd)
	for _, p := range r.problems {
		fmt.Fprintln(o.g.streams.Out, p)
	}
	switch {
	case r.platforms == 0 && len(r.problems) == 0:
		fmt.Fprintf(o.g.streams.ErrOut, "no SummonPlatform found in %v\n", o.Paths)
		return found()
	case len(r.problems) > 0:
		fmt.Fprintf(o.g.streams.ErrOut, "%d problem(s) in %d SummonPlatform(s)\n", len(r.problems), r.platforms)
		return found()
	}
	fmt.Fprintf(o.g.streams.ErrOut, "%d SummonPlatform(s), no problem\n", r.platforms)
	return nil
}
