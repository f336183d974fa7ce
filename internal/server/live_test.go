package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/sivchari/kumo"

	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/external/aws"
)

// The hook's own AWS credentials in these tests: what the SDK's default chain reads. kumo takes
// any.
const (
	hookAWSKeyID  = "AKIDSUMMONHOOKTEST"
	hookAWSSecret = "summon-hook-aws-secret-for-tests"
	liveKey       = "summon-live-test-credential-key-0123456789"
)

// liveSystems are the real systems outside the cluster a test's hook server is pointed at:
// PostgreSQL and RabbitMQ of hack/test.sh, and kumo in process for S3 and IAM.
type liveSystems struct {
	pgDSN     string
	rabbitURL string
	awsURL    string
	s3        *s3.Client
	rabbit    *rabbithole.Client
}

func newLiveSystems(t *testing.T) *liveSystems {
	t.Helper()
	l := &liveSystems{pgDSN: testenv.Postgres(t), rabbitURL: testenv.RabbitMQ(t)}
	emulator := kumo.NewServer()
	t.Cleanup(emulator.Close)
	l.awsURL = emulator.URL
	t.Setenv("AWS_ACCESS_KEY_ID", hookAWSKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", hookAWSSecret)
	clients, err := aws.NewClients(context.Background(), aws.Config{Region: "us-east-1", Endpoint: emulator.URL, UsePathStyle: true,
		AccessKeyID: hookAWSKeyID, SecretAccessKey: hookAWSSecret})
	if err != nil {
		t.Fatal(err)
	}
	l.s3 = clients.S3.(*s3.Client)
	u, _ := url.Parse(l.rabbitURL)
	pw, _ := u.User.Password()
	if l.rabbit, err = rabbithole.NewClient("http://"+u.Host, u.User.Username(), pw); err != nil {
		t.Fatal(err)
	}
	return l
}

// config is the hook's configuration with every system on, as an install would have it.
func (l *liveSystems) config(t *testing.T) Config {
	t.Helper()
	key := filepath.Join(t.TempDir(), "credential-key")
	if err := os.WriteFile(key, []byte(liveKey), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]string{
		"--listen=127.0.0.1:0",
		"--credential-key-file=" + key,
		"--default-image=registry.example.com/summon-platform",
		"--aws-region=us-east-1", "--aws-endpoint=" + l.awsURL, "--bucket-prefix=summon-test-",
		"--rabbitmq-url=" + l.rabbitURL, "--rabbitmq-amqp-address=127.0.0.1:5672",
		"--postgres-admin-dsn=" + l.pgDSN,
		"--external-call-timeout=3s",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// left says which of an instance's resources exist in the real systems.
type left struct{ Bucket, Vhost, Database bool }

func (l *liveSystems) left(t *testing.T, names external.Names) left {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got left
	if _, err := l.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: awssdk.String(names.Bucket)}); err == nil {
		got.Bucket = true
	}
	if _, err := l.rabbit.GetVhost(names.RabbitVhost); err == nil {
		got.Vhost = true
	} else {
		var e rabbithole.ErrorResponse
		if !errors.As(err, &e) || e.StatusCode != 404 {
			t.Fatalf("looking up vhost %s: %v", names.RabbitVhost, err)
		}
	}
	conn, err := pgx.Connect(ctx, l.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", names.Database).Scan(&got.Database); err != nil {
		t.Fatal(err)
	}
	return got
}

// liveServer runs a hook server built by New, as cmd/summon builds it, on 127.0.0.1, logging into
// the returned logs at the given level.
func liveServer(t *testing.T, cfg Config, level slog.Level) (string, *logs) {
	t.Helper()
	l := &logs{}
	s, err := New(cfg, slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: level})))
	if err != nil {
		t.Fatal(err)
	}
	return serveLoopback(t, s), l
}
