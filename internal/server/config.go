package server

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
	"github.com/forklift-dev/summon/pkg/platform"
)

// Config is the hook server's configuration: flags, each with an environment fallback.
type Config struct {
	// Listen is the address to serve on. The default is loopback, for a local run; the Deployment
	// in manifests/ listens on 0.0.0.0:8080.
	Listen string
	// DefaultImage is the image repository of SummonPlatforms that set no spec.image.
	DefaultImage string
	// CredentialKeyFile holds the master key that generated credentials derive from.
	CredentialKeyFile string
	// MaxBodyBytes bounds a hook request body.
	MaxBodyBytes int64
	// ShutdownTimeout bounds how long in-flight hook calls may take to finish on SIGTERM.
	ShutdownTimeout time.Duration
	// OpsListen, when set, serves /healthz, /readyz, /metrics and /config on an address of their
	// own, so that a NetworkPolicy can admit only Metacontroller to the hooks while the kubelet,
	// Prometheus and the API server's service proxy reach the rest. Empty serves them on Listen.
	OpsListen string
	// LogLevel is the lowest level logged: debug, info, warn or error.
	LogLevel string

	// AuthTokenFile holds the bearer token every hook call must carry (Metacontroller sends it with
	// the CompositeController's authorization.secretRef). It is read again when it changes.
	AuthTokenFile string
	// RolloutFile holds the builder wave the operator opened (docs/upgrading.md); it is read
	// again when it changes. Empty, or a missing file: no wave is open.
	RolloutFile string
	// InsecureNoAuth lets the hooks be served without authentication on a non-loopback address.
	InsecureNoAuth bool
	// TLSCertFile and TLSKeyFile serve the hooks over TLS; both are read again when they change.
	TLSCertFile string
	TLSKeyFile  string
	// TLSClientCAFile, when set, makes every hook caller present a client certificate signed by it.
	TLSClientCAFile string
	// MaxConcurrentHooks bounds the hook calls served at once; one more is answered 429.
	MaxConcurrentHooks int
	// OverloadRetryAfter is the Retry-After of a 429.
	OverloadRetryAfter time.Duration

	// Systems outside the cluster; each is off while its switch (region, URL, DSN) is empty.
	AWSRegion           string
	AWSEndpoint         string
	AWSAccountID        string
	BucketPrefix        string
	RabbitMQURL         string
	RabbitMQAMQPAddress string
	PostgresAdminDSN    string
	ExternalCallTimeout time.Duration

	// Data services inside the cluster: the image of an instance's own Redis, and CloudNativePG's
	// operator namespace (empty: CNPG is not installed) and retaining StorageClass.
	RedisImage             string
	BackupImage            string
	CNPGNamespace          string
	CNPGRetainStorageClass string
	CNPGSnapshotClass      string
}

// setting is one flag and the environment variable it falls back to.
type setting struct {
	flag, env, usage string
}

