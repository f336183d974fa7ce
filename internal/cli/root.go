// Package cli is summonctl: one file per command, each an Options struct that the cobra command
// fills (Complete), checks (Validate) and carries out (Run), as kubectl's commands are built.
// What a command prints is built by pure functions (the *_specs.go files) that tests call
// directly; the effects (the API server, exec, psql, the terminal) stay in the command files.
// It reuses the core rather than copying it: render and diff call platform.Sync, lint calls
// v1beta1.Validate and the CRD's own schema, status reads v1beta1.Status. It never holds the
// hook's credential key, and it prints no secret value unless asked to (render --show-secrets).
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes, as `summonctl --help` documents them. diff follows kubectl diff: 0 no
// differences, 1 differences, more than 1 an error.
const (
	ExitOK       = 0
	ExitFound    = 1
	ExitUsage    = 2
	ExitFailed   = 3
	exitCodeHelp = `Exit codes:
  0  done; lint found no problem, diff no difference, doctor no failed check
  1  lint found a problem, diff found differences, doctor a failed check, render an Error phase
  2  usage error: an unknown command or flag, a missing or extra argument
  3  could not do it: the cluster can't be reached or refused, an object is missing, a refusal
     (retry-migration of an instance whose migration did not fail)`
)

// exitError carries an exit code with an error; a nil Err prints nothing.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError is a command line that can't be carried out as written.
func usageError(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

// found ends a command that worked and found something (problems, differences, failed checks):
// what it found was printed already.
func found() error { return &exitError{code: ExitFound} }

// StandardStreams are the process's stdin, stdout and stderr.
func StandardStreams() genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// Main runs summonctl with os.Args-style args and returns the process's exit code. Interrupted,
// a watch or a stream ends cleanly; psql and a remote terminal get Ctrl-C themselves.
func Main(args []string, streams genericiooptions.IOStreams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return MainContext(ctx, args, streams)
}

// MainContext is Main until ctx ends, which stops a watch or a stream as an interrupt does.
func MainContext(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	cmd := NewRootCommand(commandName(args[0]), streams)
	cmd.SetArgs(args[1:])
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{code: ExitFailed, err: err}
	}
	if ee.err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", ee.err)
		if ee.code == ExitUsage {
			fmt.Fprintf(streams.ErrOut, "See '%s --help'.\n", cmd.CommandPath())
		}
	}
	return ee.code
}

// commandName is how the user called summonctl: as kubectl-summon, kubectl finds it as the
// plugin `kubectl summon`, and help and examples should say so.
func commandName(arg0 string) string {
	base := filepath.Base(arg0)
	if strings.HasPrefix(base, "kubectl-") {
		return "kubectl " + strings.ReplaceAll(strings.TrimPrefix(base, "kubectl-"), "_", "-")
	}
	return "summonctl"
}

// globals are the flags every command has: where the cluster is, as kubectl reads it.
type globals struct {
	name    string
	kube    *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// NewRootCommand builds summonctl's command tree; name is "summonctl" or "kubectl summon".
func NewRootCommand(name string, streams genericiooptions.IOStreams) *cobra.Command {
	g := &globals{name: name, kube: genericclioptions.NewConfigFlags(true), streams: streams}
	root := &cobra.Command{
		Use:   name,
		Short: "The platform team's command line for Summon's SummonPlatforms",
		Long: `The platform team's command line for Summon's SummonPlatforms.

Offline, for pull requests and CI: render, lint, new. Against a cluster, read-only: diff, status,
doctor, dashboard (a web view of the fleet). Against a cluster, acting: shell, pyshell, logs, dbshell, retry-migration, restart, waves. Across a GitOps repository: set-version. It
reads the cluster with your own kubeconfig (--kubeconfig, --context, -n as kubectl reads them).

` + exitCodeHelp,
		Example: example(name, `
# Check every instance file of a GitOps repository, as CI does on each pull request
{{.}} lint instances/

# See what a version bump will do before merging it
{{.}} diff -f instances/summon-qa/car1-qa.yaml

# Follow every instance's rollout
{{.}} status -A -w`),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetIn(streams.In)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: ExitUsage, err: err} })
	g.kube.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newRenderCommand(g),
		newLintCommand(g),
		newNewCommand(g),
		newDiffCommand(g),
		newStatusCommand(g),
		newDoctorCommand(g),
		newShellCommand(g),
		newPyshellCommand(g),
		newLogsCommand(g),
		newDBShellCommand(g),
		newRetryMigrationCommand(g),
		newBackupsCommand(g),
		newMigrationsCommand(g),
		newRestoreCommand(g),
		newRestartCommand(g),
		newDashboardCommand(g),
		newWavesCommand(g),
		newSetVersionCommand(g),
	)
	return root
}

// example fills in the command's name (summonctl or kubectl summon) in an Examples text.
func example(name, text string) string {
	lines := strings.Split(strings.TrimPrefix(strings.ReplaceAll(text, "{{.}}", name), "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}

// args checks the number of positional arguments, as a usage error.
func args(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) < min || (max >= 0 && len(a) > max) {
			return usageError("%s takes %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
