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
		LogLevel: "info", MaxConcurrentHooks: DefaultMaxConcurrentHooks, OverloadRetryAfter: 2 * time.Second,
		RedisImage: children.DefaultRedisImage}
	with := func(edit func(*Config)) Config {
		c := defaults
		edit(&c)
		return c
	}
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
				"--max-body-bytes=1024", "--shutdown-timeout=3s", "--ops-listen=0.0.0.0:9091", "--log-level=debug",
				"--auth-token-file=/etc/token", "--tls-cert-file=/etc/tls.crt", "--tls-key-file=/etc/tls.key",
				"--tls-client-ca-file=/etc/ca.crt", "--max-concurrent-hooks=4", "--overload-retry-after=5s"},
			want: with(func(c *Config) {
				c.Listen, c.DefaultImage, c.CredentialKeyFile = "0.0.0.0:9090", "registry.example.com/app", "/etc/key"
				c.MaxBodyBytes, c.ShutdownTimeout, c.OpsListen, c.LogLevel = 1024, 3*time.Second, "0.0.0.0:9091", "debug"
				c.AuthTokenFile, c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = "/etc/token", "/etc/tls.crt", "/etc/tls.key", "/etc/ca.crt"
				c.MaxConcurrentHooks, c.OverloadRetryAfter = 4, 5*time.Second
			}),
		},
		"a non-loopback address is served when the callers are told to be insecure": {
			args: []string{"--listen=0.0.0.0:8080", "--insecure-no-auth"},
			want: with(func(c *Config) { c.Listen, c.InsecureNoAuth = "0.0.0.0:8080", true }),
		},
		"the systems outside the cluster are switched on by their flags": {
			args: []string{"--credential-key-file=/etc/key", "--aws-region=eu-west-1", "--aws-endpoint=http://127.0.0.1:4566",
				"--bucket-prefix=acme-", "--rabbitmq-url=http://admin:pw@rabbitmq:15672", "--rabbitmq-amqp-address=rabbitmq:5672",
				"--postgres-admin-dsn=postgres://admin:pw@pg:5432/postgres", "--external-call-timeout=2s"},
			want: with(func(c *Config) {
				c.CredentialKeyFile, c.AWSRegion, c.AWSEndpoint, c.BucketPrefix = "/etc/key", "eu-west-1", "http://127.0.0.1:4566", "acme-"
				c.RabbitMQURL, c.RabbitMQAMQPAddress = "http://admin:pw@rabbitmq:15672", "rabbitmq:5672"
				c.PostgresAdminDSN, c.ExternalCallTimeout = "postgres://admin:pw@pg:5432/postgres", 2*time.Second
			}),
		},
		"the environment fills what no flag gives": {
			env: map[string]string{"SUMMON_LISTEN": "0.0.0.0:8080", "SUMMON_DEFAULT_IMAGE": "registry.example.com/app",
				"SUMMON_CREDENTIAL_KEY_FILE": "/etc/key", "SUMMON_MAX_BODY_BYTES": "2048", "SUMMON_SHUTDOWN_TIMEOUT": "1m",
				"SUMMON_AUTH_TOKEN_FILE": "/etc/token", "SUMMON_INSECURE_NO_AUTH": ""},
			want: with(func(c *Config) {
				c.Listen, c.DefaultImage, c.CredentialKeyFile = "0.0.0.0:8080", "registry.example.com/app", "/etc/key"
				c.MaxBodyBytes, c.ShutdownTimeout, c.AuthTokenFile = 2048, time.Minute, "/etc/token"
			}),
		},
		"the data services inside the cluster are set by their flags": {
			args: []string{"--redis-image=docker.io/library/redis:7.2.5", "--cnpg-namespace=cnpg-system", "--cnpg-retain-storage-class=retained-ssd"},
			want: with(func(c *Config) {
				c.RedisImage, c.CNPGNamespace, c.CNPGRetainStorageClass = "docker.io/library/redis:7.2.5", "cnpg-system", "retained-ssd"
			}),
		},
		"a flag wins over the environment": {
			args: []string{"--listen=127.0.0.1:9000"},
			env:  map[string]string{"SUMMON_LISTEN": "0.0.0.0:8080"},
			want: with(func(c *Config) { c.Listen = "127.0.0.1:9000" }),
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
		"a backup image with a space in it is refused": {
			args: []string{"--backup-image=registry.example.com/backup 16"}, wantErr: "--backup-image",
		},
		"a CNPG namespace that is not a namespace name": {
			args: []string{"--cnpg-namespace=CNPG_System"}, wantErr: "--cnpg-namespace",
		},
		"a retaining StorageClass without CNPG": {
			args: []string{"--cnpg-retain-storage-class=retained"}, wantErr: "needs --cnpg-namespace",
		},
		"a snapshot class without CNPG": {
			args: []string{"--cnpg-snapshot-class=csi-snapshots"}, wantErr: "needs --cnpg-namespace",
		},
		"a snapshot class that is not a name": {
			args: []string{"--cnpg-namespace=cnpg-system", "--cnpg-snapshot-class=CSI Snapshots"}, wantErr: "--cnpg-snapshot-class",
		},
		"an argument that is not a flag": {
			args: []string{"serve"}, wantErr: "summon takes only flags",
		},
		"every address without authentication": {
			args: []string{"--listen=0.0.0.0:8080"}, wantErr: "refusing to serve the hooks on 0.0.0.0:8080 without authentication",
		},
		"an address with no host, which is every address, without authentication": {
			args: []string{"--listen=:8080"}, wantErr: "refusing to serve the hooks on :8080 without authentication",
		},
		"a host name that is not loopback, without authentication": {
			args: []string{"--listen=summon.internal:8080"}, wantErr: "without authentication",
		},
		"an insecure server that has a token after all": {
			args: []string{"--insecure-no-auth", "--auth-token-file=/etc/token"}, wantErr: "--insecure-no-auth contradicts",
		},
		"a certificate without its key": {
			args: []string{"--tls-cert-file=/etc/tls.crt"}, wantErr: "go together",
		},
		"client certificates without TLS": {
			args: []string{"--tls-client-ca-file=/etc/ca.crt"}, wantErr: "needs --tls-cert-file",
		},
		"a log level that does not exist": {
			args: []string{"--log-level=verbose"}, wantErr: `--log-level "verbose"`,
		},
		"no hook call at all": {
			args: []string{"--max-concurrent-hooks=0"}, wantErr: "--max-concurrent-hooks must be at least 1",
		},
		"a Retry-After below a second": {
			args: []string{"--overload-retry-after=500ms"}, wantErr: "--overload-retry-after must be at least 1s",
		},
		"the ops routes on the hooks' own address": {
			args: []string{"--ops-listen=127.0.0.1:8080"}, wantErr: "--ops-listen 127.0.0.1:8080 is --listen",
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
		"--cnpg-snapshot-class turns on CloudNativePG's backup before each migration of an own Postgres": {
			args: []string{"--cnpg-namespace=cnpg-system", "--cnpg-snapshot-class=csi-snapshots"},
			want: platform.DataServices{RedisImage: children.DefaultRedisImage, CNPG: &platform.CNPG{OperatorNamespace: "cnpg-system", SnapshotClass: "csi-snapshots"}},
		},
		"--backup-image turns on the backup before each migration of an instance on the shared Postgres": {
			args: []string{"--backup-image=registry.example.com/summon-backup:16"},
			want: platform.DataServices{RedisImage: children.DefaultRedisImage, BackupImage: "registry.example.com/summon-backup:16"},
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