var settings = []setting{
	{"listen", "SUMMON_LISTEN", "address to serve the hooks, /healthz, /readyz and /metrics on"},
	{"default-image", "SUMMON_DEFAULT_IMAGE", "image repository (no tag) of SummonPlatforms that set no spec.image"},
	{"credential-key-file", "SUMMON_CREDENTIAL_KEY_FILE", "file holding the credential master key (at least 32 bytes; a trailing newline is ignored). " +
		"Without it generated credentials (Django SECRET_KEY, shared-database passwords) are off. The key must never change: every generated credential derives from it"},
	{"max-body-bytes", "SUMMON_MAX_BODY_BYTES", "largest hook request body accepted; a larger one is answered 413"},
	{"shutdown-timeout", "SUMMON_SHUTDOWN_TIMEOUT", "how long in-flight hook calls may take to finish after SIGTERM"},
	{"ops-listen", "SUMMON_OPS_LISTEN", "address to serve /healthz, /readyz, /metrics and /config on, apart from the hooks; empty serves them on --listen"},
	{"log-level", "SUMMON_LOG_LEVEL", "lowest level logged: debug, info, warn or error"},
	{"auth-token-file", "SUMMON_AUTH_TOKEN_FILE", "file holding the bearer token (at least 32 characters) that every hook call must carry; read again when it changes. " +
		"Without it (and without --tls-client-ca-file) the hooks are served only on a loopback address"},
	{"rollout-file", "SUMMON_ROLLOUT_FILE", "file holding the open builder wave (YAML: revision, percent, selector, urgent), as summonctl waves open writes it; read again when it changes. " +
		"Without it, or while it is missing, no wave is open: app workloads that only this build's builders would change keep their pod templates (docs/upgrading.md)"},
	{"insecure-no-auth", "SUMMON_INSECURE_NO_AUTH", "serve the hooks without authentication on a non-loopback address: any pod that reaches the port can then read and destroy every tenant's data. For tests only"},
	{"tls-cert-file", "SUMMON_TLS_CERT_FILE", "PEM certificate to serve the hooks over TLS (with --tls-key-file); read again when it changes"},
	{"tls-key-file", "SUMMON_TLS_KEY_FILE", "PEM private key of --tls-cert-file"},
	{"tls-client-ca-file", "SUMMON_TLS_CLIENT_CA_FILE", "PEM CA bundle: every hook caller must present a client certificate it signed (mutual TLS); read again when it changes"},
	{"max-concurrent-hooks", "SUMMON_MAX_CONCURRENT_HOOKS", "hook calls served at once; one more is answered 429 with Retry-After instead of queueing into Metacontroller's timeout"},
	{"overload-retry-after", "SUMMON_OVERLOAD_RETRY_AFTER", "Retry-After of a 429 answer (whole seconds)"},
	{"aws-region", "SUMMON_AWS_REGION", "AWS region of the instances' S3 buckets and IAM users; empty switches AWS off. The hook's own AWS credentials come from the SDK's default chain (environment, IRSA, instance role)"},
	{"aws-endpoint", "SUMMON_AWS_ENDPOINT", "an S3- and IAM-compatible endpoint to use instead of AWS (buckets addressed path-style)"},
	{"aws-account-id", "SUMMON_AWS_ACCOUNT_ID", "the AWS account every bucket must be in (each S3 call carries it as ExpectedBucketOwner); empty asks STS GetCallerIdentity once"},
	{"bucket-prefix", "SUMMON_BUCKET_PREFIX", "prefix of every bucket name (bucket names are global across AWS accounts), e.g. acme-"},
	{"rabbitmq-url", "SUMMON_RABBITMQ_URL", "RabbitMQ management API with an administrator's credentials, http://user:password@host:15672; empty switches RabbitMQ off. Set it through the environment: flags show in the process list"},
	{"rabbitmq-amqp-address", "SUMMON_RABBITMQ_AMQP_ADDRESS", "host:port the apps connect to over AMQP; empty means the management host on port 5672"},
	{"postgres-admin-dsn", "SUMMON_POSTGRES_ADMIN_DSN", "shared PostgreSQL server, as a role that may create roles and databases; empty switches it off. Set it through the environment: flags show in the process list"},
	{"external-call-timeout", "SUMMON_EXTERNAL_CALL_TIMEOUT", "deadline of each call to AWS, RabbitMQ or PostgreSQL"},
	{"redis-image", "SUMMON_REDIS_IMAGE", "image of each instance's own Redis (spec.redis). The default is Valkey, the BSD-licensed fork of Redis " +
		"that most distributions ship (Redis left the BSD licence with 7.4); an official redis image works too. Pin a patch tag or a digest in production"},
	{"backup-image", "SUMMON_BACKUP_IMAGE", "image of the pg_dump Job that backs up the database of an instance on the shared Postgres before each " +
		"migration, into the instance's bucket (docs/backups.md): it needs sh, pg_dump and pg_restore of the server's major version or later, and the AWS CLI. " +
		"Empty: Summon takes no backup, and instances that ask for one (spec.backups.beforeMigration: Required) stop before migrating"},
	{"cnpg-namespace", "SUMMON_CNPG_NAMESPACE", "namespace of the CloudNativePG operator; set it (the manifests/cnpg component does) only when CloudNativePG " +
		"is installed and the CompositeController declares its Cluster child type. Empty: no instance can have its own Postgres (spec.database.inCluster)"},
	{"cnpg-retain-storage-class", "SUMMON_CNPG_RETAIN_STORAGE_CLASS", "StorageClass whose reclaimPolicy is Retain, for the volumes of own Postgres " +
		"databases of instances with deletionPolicy Retain; without it such instances report ProviderMissing"},
	{"cnpg-snapshot-class", "SUMMON_CNPG_SNAPSHOT_CLASS", "VolumeSnapshotClass of the backups of own Postgres databases: before each migration " +
		"Summon asks CloudNativePG for a volume snapshot Backup and waits for it (docs/backups.md). The CompositeController must declare CNPG's Backup " +
		"child type (the manifests/cnpg component does). Empty: Summon takes no backup of an own Postgres"},
}

