package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// secrets are the values that must never leave the hook except inside a Secret child.
type secrets map[string]string // value -> what it is

func (s secrets) add(what, value string) {
	// Short values ("true", "1") are not secrets, and would match anything.
	if len(value) >= 8 {
		s[value] = what
	}
}

// hookSecrets are the hook's own: its credentials to the systems outside the cluster.
func hookSecrets(cfg Config) secrets {
	s := secrets{}
	s.add("the hook's AWS secret key", hookAWSSecret)
	for what, raw := range map[string]string{"the RabbitMQ admin URL": cfg.RabbitMQURL, "the PostgreSQL admin DSN": cfg.PostgresAdminDSN} {
		if u, err := url.Parse(raw); err == nil {
			if pw, ok := u.User.Password(); ok {
				s.add("the password in "+what, pw)
			}
		}
	}
	return s
}

// requestSecrets are a request's: every credential derived for its parent, and every value of
// its input Secrets.
func requestSecrets(t *testing.T, body []byte) secrets {
	t.Helper()
	var req metacontroller.SyncRequest
	if err := metacontroller.Decode(body, &req); err != nil {
		t.Fatal(err)
	}
	s := secrets{}
	var parent struct {
		Metadata struct{ UID string }
	}
	_ = json.Unmarshal(req.Parent, &parent)
	d, _ := credentials.NewDeriver([]byte(liveKey))
	for _, purpose := range credentials.Purposes {
		s.add("the derived "+purpose, d.Derive(parent.Metadata.UID, purpose))
	}
	for _, byName := range req.Related {
		for key, obj := range byName {
			data, _ := obj["data"].(map[string]any)
			for k, v := range data {
				b, _ := base64.StdEncoding.DecodeString(fmt.Sprint(v))
				s.add(fmt.Sprintf("input Secret %s key %s", key, k), string(b))
			}
		}
	}
	return s
}

