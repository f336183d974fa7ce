package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"

	"github.com/forklift-dev/summon/internal/outside"
	"github.com/forklift-dev/summon/pkg/external/aws"
	"github.com/forklift-dev/summon/pkg/external/postgres"
	"github.com/forklift-dev/summon/pkg/external/rabbitmq"
	"github.com/forklift-dev/summon/pkg/platform"
)

// buildSystems makes a provider for every system the configuration switches on. It makes no call:
// a system that is down at start is reported per instance, in status, when it is needed.
func buildSystems(ctx context.Context, cfg Config, log *slog.Logger) (*outside.Systems, func(), error) {
	s := &outside.Systems{View: platform.Outside{BucketPrefix: cfg.BucketPrefix, AWSRegion: cfg.AWSRegion}, Log: log}
	closeAll := func() {}
	if cfg.AWSRegion != "" {
		p, err := aws.New(ctx, aws.Config{
			Region: cfg.AWSRegion, Endpoint: cfg.AWSEndpoint, UsePathStyle: cfg.AWSEndpoint != "", AccountID: cfg.AWSAccountID,
			CallTimeout: cfg.ExternalCallTimeout,
		})
		if err != nil {
			return nil, nil, err
		}
		s.AWS, s.View.AWS = p, true
	}
	if cfg.RabbitMQURL != "" {
		addr, err := amqpAddress(cfg.RabbitMQURL, cfg.RabbitMQAMQPAddress)
		if err != nil {
			return nil, nil, err
		}
		host, port, _ := net.SplitHostPort(addr)
		portNum, _ := strconv.Atoi(port)
		p, err := rabbitmq.New(rabbitmq.Config{ManagementURL: cfg.RabbitMQURL, AMQPHost: host, AMQPPort: portNum, CallTimeout: cfg.ExternalCallTimeout})
		if err != nil {
			return nil, nil, fmt.Errorf("--rabbitmq-url: %w", err)
		}
		s.RabbitMQ, s.View.RabbitMQ, s.View.RabbitAMQPAddr = p, true, addr
	}
	if cfg.PostgresAdminDSN != "" {
		p, err := postgres.New(postgres.Config{AdminDSN: cfg.PostgresAdminDSN, CallTimeout: cfg.ExternalCallTimeout})
		if err != nil {
			return nil, nil, fmt.Errorf("--postgres-admin-dsn: %w", err)
		}
		s.Postgres, s.View.Postgres = p, true
		closeAll = p.Close
	}
	return s, closeAll, nil
}

// amqpAddress is where the apps connect: the flag, or the management URL's host on 5672.
func amqpAddress(managementURL, flag string) (string, error) {
	if flag != "" {
		if _, _, err := net.SplitHostPort(flag); err != nil {
			return "", fmt.Errorf("--rabbitmq-amqp-address %q must be host:port", flag)
		}
		return flag, nil
	}
	u, err := url.Parse(managementURL)
	if err != nil || u.Hostname() == "" {
		// The URL may hold a password: never repeat it.
		return "", fmt.Errorf("--rabbitmq-url is not a URL with a host")
	}
	return net.JoinHostPort(u.Hostname(), "5672"), nil
}