// ParseConfig reads the flags in args; a flag not given falls back to its environment variable,
// then to its default. --help writes the usage to out and returns flag.ErrHelp.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	cfg := Config{}
	fs := flag.NewFlagSet("summon", flag.ContinueOnError)
	fs.SetOutput(out)
	usage := map[string]string{}
	for _, s := range settings {
		usage[s.flag] = fmt.Sprintf("%s (env %s)", s.usage, s.env)
	}
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", usage["listen"])
	fs.StringVar(&cfg.DefaultImage, "default-image", "", usage["default-image"])
	fs.StringVar(&cfg.CredentialKeyFile, "credential-key-file", "", usage["credential-key-file"])
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 8<<20, usage["max-body-bytes"])
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, usage["shutdown-timeout"])
	fs.StringVar(&cfg.OpsListen, "ops-listen", "", usage["ops-listen"])
	fs.StringVar(&cfg.LogLevel, "log-level", "info", usage["log-level"])
	fs.StringVar(&cfg.AuthTokenFile, "auth-token-file", "", usage["auth-token-file"])
	fs.StringVar(&cfg.RolloutFile, "rollout-file", "", usage["rollout-file"])
	fs.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", false, usage["insecure-no-auth"])
	fs.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", usage["tls-cert-file"])
	fs.StringVar(&cfg.TLSKeyFile, "tls-key-file", "", usage["tls-key-file"])
	fs.StringVar(&cfg.TLSClientCAFile, "tls-client-ca-file", "", usage["tls-client-ca-file"])
	fs.IntVar(&cfg.MaxConcurrentHooks, "max-concurrent-hooks", DefaultMaxConcurrentHooks, usage["max-concurrent-hooks"])
	fs.DurationVar(&cfg.OverloadRetryAfter, "overload-retry-after", 2*time.Second, usage["overload-retry-after"])
	fs.StringVar(&cfg.AWSRegion, "aws-region", "", usage["aws-region"])
	fs.StringVar(&cfg.AWSEndpoint, "aws-endpoint", "", usage["aws-endpoint"])
	fs.StringVar(&cfg.AWSAccountID, "aws-account-id", "", usage["aws-account-id"])
	fs.StringVar(&cfg.BucketPrefix, "bucket-prefix", "", usage["bucket-prefix"])
	fs.StringVar(&cfg.RabbitMQURL, "rabbitmq-url", "", usage["rabbitmq-url"])
	fs.StringVar(&cfg.RabbitMQAMQPAddress, "rabbitmq-amqp-address", "", usage["rabbitmq-amqp-address"])
	fs.StringVar(&cfg.PostgresAdminDSN, "postgres-admin-dsn", "", usage["postgres-admin-dsn"])
	fs.DurationVar(&cfg.ExternalCallTimeout, "external-call-timeout", external.DefaultCallTimeout, usage["external-call-timeout"])
	fs.StringVar(&cfg.RedisImage, "redis-image", children.DefaultRedisImage, usage["redis-image"])
	fs.StringVar(&cfg.BackupImage, "backup-image", "", usage["backup-image"])
	fs.StringVar(&cfg.CNPGNamespace, "cnpg-namespace", "", usage["cnpg-namespace"])
	fs.StringVar(&cfg.CNPGRetainStorageClass, "cnpg-retain-storage-class", "", usage["cnpg-retain-storage-class"])
	fs.StringVar(&cfg.CNPGSnapshotClass, "cnpg-snapshot-class", "", usage["cnpg-snapshot-class"])
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: summon [flags]\n\n"+
			"Summon answers Metacontroller's sync, finalize and customize hooks for SummonPlatforms\n"+
			"(POST /sync, /finalize, /customize) and serves /healthz, /readyz and /metrics.\n"+
			"Every flag falls back to the environment variable named in its description.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q: summon takes only flags", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		v := getenv(s.env)
		if given[s.flag] || v == "" {
			continue
		}
		if err := fs.Set(s.flag, v); err != nil {
			return Config{}, fmt.Errorf("%s=%q is not a valid --%s: %w", s.env, v, s.flag, err)
		}
	}
	return cfg, cfg.validate()
}