// answerSecrets are what an answer hands out inside Secret children (a fresh IAM secret key),
// and the answer without its Secret children, where no secret may be.
func answerSecrets(t *testing.T, body []byte) (secrets, string) {
	t.Helper()
	var resp struct {
		Status   json.RawMessage  `json:"status"`
		Children []map[string]any `json:"children"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, string(body)
	}
	s := secrets{}
	var rest []map[string]any
	for _, c := range resp.Children {
		if c["kind"] != "Secret" {
			rest = append(rest, c)
			continue
		}
		data, _ := c["data"].(map[string]any)
		if v, ok := data["AWS_SECRET_ACCESS_KEY"]; ok {
			b, _ := base64.StdEncoding.DecodeString(fmt.Sprint(v))
			s.add("the IAM secret access key", string(b))
		}
	}
	outside, _ := json.Marshal(map[string]any{"status": resp.Status, "children": rest})
	return s, string(outside)
}

// leaks says where in text a secret, or its base64, appears.
func leaks(where, text string, s secrets) []string {
	var out []string
	for value, what := range s {
		for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value)), url.QueryEscape(value)} {
			if strings.Contains(text, form) {
				out = append(out, fmt.Sprintf("%s holds %s", where, what))
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func goldenRequests(t *testing.T) map[string][]byte {
	t.Helper()
	dirs, err := filepath.Glob("../../testdata/sync/*/request.json")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden requests: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range dirs {
		out[filepath.Base(filepath.Dir(p))] = readFile(t, p)
	}
	return out
}

// finalizing turns a sync request into the finalize request of the same parent being deleted.
func finalizing(t *testing.T, body []byte, policy string) []byte {
	t.Helper()
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	parent := req["parent"].(map[string]any)
	parent["metadata"].(map[string]any)["deletionTimestamp"] = "2026-12-01T12:00:00Z"
	if spec, ok := parent["spec"].(map[string]any); ok {
		spec["deletionPolicy"] = policy
	}
	req["finalizing"] = true
	b, _ := json.Marshal(req)
	return b
}

// TestNoSecretLeavesTheHook runs every golden case, their finalize calls under both deletion
// policies, and failing systems, through hook servers that log at debug level, and fails if any
// generated password, access key, input Secret value or the hook's own credential appears in a
// log line, a status, a non-Secret child, an error answer or a metric.
func TestNoSecretLeavesTheHook(t *testing.T) {
	live := newLiveSystems(t)
	closed := testenv.ClosedAddr(t)
	servers := map[string]Config{
		"every system on": live.config(t),
		"every system off": func() Config {
			c := live.config(t)
			c.AWSRegion, c.AWSEndpoint, c.RabbitMQURL, c.PostgresAdminDSN = "", "", "", ""
			return c
		}(),
		"every system down": func() Config {
			c := live.config(t)
			c.AWSEndpoint = "http://" + closed
			c.RabbitMQURL = "http://summon-admin:rabbit-admin-password-of-a-down-node@" + closed
			c.PostgresAdminDSN = "postgres://summon_admin:postgres-admin-password-of-a-down-server@" + closed + "/postgres?sslmode=disable&connect_timeout=2"
			return c
		}(),
		"every system refusing the hook's credentials": func() Config {
			c := live.config(t)
			u, _ := url.Parse(c.RabbitMQURL)
			u.User = url.UserPassword(u.User.Username(), "a-wrong-rabbit-admin-password")
			c.RabbitMQURL = u.String()
			d, _ := url.Parse(c.PostgresAdminDSN)
			d.User = url.UserPassword(d.User.Username(), "a-wrong-postgres-admin-password")
			c.PostgresAdminDSN = d.String()
			return c
		}(),
	}
	refused := map[string]string{
		"a truncated request":           `{"parent":{"metadata":{"name":"car1-qa","namespace":"summon-qa"},"spec":{"version":"v1","config":{"API_TOKEN":"input-secret-in-a-broken-request`,
		"a config value that is a list": `{"parent":{"metadata":{"name":"car1-qa","namespace":"summon-qa"},"spec":{"version":"v1","config":{"API_TOKEN":["input-secret-in-a-broken-request"]}}},"children":{}}`,
	}
	for name, cfg := range servers {
		t.Run(name, func(t *testing.T) {
			base, logs := liveServer(t, cfg, slog.LevelDebug)
			all := hookSecrets(cfg)
			all.add("a secret in a refused request", "input-secret-in-a-broken-request")
			var found []string
			check := func(what string, body []byte, code int, s secrets) {
				handed, outside := answerSecrets(t, body)
				for v, w := range handed {
					s[v] = w
				}
				for v, w := range s {
					all[v] = w
				}
				where := what + " answer (status, non-Secret children)"
				if code != http.StatusOK {
					where = fmt.Sprintf("%s error answer (%d)", what, code)
				}
				found = append(found, leaks(where, outside, s)...)
			}
			for name, body := range goldenRequests(t) {
				code, answer := call(t, base+"/sync", body, "")
				check("the sync of "+name, answer, code, requestSecrets(t, body))
				for _, policy := range []string{"Retain", "Delete"} {
					fin := finalizing(t, body, policy)
					code, answer := call(t, base+"/finalize", fin, "")
					check("the finalize ("+policy+") of "+name, answer, code, requestSecrets(t, fin))
				}
			}
			for name, body := range refused {
				code, answer := call(t, base+"/sync", []byte(body), "")
				check(name, answer, code, secrets{})
			}
			found = append(found, leaks("the log", logs.text(), all)...)
			found = append(found, leaks("/metrics", metricsOf(t, base), all)...)
			if len(found) > 0 {
				t.Errorf("secrets left the hook:\n%s", strings.Join(found, "\n"))
			}
			if !strings.Contains(logs.text(), `"level":"DEBUG"`) {
				t.Error("nothing was logged at debug level: the check saw less than an operator with --log-level=debug would")
			}
			// The check must have looked for every kind of secret the cases hand out.
			kinds := []string{"the derived " + credentials.DjangoSecretKey, "the derived " + credentials.DatabasePassword, "input Secret"}
			if cfg.RabbitMQURL != "" {
				kinds = append(kinds, "the password in")
			}
			if cfg.AWSRegion != "" && !strings.Contains(cfg.AWSEndpoint, closed) {
				kinds = append(kinds, "the IAM secret access key")
			}
			for _, kind := range kinds {
				if !slices.ContainsFunc(slices.Collect(maps.Values(all)), func(w string) bool { return strings.HasPrefix(w, kind) }) {
					t.Errorf("no secret of the kind %q was looked for", kind)
				}
			}
		})
	}
}

func metricsOf(t *testing.T, base string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
