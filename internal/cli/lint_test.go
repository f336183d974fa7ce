package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/crdschema"
)

func crdValidator(t testing.TB) *crdschema.Validator {
	t.Helper()
	v, err := crdschema.SummonPlatform()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func lintText(t *testing.T, file string, text string) []string {
	t.Helper()
	r := lintDocuments(context.Background(), splitDocuments(file, []byte(text)), crdValidator(t))
	var out []string
	for _, p := range r.problems {
		out = append(out, p.String())
	}
	return out
}

const header = `apiVersion: summon.forklift.dev/v1beta1
kind: SummonPlatform
metadata:
  name: car1-qa
  namespace: summon-qa
`

func TestLintReportsEachProblemAtItsLine(t *testing.T) {
	tests := map[string]struct {
		text string
		want []string
	}{
		"a valid file has no problem": {text: header + "spec:\n  version: v1\n"},
		"a version with a slash is reported at its line": {
			text: header + "spec:\n  hostname: car1.example.com\n  version: release/1\n",
			want: []string{`f.yaml:8: spec.version: Invalid value: "release/1": must be an image tag of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
		},
		"a missing version is reported at spec": {
			text: header + "spec:\n  paused: false\n",
			want: []string{`f.yaml:6: spec.version: Required value: set it to the image tag to run`},
		},
		"a misspelt field is reported where it is, as kubectl apply refuses it": {
			text: header + "spec:\n  version: v1\n  replica:\n    web: 2\n",
			want: []string{`f.yaml:8: spec.replica: Forbidden: unknown field: the schema has no such field (check its spelling and indentation)`},
		},
		"a duplicate alias is reported at the alias": {
			text: header + "spec:\n  version: v1\n  hostname: a.example.com\n  aliases:\n    - b.example.com\n    - b.example.com\n",
			want: []string{`f.yaml:11: spec.aliases[1]: Duplicate value: "b.example.com"`},
		},
		"a setting name with a dash is reported at its key (the schema can't see it; the hook can)": {
			text: header + "spec:\n  version: v1\n  config:\n    DEBUG: true\n    SITE-NAME: x\n",
			want: []string{`f.yaml:10: spec.config[SITE-NAME]: Invalid value: "SITE-NAME": a setting name must be a Python identifier`},
		},
		"two beats are reported once, in the hook's words": {
			text: header + "spec:\n  version: v1\n  replicas: {celeryBeat: 2}\n",
			want: []string{`f.yaml:8: spec.replicas.celeryBeat: Invalid value: 2: must be 0 or 1: a second beat would run every scheduled task twice`},
		},
		"a value of the wrong type is reported and the other fields are still checked": {
			text: header + "spec:\n  version: v1\n  migrations:\n    backoffLimit: two\n  replicas:\n    web: 1001\n",
			want: []string{
				`f.yaml:9: spec.migrations.backoffLimit: Invalid value: "string": spec.migrations.backoffLimit in body must be of type integer: "string"`,
				`f.yaml:11: spec.replicas.web: Invalid value: 1001: must be between 0 and 1000`,
			},
		},
		"a CEL rule of the schema is reported at its field": {
			text: header + "spec:\n  version: v1\n  autoscaling:\n    web: {minReplicas: 3, maxReplicas: 2}\n",
			want: []string{`f.yaml:9: spec.autoscaling.web.maxReplicas: Invalid value: 2: must be at least minReplicas`},
		},
		"an upper-case name is reported at metadata.name": {
			text: strings.Replace(header, "car1-qa", "Car1-qa", 1) + "spec:\n  version: v1\n",
			want: []string{`f.yaml:4: metadata.name: Invalid value: "Car1-qa": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`},
		},
		"an old apiVersion is reported": {
			text: strings.Replace(header, "v1beta1", "v1alpha1", 1) + "spec:\n  version: v1\n",
			want: []string{`f.yaml:1: apiVersion: summon.forklift.dev/v1alpha1 is not served: use summon.forklift.dev/v1beta1`},
		},
		"lines count across documents": {
			text: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" + header + "spec:\n  version: v1.\n",
			want: []string{`f.yaml:11: spec.version: Invalid value: "v1.": must be an image tag of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
		},
		"broken YAML is reported at its line": {
			text: header + "spec:\n  version: [v1\n",
			want: []string{`f.yaml:7: yaml: did not find expected ',' or ']'`},
		},
		"the same instance in two documents is reported": {
			text: header + "spec:\n  version: v1\n---\n" + header + "spec:\n  version: v2\n",
			want: []string{`f.yaml:12: metadata.name: this instance is also defined at f.yaml:1; one file per instance, or both are applied and fight`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := lintText(t, "f.yaml", tc.text)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// Every example, and the parent of every golden case but the one whose spec is invalid on
// purpose, passes lint: lint and the hook agree on what is valid.
func TestLintAcceptsEveryExampleAndGoldenParent(t *testing.T) {
	examples, _ := filepath.Glob("../../examples/*.yaml")
	for _, f := range examples {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := lintText(t, f, string(b)); len(got) > 0 {
			t.Errorf("%s:\n%s", f, strings.Join(got, "\n"))
		}
	}
	dirs, _ := filepath.Glob("../../testdata/sync/*")
	if len(examples) == 0 || len(dirs) == 0 {
		t.Fatal("no example or golden case found")
	}
	for _, dir := range dirs {
		req := readGoldenRequest(t, dir)
		parent, err := yaml.JSONToYAML(req.Parent)
		if err != nil {
			t.Fatal(err)
		}
		got := lintText(t, "parent.yaml", string(parent))
		// The cases whose spec slipped past the schema on purpose, to show what the hook does then.
		if base := filepath.Base(dir); base == "invalid-spec" || base == "autoscaling-frozen-keeps-the-hpa-count" {
			if len(got) == 0 {
				t.Errorf("%s: lint accepts the spec that the hook refuses", dir)
			}
			continue
		}
		if len(got) > 0 {
			t.Errorf("%s:\n%s", dir, strings.Join(got, "\n"))
		}
	}
}

func TestNewWritesWhatLintAccepts(t *testing.T) {
	for name, args := range map[string][]string{
		"with a hostname and a version": {"new", "car2-qa", "-n", "summon-qa", "--hostname", "car2-qa.example.com", "--version", "108912-6e2f8b7"},
		"with neither":                  {"new", "car2-qa", "-n", "summon-qa"},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := run(t, args...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if got := lintText(t, "new.yaml", out); len(got) > 0 {
				t.Errorf("lint refuses what new wrote:\n%s\n%s", strings.Join(got, "\n"), out)
			}
			if strings.Contains(out, "\n    attempt:") || strings.Contains(out, "\n  attempt:") {
				t.Errorf("new writes spec.migrations.attempt, which Argo CD would then reset after every retry")
			}
		})
	}
}

func TestNewRefusesWhatNoFileMayHold(t *testing.T) {
	for name, args := range map[string][]string{
		"no namespace":         {"new", "car2-qa"},
		"an upper-case name":   {"new", "Car2", "-n", "qa"},
		"a version with slash": {"new", "car2", "-n", "qa", "--version", "a/b"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, errOut, code := run(t, args...); code != ExitUsage {
				t.Errorf("exit %d, want %d: %s", code, ExitUsage, errOut)
			}
		})
	}
}

// run runs summonctl in-process with captured streams and no kubeconfig of the user's.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	in := &bytes.Buffer{}
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	code = Main(append([]string{"summonctl"}, args...), genericiooptions.IOStreams{In: in, Out: out, ErrOut: errOut})
	return out.String(), errOut.String(), code
}

type goldenRequest struct {
	Parent   json.RawMessage `json:"parent"`
	Children map[string]map[string]map[string]any
	Related  map[string]map[string]map[string]any
}

func readGoldenRequest(t *testing.T, dir string) goldenRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r goldenRequest
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLintChecksTheInputSecretsTheFilesCreate(t *testing.T) {
	platformNaming := header + "spec:\n  version: v1\n  secrets:\n    - car1-qa-inputs\n"
	tests := map[string]struct {
		text string
		want []string
	}{
		"a Secret marked as the instance's input is no problem": {
			text: platformNaming + `---
apiVersion: v1
kind: Secret
metadata:
  name: car1-qa-inputs
  namespace: summon-qa
  labels: {summon.forklift.dev/input: "true"}
  annotations: {summon.forklift.dev/input-for: car1-qa}
`,
		},
		"an unmarked Secret is reported at the name that reads it": {
			text: platformNaming + `---
apiVersion: v1
kind: Secret
metadata:
  name: car1-qa-inputs
  namespace: summon-qa
`,
			want: []string{`f.yaml:9: spec.secrets[0]: the Secret car1-qa-inputs is not marked as an input: label it summon.forklift.dev/input=true and annotate it summon.forklift.dev/input-for=car1-qa (the SummonPlatforms that may read it, comma-separated, or "*" for every one in the namespace) (f.yaml:11)`},
		},
		"a SealedSecret's template is the Secret it becomes": {
			text: platformNaming + `---
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: car1-qa-inputs
  namespace: summon-qa
spec:
  template:
    metadata:
      labels: {summon.forklift.dev/input: "true"}
      annotations: {summon.forklift.dev/input-for: car2-qa}
`,
			want: []string{`f.yaml:9: spec.secrets[0]: the Secret car1-qa-inputs is an input, but not one for car1-qa: add car1-qa to its annotation summon.forklift.dev/input-for (comma-separated names) (f.yaml:11)`},
		},
		"a Secret of another namespace is not the one named": {
			text: platformNaming + `---
apiVersion: v1
kind: Secret
metadata:
  name: car1-qa-inputs
  namespace: summon-prod
`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, lintText(t, "f.yaml", tc.text)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