// DefaultMaxConcurrentHooks is well above what Metacontroller sends at once (its --workers, 5 by
// default, per controller) and well below what makes calls queue into its 10 s timeout.
const DefaultMaxConcurrentHooks = 16

// Authenticated says whether hook callers must prove who they are: a bearer token, or a client
// certificate.
func (c Config) Authenticated() bool { return c.AuthTokenFile != "" || c.TLSClientCAFile != "" }

func (c Config) validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("--listen must not be empty"))
	}
	// Without authentication anyone who reaches the port may ask for any tenant's config Secret
	// (passwords included) or tear its data down: only the machine itself may reach it then.
	if c.Listen != "" && !c.Authenticated() && !c.InsecureNoAuth && !isLoopback(c.Listen) {
		errs = append(errs, fmt.Errorf("refusing to serve the hooks on %s without authentication: any pod that reaches it could read and destroy "+
			"every tenant's data. Give --auth-token-file (the install's summon-hook-token Secret) or --tls-client-ca-file, "+
			"or listen on a loopback address such as 127.0.0.1:8080", c.Listen))
	}
	if c.InsecureNoAuth && c.Authenticated() {
		errs = append(errs, errors.New("--insecure-no-auth contradicts --auth-token-file and --tls-client-ca-file: give one or the other"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together"))
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file: client certificates are checked in a TLS handshake"))
	}
	if c.OpsListen != "" && c.OpsListen == c.Listen {
		errs = append(errs, fmt.Errorf("--ops-listen %s is --listen: leave it empty to serve both on one address", c.OpsListen))
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.MaxConcurrentHooks < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-hooks must be at least 1, not %d", c.MaxConcurrentHooks))
	}
	if c.OverloadRetryAfter < time.Second {
		errs = append(errs, fmt.Errorf("--overload-retry-after must be at least 1s (Retry-After counts whole seconds), not %s", c.OverloadRetryAfter))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("--max-body-bytes must be positive, not %d", c.MaxBodyBytes))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout must be positive, not %s", c.ShutdownTimeout))
	}
	if c.ExternalCallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--external-call-timeout must be positive, not %s", c.ExternalCallTimeout))
	}
	if (c.RabbitMQURL != "" || c.PostgresAdminDSN != "") && c.CredentialKeyFile == "" {
		errs = append(errs, errors.New("--rabbitmq-url and --postgres-admin-dsn need --credential-key-file: their passwords derive from it"))
	}
	if c.BucketPrefix != "" && !bucketPrefix.MatchString(c.BucketPrefix) {
		errs = append(errs, fmt.Errorf("--bucket-prefix %q must be lower-case letters, digits and '-', starting with a letter or digit, at most 20 characters", c.BucketPrefix))
	}
	if c.DefaultImage != "" {
		// The spec's own rule for spec.image, so that the default can't be what a spec may not be.
		probe := &v1beta1.SummonPlatform{
			ObjectMeta: metav1.ObjectMeta{Name: "default-image"},
			Spec:       v1beta1.Spec{Version: "v1", Image: c.DefaultImage},
		}
		for _, e := range v1beta1.Validate(probe) {
			errs = append(errs, fmt.Errorf("--default-image %q: %s", c.DefaultImage, e.Detail))
		}
	}
	errs = append(errs, c.validateData()...)
	return errors.Join(errs...)
}

