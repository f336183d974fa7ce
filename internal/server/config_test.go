package server

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/platform"
)

func TestParseConfig(t *testing.T) {
	defaults := Config{Listen: "127.0.0.1:8080", MaxBodyBytes: 8 << 20, ShutdownTimeout: 15 * time.Second, ExternalCallTimeout: 5 * time.Second,
		RedisImage: children.DefaultRedisImage}
	tests := map[string]struct {
		args []string
		env  map[string]string
		want Config
	}{
		"nothing given serves on loopback with the defaults": {
			want: defaults,
		},
		"every flag is read": {
			args: []string{"--listen=0.0.0.0:9090", "--default-image=registry.example.com/app", "--credential-key-file=/etc/key",
				"--max-body-bytes=1024", "--shutdown-timeout=3s"},
			want: Config{Listen: "0.0.0.0:9090", DefaultImage: "registry.example.com/app", CredentialKeyFile: "/etc/key",
				MaxBodyBytes: 1024, ShutdownTimeout: 3 * time.Second, ExternalCallTimeout: 5 * time.Second, RedisImage: children.DefaultRedisImage},
		},
		"the systems outside the cluster are switched on by their flags": {
			args: []string{"--credential-key-file=/etc/key", "--aws-region=eu-west-1", "--aws-endpoint=http://127.0.0.1:4566",
				"--bucket-prefix=acme-", "--rabbitmq-url=http://admin:pw@rabbitmq:15672", "--rabbitmq-amqp-address=rabbitmq:5672",
				"--postgres-admin-dsn=postgres://admin:pw@pg:5432/postgres", "--external-call-timeout=2s"},
			want: Config{Listen: "127.0.0.1:8080", CredentialKeyFile: "/etc/key", MaxBodyBytes: 8 << 20, ShutdownTimeout: 15 * time.Second,
				AWSRegion: "eu-west-1", AWSEndpoint: "http://127.0.0.1:4566", BucketPrefix: "acme-",
				RabbitMQURL: "http://admin:pw@rabbitmq:15672", RabbitMQAMQPAddress: "rabbitmq:5672",
				PostgresAdminDSN: "postgres://admin:pw@pg:5432/postgres", ExternalCallTimeout: 2 * time.Second,
				RedisImage: children.DefaultRedisImage},
		},
		"the data services inside the cluster are set by their flags": {
			args: []string{"--redis-image=docker.io/library/redis:7.2.5", "--cnpg-namespace=cnpg-system", "--cnpg-retain-storage-class=retained-ssd"},
			want: Config{Listen: "127.0.0.1:8080", MaxBodyBytes: 8 << 20, ShutdownTimeout: 15 * time.Second, ExternalCallTimeout: 5 * time.Second,
				RedisImage: "docker.io/library/redis:7.2.5", CNPGNamespace: "cnpg-system", CNPGRetainStorageClass: "retained-ssd"},
		},
		"the environment fills what no flag gives": {
			env: map[string]string{"SUMMON_LISTEN": "0.0.0.0:8080", "SUMMON_DEFAULT_IMAGE": "registry.example.com/app",
				"SUMMON_CREDENTIAL_KEY_FILE": "/etc/key", "SUMMON_MAX_BODY_BYTES": "2048", "SUMMON_SHUTDOWN_TIMEOUT": "1m"},
			want: Config{Listen: "0.0.0.0:8080", DefaultImage: "registry.example.com/app", CredentialKeyFile: "/etc/key",
				MaxBodyBytes: 2048, ShutdownTimeout: time.Minute, ExternalCallTimeout: 5 * time.Second, RedisImage: children.DefaultRedisImage},
		},
		"a flag wins over the environment": {
			args: []string{"--listen=127.0.0.1:9000"},
			env:  map[string]string{"SUMMON_LISTEN": "0.0.0.0:8080"},
			want: Config{Listen: "127.0.0.1:9000", MaxBodyBytes: 8 << 20, ShutdownTimeout: 15 * time.Second, ExternalCallTimeout: 5 * time.Second,
				RedisImage: children.DefaultRedisImage},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigRefuses(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		"an environment value that is not a duration": {
			env: map[string]string{"SUMMON_SHUTDOWN_TIMEOUT": "soon"}, wantErr: `SUMMON_SHUTDOWN_TIMEOUT="soon" is not a valid --shutdown-timeout`,
		},
		"RabbitMQ without a credential key": {
			args: []string{"--rabbitmq-url=http://admin:pw@rabbitmq:15672"}, wantErr: "need --credential-key-file",
		},
		"a bucket prefix with upper case": {
			args: []string{"--bucket-prefix=Acme-"}, wantErr: "--bucket-prefix",
		},
		"a body limit of zero": {
			args: []string{"--max-body-bytes=0"}, wantErr: "--max-body-bytes must be positive",
		},
		"a default image with a tag": {
			args: []string{"--default-image=registry.example.com/app:v1"}, wantErr: `--default-image "registry.example.com/app:v1"`,
		},
		"an empty Redis image": {
			args: []string{"--redis-image="}, wantErr: "--redis-image",
		},
		"a CNPG namespace that is not a namespace name": {
			args: []string{"--cnpg-namespace=CNPG_System"}, wantErr: "--cnpg-namespace",
		},
		"a retaining StorageClass without CNPG": {
			args: []string{"--cnpg-retain-storage-class=retained"}, wantErr: "needs --cnpg-namespace",
		},
		"an argument that is not a flag": {
			args: []string{"serve"}, wantErr: "summon takes only flags",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := ParseConfig([]string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, s := range settings {
		if !strings.Contains(out.String(), "-"+s.flag) || !strings.Contains(out.String(), s.env) {
			t.Errorf("--help does not list --%s with %s:\n%s", s.flag, s.env, out.String())
		}
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := strings.Repeat("k", 32)
	tests := map[string]struct {
		path      string
		wantReady bool
		wantErr   string
	}{
		"no key file leaves generated credentials off": {path: "", wantReady: false},
		"a 32-byte key is accepted":                    {path: write("exact", key), wantReady: true},
		"a trailing newline is not part of the key":    {path: write("newline", key+"\n"), wantReady: true},
		"a 31-byte key is refused":                     {path: write("short", key[:31]+"\n"), wantErr: "holds 31 bytes"},
		"a missing key file is refused":                {path: filepath.Join(dir, "absent"), wantErr: "reading the credential key file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, err := loadCredentials(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "kkkk") {
					t.Errorf("the error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Ready() != tc.wantReady {
				t.Errorf("Ready() = %v, want %v", d.Ready(), tc.wantReady)
			}
		})
	}
	withNewline, _ := loadCredentials(write("a", key+"\n"))
	without, _ := loadCredentials(write("b", key))
	if withNewline.Derive("uid", "purpose") != without.Derive("uid", "purpose") {
		t.Error("a trailing newline changes every derived credential")
	}
}

func TestTheCoreIsToldWhichDataServicesTheHookHas(t *testing.T) {
	tests := map[string]struct {
		args []string
		want platform.DataServices
	}{
		"by default, the default Redis image and no CloudNativePG": {
			want: platform.DataServices{RedisImage: children.DefaultRedisImage},
		},
		"--cnpg-namespace says CloudNativePG is there": {
			args: []string{"--cnpg-namespace=cnpg-system", "--cnpg-retain-storage-class=retained"},
			want: platform.DataServices{RedisImage: children.DefaultRedisImage, CNPG: &platform.CNPG{OperatorNamespace: "cnpg-system", RetainStorageClass: "retained"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := ParseConfig(tc.args, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg.DataServices()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
