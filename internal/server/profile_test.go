package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/platform"
)

// GET /config tells clients how the hook answers (summonctl builds the same Env from it), and it is
// read by anyone who may reach the hook's port, so it must hold no secret: not the credential
// key, not the passwords in the RabbitMQ URL or the Postgres DSN. New makes no call to either
// system, so nothing needs to listen at their addresses.
func TestConfigServesTheHooksProfileWithoutASecret(t *testing.T) {
	dir := t.TempDir()
	const key = "config-test-credential-key-of-at-least-32-bytes"
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const rabbitPassword, postgresPassword = "rabbit-admin-secret-123", "postgres-admin-secret-456"
	cfg, err := ParseConfig([]string{
		"--credential-key-file=" + keyFile,
		"--default-image=registry.example.com/summon-platform",
		"--bucket-prefix=acme-",
	}, func(name string) string {
		return map[string]string{
			"SUMMON_RABBITMQ_URL":          "http://admin:" + rabbitPassword + "@127.0.0.1:1/",
			"SUMMON_RABBITMQ_AMQP_ADDRESS": "rabbitmq.shared.svc:5672",
			"SUMMON_POSTGRES_ADMIN_DSN":    "postgres://admin:" + postgresPassword + "@127.0.0.1:1/postgres",
		}[name]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rec := get(s, "/config")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /config answered %d: %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	for _, secret := range []string{key, rabbitPassword, postgresPassword, "admin:"} {
		if strings.Contains(body, secret) {
			t.Errorf("GET /config holds a secret (%q): %s", secret, body)
		}
	}
	var got platform.HookProfile
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("GET /config is not a HookProfile: %v: %s", err, body)
	}
	got.Version = ""
	want := platform.HookProfile{
		Defaults:      v1beta1.HookDefaults{Image: "registry.example.com/summon-platform"},
		CredentialKey: true,
		Outside:       platform.Outside{RabbitMQ: true, Postgres: true, BucketPrefix: "acme-", RabbitAMQPAddr: "rabbitmq.shared.svc:5672"},
		Data:          platform.DataServices{RedisImage: children.DefaultRedisImage},
		// No --rollout-file: no wave.
		BuilderRevision: platform.BuilderRevision,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /config (-want +got):\n%s", diff)
	}
}

func TestConfigOfAHookWithoutAKeySaysSo(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", MaxBodyBytes: 1 << 20, ShutdownTimeout: 1}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var got platform.HookProfile
	if err := json.Unmarshal(get(s, "/config").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.CredentialKey || got.Outside.Any() {
		t.Errorf("a hook with no key and no system says %+v", got)
	}
}