// isLoopback says whether a listen address is on loopback only. An empty host listens on every
// address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseLogLevel reads --log-level.
func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q must be debug, info, warn or error", s)
	}
	return l, nil
}

func (c Config) validateData() []error {
	var errs []error
	if c.RedisImage == "" || strings.ContainsAny(c.RedisImage, " \t\n") {
		errs = append(errs, fmt.Errorf("--redis-image %q must name an image, such as %s", c.RedisImage, children.DefaultRedisImage))
	}
	if strings.ContainsAny(c.BackupImage, " \t\n") {
		errs = append(errs, fmt.Errorf("--backup-image %q must name an image", c.BackupImage))
	}
	if c.CNPGNamespace != "" {
		for _, msg := range validation.IsDNS1123Label(c.CNPGNamespace) {
			errs = append(errs, fmt.Errorf("--cnpg-namespace %q: %s", c.CNPGNamespace, msg))
		}
	}
	if c.CNPGRetainStorageClass != "" {
		if c.CNPGNamespace == "" {
			errs = append(errs, errors.New("--cnpg-retain-storage-class needs --cnpg-namespace: it is for CloudNativePG's volumes"))
		}
		for _, msg := range validation.IsDNS1123Subdomain(c.CNPGRetainStorageClass) {
			errs = append(errs, fmt.Errorf("--cnpg-retain-storage-class %q: %s", c.CNPGRetainStorageClass, msg))
		}
	}
	if c.CNPGSnapshotClass != "" {
		if c.CNPGNamespace == "" {
			errs = append(errs, errors.New("--cnpg-snapshot-class needs --cnpg-namespace: it is for CloudNativePG's backups"))
		}
		for _, msg := range validation.IsDNS1123Subdomain(c.CNPGSnapshotClass) {
			errs = append(errs, fmt.Errorf("--cnpg-snapshot-class %q: %s", c.CNPGSnapshotClass, msg))
		}
	}
	return errs
}

// DataServices is what the core is told about the data services inside the cluster.
func (c Config) DataServices() platform.DataServices {
	d := platform.DataServices{RedisImage: c.RedisImage, BackupImage: c.BackupImage}
	if c.CNPGNamespace != "" {
		d.CNPG = &platform.CNPG{OperatorNamespace: c.CNPGNamespace, RetainStorageClass: c.CNPGRetainStorageClass, SnapshotClass: c.CNPGSnapshotClass}
	}
	return d
}

// bucketPrefix leaves room in S3's 63 characters for the namespace, name and hash.
var bucketPrefix = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,19}$`)

// loadCredentials reads the master key. Without a key file the deriver is off (credentials.Deriver
// zero value); a key file that is given but unreadable or short is an error, never a silent off.
// Neither the key nor any part of it appears in an error.
func loadCredentials(path string) (credentials.Deriver, error) {
	if path == "" {
		return credentials.Deriver{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return credentials.Deriver{}, fmt.Errorf("reading the credential key file: %w", err)
	}
	// Editors and `echo` end a file with a newline; `kubectl create secret --from-file` keeps it.
	key := bytes.TrimRight(b, "\r\n")
	d, err := credentials.NewDeriver(key)
	if err != nil {
		return credentials.Deriver{}, fmt.Errorf("credential key file %s holds %d bytes: %w", path, len(key), err)
	}
	return d, nil
}

// envOf adapts os.Getenv for ParseConfig, trimming stray whitespace from values set in a manifest.
func envOf(name string) string { return strings.TrimSpace(os.Getenv(name)) }
