package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
)

// NewOptions are the options of summonctl new.
type NewOptions struct {
	Name      string
	Namespace string
	Hostname  string
	Version   string
	g         *globals
}

// placeholderVersion is the version a new file starts with: a valid tag that says what to do.
const placeholderVersion = "CHANGE-ME"

func newNewCommand(g *globals) *cobra.Command {
	o := &NewOptions{g: g}
	cmd := &cobra.Command{
		Use:   "new NAME --namespace NS",
		Short: "Write a commented SummonPlatform to start from",
		Long: `Write a commented SummonPlatform to standard output, to start a new instance's file from. Every
field that is left out has a default; the comments say which. lint accepts what it writes.`,
		Example: example(g.name, `
# Start the file of a new QA instance in a GitOps repository
{{.}} new car2-qa -n summon-qa --hostname car2-qa.example.com --version 108912-6e2f8b7 > instances/summon-qa/car2-qa.yaml`),
		Args: args(1, 1, "exactly one NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := o.Complete(a); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVar(&o.Hostname, "hostname", "", "the public host name (without it the instance gets no Ingress)")
	cmd.Flags().StringVar(&o.Version, "version", placeholderVersion, "the image tag to run")
	return cmd
}

// Complete reads the name and the namespace (the global -n/--namespace).
func (o *NewOptions) Complete(a []string) error {
	o.Name = a[0]
	if o.g.kube.Namespace != nil {
		o.Namespace = *o.g.kube.Namespace
	}
	return nil
}

// Validate refuses what the file could not hold.
func (o *NewOptions) Validate() error {
	if o.Namespace == "" {
		return usageError("new needs --namespace (-n): a GitOps file names its namespace")
	}
	p := &v1beta1.SummonPlatform{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
		Spec: v1beta1.Spec{Version: o.Version, Hostname: o.Hostname}}
	if errs := v1beta1.Validate(p); len(errs) > 0 {
		return usageError("%s", errs.ToAggregate())
	}
	return nil
}

// Run writes the file.
func (o *NewOptions) Run() error {
	b, err := newPlatformFile(o.Name, o.Namespace, o.Hostname, o.Version)
	if err != nil {
		return err
	}
	_, err = o.g.streams.Out.Write(b)
	return err
}

var newTemplate = template.Must(template.New("new").Funcs(template.FuncMap{"q": quote}).Parse(`# The SummonPlatform {{.Name}}: one single-tenant Django instance. Apply it with kubectl apply -f, or
# commit it to the GitOps repository. Check it first with: summonctl lint <this file>
apiVersion: {{.APIVersion}}
kind: {{.Kind}}
metadata:
  name: {{.Name}}
  namespace: {{.Namespace}}
spec:
  # The image tag to run. Changing it runs that version's migrations first; the workloads move to
  # it only once they have succeeded.
  version: {{q .Version}}
  # The image repository, without a tag; the hook's --default-image when left out.
  # image: registry.example.com/summon-platform
{{- if .Hostname}}
  # The public host; the Ingress serves it (and any aliases) with TLS from <name>-tls.
  hostname: {{q .Hostname}}
  # aliases: [www.example.com]
{{- else}}
  # The public host; without it there is no Ingress.
  # hostname: {{.Name}}.example.com
{{- end}}
  # Django settings written into the app's config file (strings, booleans and numbers).
  config:
    DEBUG: false
  # Input Secrets whose keys are merged into the config file, later ones winning, e.g. the
  # DATABASE_URL when the database is not created by Summon. Create them first (see docs/gitops.md
  # for keeping them out of git in plain text) and hand each to this instance, or Summon won't
  # read it:
  #   metadata:
  #     labels:
  #       summon.forklift.dev/input: "true"
  #     annotations:
  #       summon.forklift.dev/input-for: {{.Name}}
  # secrets:
  #   - {{.Name}}-inputs
  # Pods per component (1 each by default). celeryBeat is 0 or 1, never more.
  replicas:
    web: 1
    daphne: 1
    channelWorker: 1
    celeryd: 1
    static: 1
    celeryBeat: 1
  # The migration Job that runs before any pod moves to a new version.
  # migrations:
  #   backoffLimit: 2
  #   activeDeadlineSeconds: 1800
  # A database created for this instance on the hook's shared PostgreSQL server; or
  # database.urlSecret, or DATABASE_URL in an input Secret.
  # database:
  #   shared:
  #     host: postgres.example.internal
  # What happens to the bucket, vhost and database when the SummonPlatform is deleted:
  # Retain (the default) keeps them, Delete removes them.
  deletionPolicy: Retain
  # To retry a failed migration, run summonctl retry-migration {{.Name}} -n {{.Namespace}};
  # don't write spec.migrations.attempt here (docs/gitops.md says why).
`))

// newPlatformFile is the commented SummonPlatform that new writes.
func newPlatformFile(name, namespace, hostname, version string) ([]byte, error) {
	var buf bytes.Buffer
	err := newTemplate.Execute(&buf, map[string]string{
		"APIVersion": v1beta1.APIVersion, "Kind": v1beta1.Kind,
		"Name": name, "Namespace": namespace, "Hostname": hostname, "Version": version,
	})
	if err != nil {
		return nil, fmt.Errorf("writing the file: %w", err)
	}
	return buf.Bytes(), nil
}

// quote writes a YAML string that no value can break out of: a JSON string is valid YAML.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return strings.TrimSpace(string(b))
}
