package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/forklift-dev/summon/pkg/children"
)

// ExecOptions are the options of summonctl shell and pyshell: a command in a ready pod of one of
// an instance's components.
type ExecOptions struct {
	Name      string
	Component children.Component
	Command   []string
	// TTY is decided in Complete: when stdin is a terminal (or --tty).
	TTY      bool
	forceTTY bool
	g        *globals
}

// The default commands: a login-like shell, and Django's shell.
var (
	shellCommand   = []string{"sh", "-c", "command -v bash >/dev/null 2>&1 && exec bash || exec sh"}
	pyshellCommand = []string{"python", "manage.py", "shell"}
)

func newShellCommand(g *globals) *cobra.Command {
	return newExecCommand(g, "shell", "Open a shell in a ready pod of an instance", shellCommand, true, `
# A shell in a web pod
{{.}} shell car1-qa -n summon-qa

# A shell in a Celery worker
{{.}} shell car1-qa celeryd -n summon-qa

# One command, no shell
{{.}} shell car1-qa -n summon-qa -- python manage.py showmigrations`)
}

func newPyshellCommand(g *globals) *cobra.Command {
	return newExecCommand(g, "pyshell", "Open Django's shell (manage.py shell) in a ready pod of an instance", pyshellCommand, false, `
# Django's shell in a web pod
{{.}} pyshell car1-qa -n summon-qa`)
}

func newExecCommand(g *globals, use, short string, command []string, extra bool, examples string) *cobra.Command {
	o := &ExecOptions{g: g}
	cmd := &cobra.Command{
		Use:   use + " NAME [COMPONENT]",
		Short: short,
		Long: short + `. The pod is a ready pod of the web component, or of the one named
(` + componentList() + `), chosen by Summon's labels; the exec goes through the API server
(WebSocket, or SPDY where the server is older), with a terminal when stdin is one.`,
		Example: example(g.name, examples),
		Args: func(cmd *cobra.Command, a []string) error {
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				a = a[:dash]
			}
			return args(1, 2, "NAME and at most one COMPONENT")(cmd, a)
		},
		ValidArgsFunction: completeNameAndComponent(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			var after []string
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				if !extra {
					return usageError("%s runs its own command; use %s shell NAME -- COMMAND for another", use, g.name)
				}
				a, after = a[:dash], a[dash:]
			}
			if err := o.Complete(a, command, after); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.forceTTY, "tty", "t", false, "allocate a terminal even when stdin is not one")
	return cmd
}

func componentList() string {
	s := ""
	for i, c := range children.AppComponents {
		if i > 0 {
			s += ", "
		}
		s += string(c)
	}
	return s
}

// Complete reads the arguments.
func (o *ExecOptions) Complete(a, command, after []string) error {
	o.Name = a[0]
	comp := ""
	if len(a) == 2 {
		comp = a[1]
	}
	var err error
	if o.Component, err = componentArg(comp, children.AppComponents); err != nil {
		return err
	}
	o.Command = command
	if len(after) > 0 {
		o.Command = after
	}
	o.TTY = o.forceTTY || isTerminalReader(o.g.streams.In)
	return nil
}

// Run execs the command in the pod.
func (o *ExecOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	pod, err := c.componentPod(ctx, o.g, c.namespace, o.Name, o.Component)
	if err != nil {
		return err
	}
	u := execURL(c.kube.CoreV1().RESTClient(), pod.Namespace, pod.Name, string(o.Component), o.Command, o.TTY)
	return streamExec(ctx, c.rest, u, o.g.streams.In, o.g.streams.Out, o.g.streams.ErrOut, o.TTY)
}

// execURL is the API server's exec endpoint of a container, with the command and the streams as
// its parameters. With a terminal, stderr is merged into it (the API server refuses both).
func execURL(client rest.Interface, namespace, pod, container string, command []string, tty bool) *url.URL {
	return client.Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   command,
			Stdin:     true,
			Stdout:    true,
			Stderr:    !tty,
			TTY:       tty,
		}, scheme.ParameterCodec).URL()
}

// streamExec runs an exec over WebSocket, falling back to SPDY when the API server can't upgrade
// to it (as kubectl exec does), with the local terminal in raw mode and its size followed when
// there is one.
func streamExec(ctx context.Context, cfg *rest.Config, u *url.URL, in io.Reader, out, errOut io.Writer, tty bool) error {
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		return err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Stdin: in, Stdout: out, Tty: tty}
	if !tty {
		opts.Stderr = errOut
	}
	if f, ok := in.(*os.File); ok && tty && term.IsTerminal(int(f.Fd())) {
		state, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
		defer func() { _ = term.Restore(int(f.Fd()), state) }()
		sizes := newSizeQueue(ctx, f)
		opts.TerminalSizeQueue = sizes
	}
	if err := exec.StreamWithContext(ctx, opts); err != nil {
		return fmt.Errorf("exec in the pod: %w", err)
	}
	return nil
}

// sizeQueue reports the terminal's size at start and after each SIGWINCH.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize
}

func newSizeQueue(ctx context.Context, f *os.File) *sizeQueue {
	q := &sizeQueue{sizes: make(chan remotecommand.TerminalSize, 1)}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	send := func() {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil {
			select {
			case q.sizes <- remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}:
			default:
			}
		}
	}
	send()
	go func() {
		defer signal.Stop(winch)
		defer close(q.sizes)
		for {
			select {
			case <-ctx.Done():
				return
			case <-winch:
				send()
			}
		}
	}()
	return q
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q.sizes
	if !ok {
		return nil
	}
	return &s
}

func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// completeNameAndComponent completes NAME with the namespace's SummonPlatforms, then COMPONENT.
func completeNameAndComponent(g *globals) cobra.CompletionFunc {
	names := completePlatforms(g)
	return func(cmd *cobra.Command, a []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(a) == 0 {
			return names(cmd, a, toComplete)
		}
		if len(a) == 1 {
			var out []cobra.Completion
			for _, c := range children.AppComponents {
				out = append(out, string(c))
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}
