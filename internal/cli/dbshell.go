package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/platform"
)

// DBShellOptions are the options of summonctl dbshell.
type DBShellOptions struct {
	Name string
	// Host and Port replace the database URL's, e.g. to go through a tunnel.
	Host, Port string
	PSQL       string
	Args       []string
	g          *globals
}

func newDBShellCommand(g *globals) *cobra.Command {
	o := &DBShellOptions{g: g}
	cmd := &cobra.Command{
		Use:   "dbshell NAME [-- PSQL-ARGS...]",
		Short: "Open psql on an instance's database with the credentials of its config Secret",
		Long: `Open psql on the instance's database, as its DATABASE_URL in the app config Secret says, with its
credentials. The password is handed to psql in a password file of mode 0600 (PGPASSFILE) that is
removed when psql exits; it is never on psql's command line, in the output or in a log. psql
runs here, so the database's host must be reachable from here: --host and --port replace it
(for example with a tunnel or kubectl port-forward to a proxy). Arguments after -- go to psql.`,
		Example: example(g.name, `
# An interactive psql
{{.}} dbshell car1-qa -n summon-qa

# One query, through a tunnel on localhost:15432
{{.}} dbshell car1-qa -n summon-qa --host 127.0.0.1 --port 15432 -- -c 'select count(*) from django_migrations'`),
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completePlatforms(g),
		RunE: func(cmd *cobra.Command, a []string) error {
			before := a
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				before, o.Args = a[:dash], a[dash:]
			}
			if len(before) != 1 {
				return usageError("dbshell takes exactly one NAME (psql's own arguments go after --)")
			}
			o.Name = before[0]
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Host, "host", "", "connect to this host instead of the database URL's")
	cmd.Flags().StringVar(&o.Port, "port", "", "connect to this port instead of the database URL's")
	cmd.Flags().StringVar(&o.PSQL, "psql", "psql", "the psql to run")
	return cmd
}

// Run reads the database URL and runs psql on it.
func (o *DBShellOptions) Run(ctx context.Context) error {
	c, err := o.g.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if _, err := c.getPlatform(ctx, o.g, ns, o.Name); err != nil {
		return err
	}
	secretName := children.NamesFor(o.Name).Config()
	s, err := c.kube.CoreV1().Secrets(ns).Get(ctx, secretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("SummonPlatform %s/%s has no app config Secret %s yet; see %s status %s -n %s", ns, o.Name, secretName, o.g.name, o.Name, ns)
	}
	if err != nil {
		return fmt.Errorf("reading the app config Secret %s/%s: %w", ns, secretName, err)
	}
	dsn, err := databaseURL(s.Data[children.ConfigFileName])
	if err != nil {
		return fmt.Errorf("%s/%s: %w", ns, secretName, err)
	}
	conn, err := psqlConnection(dsn, o.Host, o.Port)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", ns, secretName, err)
	}
	return runPSQL(o.PSQL, conn, o.Args, o.g)
}

// databaseURL reads DATABASE_URL from an app config file. No error holds the URL.
func databaseURL(file []byte) (string, error) {
	var settings map[string]any
	if err := yaml.Unmarshal(file, &settings); err != nil || settings == nil {
		return "", errors.New("the app config file can't be read")
	}
	dsn, ok := settings[platform.SettingDatabaseURL].(string)
	if !ok || dsn == "" {
		return "", fmt.Errorf("the app config file has no %s: the instance's database comes from nowhere summonctl can see", platform.SettingDatabaseURL)
	}
	return dsn, nil
}

// psqlConn is how psql is to connect: a URL without the password, which may be shown, and the
// password apart.
type psqlConn struct {
	url      string
	password string
}

// psqlConnection splits a database URL into what goes on psql's command line and the password.
func psqlConnection(dsn, host, port string) (psqlConn, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return psqlConn{}, errors.New("DATABASE_URL is not a postgres:// URL")
	}
	pw, _ := u.User.Password()
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	// libpq also reads a password (and a password file, which would win over ours) from the
	// query string: neither may reach psql's argv, which ps shows to every user of the machine.
	q := u.Query()
	if pw == "" {
		pw = q.Get("password")
	}
	if q.Has("password") || q.Has("passfile") {
		q.Del("password")
		q.Del("passfile")
		u.RawQuery = q.Encode()
	}
	if host != "" || port != "" {
		h, p := u.Hostname(), u.Port()
		if host != "" {
			h = host
		}
		if port != "" {
			p = port
		}
		if p == "" {
			u.Host = h
		} else {
			u.Host = net.JoinHostPort(h, p)
		}
	}
	return psqlConn{url: u.String(), password: pw}, nil
}

// runPSQL runs psql with the password in a 0600 password file that only this run uses and that
// is removed when psql exits.
func runPSQL(psql string, conn psqlConn, extra []string, g *globals) error {
	env := os.Environ()
	// A PGPASSWORD from the user's environment would win over the file.
	filtered := env[:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PGPASSWORD=") && !strings.HasPrefix(kv, "PGPASSFILE=") {
			filtered = append(filtered, kv)
		}
	}
	env = filtered
	if conn.password != "" {
		f, err := os.CreateTemp("", "summonctl-pgpass-*")
		if err != nil {
			return fmt.Errorf("creating the password file: %w", err)
		}
		defer os.Remove(f.Name())
		// CreateTemp makes the file 0600; psql refuses a password file others may read.
		_, werr := f.WriteString(passFileLine(conn.password))
		cerr := f.Close()
		if werr != nil || cerr != nil {
			return fmt.Errorf("writing the password file %s: %w", f.Name(), errors.Join(werr, cerr))
		}
		env = append(env, "PGPASSFILE="+f.Name())
	}
	// Not bound to ctx: Ctrl-C belongs to psql (it cancels a query), and summonctl waits for it.
	cmd := exec.Command(psql, append([]string{conn.url}, extra...)...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = g.streams.In, g.streams.Out, g.streams.ErrOut
	if err := runForwardingSignals(cmd); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return &exitError{code: ExitFailed, err: fmt.Errorf("psql exited with status %d", exit.ExitCode())}
		}
		return fmt.Errorf("running %s: %w", psql, err)
	}
	return nil
}

// passFileLine is a .pgpass line that matches any server, database and user (the file serves
// this one connection) with the password escaped as the format asks.
func passFileLine(password string) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(password)
	return "*:*:*:*:" + esc + "\n"
}

// runForwardingSignals runs cmd and waits for it, with summonctl's own death by signal held off
// until it has exited, so that the deferred removal of the password file always runs: a closed
// terminal (SIGHUP) or a kill (SIGTERM) is passed on to psql, and Ctrl-C (SIGINT, which the
// terminal sends psql too) is left to psql, which cancels the running query with it.
func runForwardingSignals(cmd *exec.Cmd) error {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			return err
		case sig := <-signals:
			if sig != syscall.SIGINT {
				_ = cmd.Process.Signal(sig)
			}
		}
	}
}
