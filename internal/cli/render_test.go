package cli

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/platform"
)

// goldenClock and the hook's configuration per case are those of pkg/platform's golden tests.
var goldenClock = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// goldenProfile is the hook configuration of each golden case, as pkg/platform's goldenEnv sets it.
func goldenProfile(name string) platform.HookProfile {
	p := platform.HookProfile{Defaults: v1beta1.HookDefaults{Image: "registry.example.com/summon-platform"}, CredentialKey: true,
		Data: platform.DataServices{RedisImage: children.DefaultRedisImage}}
	switch name {
	case "postgres-in-cluster", "qa-own-data-ready":
		p.Data.CNPG = &platform.CNPG{OperatorNamespace: "cnpg-system", RetainStorageClass: "retained"}
	case "postgres-backup-running", "postgres-backup-completed-migration-starts", "postgres-backup-failed":
		p.Data.CNPG = &platform.CNPG{OperatorNamespace: "cnpg-system", RetainStorageClass: "retained", SnapshotClass: "csi-snapshots"}
	case "input-secrets-and-shared-database":
		p.Outside = platform.Outside{Postgres: true}
	case "builders-wave-open":
		// The hook serves its open wave at GET /config; render answers under it as the hook does.
		p.Rollout = platform.Wave{Revision: platform.BuilderRevision, Selector: "tier=canary"}
	case "externals-steady", "externals-from-before-owner-marks":
		p.Outside = platform.Outside{AWS: true, RabbitMQ: true, Postgres: true, BucketPrefix: "acme-", AWSRegion: "eu-west-1", RabbitAMQPAddr: "rabbitmq.shared.svc:5672"}
	case "backup-running", "backup-completed-migration-starts", "backup-failed", "backup-best-effort-failed", "backup-never":
		p.Outside = platform.Outside{AWS: true, RabbitMQ: true, Postgres: true, BucketPrefix: "acme-", AWSRegion: "eu-west-1", RabbitAMQPAddr: "rabbitmq.shared.svc:5672"}
		p.Data.BackupImage = "registry.example.com/summon-backup:16"
	}
	return p
}

// Cases whose request summonctl can't build from files, each for a reason of its own.
var notRenderable = map[string]string{
	"externals-created":                 "the answer holds the IAM key that the hook's own call to AWS returned",
	"externals-failing":                 "the answer holds the failure of the hook's own call to RabbitMQ",
	"externals-owned-by-another":        "the answer holds the refusal the hook's own call to AWS met",
	"input-secret-missing":              "render stands in for a missing input Secret (offline, inputs are sealed); diff reports it",
	"missing-child-group":               "a request summonctl builds has every declared group",
	"input-secrets-and-shared-database": "its golden answer is Sync's without the calls outside the cluster the hook makes first; render assumes they succeed",
	"unknown-child-type":                "a request summonctl builds has only the declared groups",
}

// render, given what a golden request observed (the children, the input Secrets, the
// SummonPlatform with its status) as files, answers what the hook answered: the same children,
// byte for byte where the live config Secret gives the generated secrets back, and the same
// status. Without an observed config Secret, generated secrets are placeholders, so only the
// config Secret's data may differ.
func TestRenderGivesTheHooksAnswerForEveryGoldenCase(t *testing.T) {
	dirs, _ := filepath.Glob("../../testdata/sync/*")
	if len(dirs) == 0 {
		t.Fatal("no golden case")
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			if why, ok := notRenderable[name]; ok {
				t.Skip(why)
			}
			req := readGoldenRequest(t, dir)
			var file map[string]any
			if err := json.Unmarshal(req.Parent, &file); err != nil {
				t.Fatal(err)
			}
			observed := []map[string]any{deepCopyJSON(file)}
			configObserved := false
			for _, groups := range []map[string]map[string]map[string]any{req.Children, req.Related} {
				for _, byName := range groups {
					for _, obj := range byName {
						observed = append(observed, obj)
						configObserved = configObserved || (isSecret(obj) && metaString(obj, "name") == children.NamesFor(metaString(file, "name")).Config())
					}
				}
			}
			delete(file, "status")
			r, err := renderPlatform(file, normalize(t, observed), goldenProfile(name), goldenClock)
			if err != nil {
				t.Fatal(err)
			}
			var want struct {
				Status   v1beta1.Status   `json:"status"`
				Children []map[string]any `json:"children"`
			}
			readJSONFile(t, filepath.Join(dir, "response.json"), &want)
			got := normalize(t, r.children)
			if !configObserved {
				blankConfigData(want.Children)
				blankConfigData(got)
			}
			if diff := cmp.Diff(sortedObjects(want.Children), sortedObjects(got)); diff != "" {
				t.Errorf("children (-hook +render):\n%s", diff)
			}
			if diff := cmp.Diff(want.Status, r.status); diff != "" {
				t.Errorf("status (-hook +render):\n%s", diff)
			}
		})
	}
}

func TestRenderMasksSecretsUnlessAskedAndExitsOneOnError(t *testing.T) {
	out, errOut, code := run(t, "render", "-f", "../../examples/qa.yaml")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"kind: SummonPlatform", "phase: Initializing", "summon-platform.yml:\n    DEBUG: '***'\n    SECRET_KEY: '***'", "kind: Ingress"} {
		if !strings.Contains(out, want) {
			t.Errorf("render's output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "input Secret car1-qa-inputs is not among the observed objects") {
		t.Errorf("render does not warn that it stood in for the input Secret: %s", errOut)
	}
	out, errOut, code = run(t, "render", "-f", "../../examples/qa.yaml", "--show-secrets", "-o", "json")
	if code != ExitOK || !strings.Contains(errOut, "warning: --show-secrets") {
		t.Fatalf("exit %d, want a warning on stderr: %s", code, errOut)
	}
	if !strings.Contains(out, `"kind": "List"`) || strings.Contains(out, "***") {
		t.Errorf("render -o json --show-secrets should print a List without masks:\n%s", out)
	}

	_, _, code = run(t, "render", "-f", "../../examples/qa.yaml", "--default-image", "Not An Image")
	if code != ExitOK {
		t.Errorf("a spec with its own image renders whatever the default: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, header+"spec:\n  version: v1\n  replicas: {celeryBeat: 2}\n")
	out, _, code = run(t, "render", "-f", bad, "--default-image", "registry.example.com/app")
	if code != ExitFound || !strings.Contains(out, "phase: Error") {
		t.Errorf("an invalid spec renders phase Error and exits %d; got exit %d:\n%s", ExitFound, code, out)
	}
}

// normalize sends objects through JSON as the hook's wire does.
func normalize(t *testing.T, objs []map[string]any) []map[string]any {
	t.Helper()
	b, err := json.Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func blankConfigData(objs []map[string]any) {
	for _, o := range objs {
		if isSecret(o) && labelOf(o, children.LabelComponent) == string(children.AppConfig) {
			o["data"] = "(generated: differs offline)"
		}
	}
}

func sortedObjects(objs []map[string]any) []map[string]any {
	out := slices.Clone(objs)
	slices.SortFunc(out, func(a, b map[string]any) int {
		return strings.Compare(a["kind"].(string)+"/"+metaString(a, "name"), b["kind"].(string)+"/"+metaString(b, "name"))
	})
	return out
}
