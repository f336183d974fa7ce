// Package server wires Summon's hook server: the HTTP routes (the Metacontroller hooks, health,
// readiness and metrics), who may call the hooks (a bearer token, mutual TLS), how many calls run
// at once, the request body limit, panic recovery, JSON logs, Prometheus metrics and graceful
// shutdown. The hooks' decisions live in pkg/platform; nothing here talks to the Kubernetes API.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/forklift-dev/summon/hooks/customize"
	"github.com/forklift-dev/summon/hooks/finalize"
	"github.com/forklift-dev/summon/hooks/hookhttp"
	synchook "github.com/forklift-dev/summon/hooks/sync"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// The hooks' names, as they appear in metrics and logs.
const (
	hookSync      = "sync"
	hookFinalize  = "finalize"
	hookCustomize = "customize"
)

// Server is the hook server.
type Server struct {
	cfg Config
	log *slog.Logger
	// hooks serves the Metacontroller hooks, and the ops routes too unless ops has a listener of
	// its own.
	hooks *echo.Echo
	// ops serves /healthz, /readyz and /metrics on --ops-listen; nil when they share hooks.
	ops     *echo.Echo
	metrics *metrics
	ready   atomic.Bool
	// token is the bearer token every hook call must carry; nil when none is configured.
	token *tokenFile
	// tls serves the hooks over TLS (and checks client certificates); nil for plain HTTP.
	tls *tlsFiles
	// slots bounds the hook calls served at once.
	slots chan struct{}
	// profile is served at GET /config.
	profile platform.HookProfile
	// rollout is the builder wave in force; nil without --rollout-file.
	rollout *rolloutFile
	// etags name the sync hook's answers; New sets their fingerprint.
	etags *synchook.ETags
	// closers release the providers' connections once the last hook call is done.
	closers []func()
}

// Main runs the server as the summon command does and returns the process's exit code.
func Main(args []string) int { return run(args, New) }

// MainLimit runs the performance harness's baseline (NewLimit) with summon's flags, answering
// every sync call with answer.
func MainLimit(answer *metacontroller.SyncResponse, args []string) int {
	return run(args, func(cfg Config, log *slog.Logger) (*Server, error) { return NewLimit(cfg, log, answer) })
}

func run(args []string, build func(Config, *slog.Logger) (*Server, error)) int {
	level := new(slog.LevelVar)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := ParseConfig(args, envOf, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		return 2
	}
	l, _ := parseLogLevel(cfg.LogLevel)
	level.Set(l)
	s, err := build(cfg, log)
	if err != nil {
		log.Error("can't start", "error", err.Error())
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Run(ctx); err != nil {
		log.Error("stopped with an error", "error", err.Error())
		return 1
	}
	return 0
}

// New builds the server: it reads the credential key and says, once, what is off.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	deriver, err := loadCredentials(cfg.CredentialKeyFile)
	if err != nil {
		return nil, err
	}
	if !deriver.Ready() {
		log.Warn("no --credential-key-file: generated credentials (Django SECRET_KEY, shared-database passwords) are off; " +
			"a SummonPlatform with spec.database.shared reports an Error until the hook has a key")
	}
	if cfg.DefaultImage == "" {
		log.Warn("no --default-image: every SummonPlatform must set spec.image")
	}
	systems, closeSystems, err := buildSystems(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	log.Info("systems outside the cluster", "aws", systems.View.AWS, "rabbitmq", systems.View.RabbitMQ, "postgres", systems.View.Postgres)
	defaults := v1beta1.HookDefaults{Image: cfg.DefaultImage}
	data := cfg.DataServices()
	log.Info("data services inside the cluster", "redisImage", data.RedisImage, "backupImage", data.BackupImage, "cnpg", data.CNPG != nil)
	var rollout *rolloutFile
	if cfg.RolloutFile != "" {
		if rollout, err = newRolloutFile(cfg.RolloutFile, log); err != nil {
			closeSystems()
			return nil, err
		}
	} else {
		log.Info("no --rollout-file: no builder wave can open; app workloads that only this build's builders would change keep their templates",
			"builderRevision", platform.BuilderRevision)
	}
	env := func() platform.Env {
		return platform.Env{Now: time.Now(), Defaults: defaults, Credentials: deriver, Outside: systems.View, Data: data, Rollout: rollout.current()}
	}
	var ensurer synchook.Ensurer
	fin := finalize.Teardown{Env: env}
	if systems.View.Any() {
		ensurer, fin.Outside = systems, systems
	}
	s := newServer(cfg, log, env, ensurer, fin)
	s.rollout = rollout
	s.profile = hookProfile(cfg, deriver, systems.View)
	fp, err := fingerprint(cfg, deriver)
	if err != nil {
		closeSystems()
		return nil, err
	}
	s.etags.Fingerprint = fp
	s.closers = append(s.closers, closeSystems)
	if err := s.guard(); err != nil {
		closeSystems()
		return nil, err
	}
	return s, nil
}

// guard reads who may call the hooks, and says loudly when no one is asked.
func (s *Server) guard() error {
	cfg := s.cfg
	if cfg.AuthTokenFile != "" {
		t, err := newTokenFile(cfg.AuthTokenFile, s.log)
		if err != nil {
			return err
		}
		s.token = t
	}
	if cfg.TLSCertFile != "" {
		f, err := newTLSFiles(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile, s.log)
		if err != nil {
			return err
		}
		s.tls = f
	}
	switch {
	case cfg.InsecureNoAuth:
		s.log.Error("--insecure-no-auth: the hooks need no authentication; any pod that reaches " + cfg.Listen +
			" can read every tenant's config Secret and tear its data down. Never run an install like this")
	case !cfg.Authenticated():
		s.log.Warn("hook authentication is off (no --auth-token-file or --tls-client-ca-file): serving on loopback only, for a local run")
	}
	return nil
}

// NewLimit builds the baseline of the performance harness (hack/bench.sh): this server with the
// logic of its sync hook taken out. Each sync call is read, checked, decoded, logged and counted
// as the real hook does it, and answered with answer, encoded afresh; it names no answer with an
// ETag and calls nothing outside. What the real server costs beyond it is the core's cost. Never
// for a cluster: its answer ignores the request.
func NewLimit(cfg Config, log *slog.Logger, answer *metacontroller.SyncResponse) (*Server, error) {
	env := func() platform.Env { return platform.Env{} }
	fixed := func(*metacontroller.SyncRequest, platform.Env) *metacontroller.SyncResponse { return answer }
	s := buildServer(cfg, log, synchook.Handler{Env: env, Core: fixed}, finalize.Teardown{Env: env})
	if err := s.guard(); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(cfg Config, log *slog.Logger, env func() platform.Env, ensurer synchook.Ensurer, finalizer finalize.Finalizer) *Server {
	etags := &synchook.ETags{}
	s := buildServer(cfg, log, synchook.Handler{Env: env, Outside: ensurer, ETag: etags}, finalizer)
	s.etags = etags
	return s
}

// buildServer routes the hooks: sync answers as the handler says, with the server's metrics.
func buildServer(cfg Config, log *slog.Logger, sync synchook.Handler, finalizer finalize.Finalizer) *Server {
	if cfg.MaxConcurrentHooks <= 0 {
		cfg.MaxConcurrentHooks = DefaultMaxConcurrentHooks
	}
	if cfg.OverloadRetryAfter < time.Second {
		cfg.OverloadRetryAfter = time.Second
	}
	s := &Server{cfg: cfg, log: log, metrics: newMetrics(), slots: make(chan struct{}, cfg.MaxConcurrentHooks)}
	e := newEcho(log)
	sync.Phases = s.metrics.syncs
	e.POST("/sync", sync.Handle, s.hookCall(hookSync))
	e.POST("/finalize", finalize.Handler{Finalizer: finalizer}.Handle, s.hookCall(hookFinalize))
	e.POST("/customize", customize.Handle, s.hookCall(hookCustomize))
	s.hooks = e
	if cfg.OpsListen == "" {
		s.opsRoutes(e)
	} else {
		s.ops = newEcho(log)
		s.opsRoutes(s.ops)
	}
	return s
}

func newEcho(log *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.StdLogger = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	// Metacontroller gives up on a hook after 10s; a connection that takes much longer to send its
	// request or take its answer is not Metacontroller's.
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.ReadTimeout = 30 * time.Second
	e.Server.WriteTimeout = 30 * time.Second
	e.Server.IdleTimeout = 2 * time.Minute
	return e
}

// opsRoutes are the routes that hold nothing secret and are no hook: the kubelet's probes and
// Prometheus reach them without the hooks' credentials.
func (s *Server) opsRoutes(e *echo.Echo) {
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", func(c echo.Context) error {
		if !s.ready.Load() {
			return c.String(http.StatusServiceUnavailable, "not ready: starting or shutting down\n")
		}
		return c.String(http.StatusOK, "ready\n")
	})
	e.GET("/metrics", echo.WrapHandler(s.metrics.handler()))
	// The hook's non-secret configuration, for summonctl render and diff.
	e.GET("/config", func(c echo.Context) error {
		p := s.profile
		p.Rollout = s.rollout.current()
		return c.JSON(http.StatusOK, p)
	})
}

// Handler is the HTTP handler of the hooks (and of the ops routes when they share a listener).
func (s *Server) Handler() http.Handler { return s.hooks }

// OpsHandler is the HTTP handler of the ops routes: Handler when they share its listener.
func (s *Server) OpsHandler() http.Handler {
	if s.ops == nil {
		return s.hooks
	}
	return s.ops
}

// Run listens on the configured addresses and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	var opsLn net.Listener
	if s.cfg.OpsListen != "" {
		if opsLn, err = net.Listen("tcp", s.cfg.OpsListen); err != nil {
			ln.Close()
			return fmt.Errorf("listening on %s: %w", s.cfg.OpsListen, err)
		}
	}
	return s.ServeAll(ctx, ln, opsLn)
}

// Serve serves everything on ln: the server must have been configured without --ops-listen.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error { return s.ServeAll(ctx, ln, nil) }

// ServeAll serves the hooks on hooksLn (over TLS when configured) and the ops routes on opsLn
// (given exactly when --ops-listen is set) until ctx is done, then shuts down gracefully: /readyz
// answers 503 at once, no new connection is accepted, and in-flight hook calls get up to the
// shutdown timeout to finish. A hook call cut short changes nothing: Metacontroller sees an error
// and calls again.
func (s *Server) ServeAll(ctx context.Context, hooksLn, opsLn net.Listener) error {
	if (opsLn != nil) != (s.ops != nil) {
		return errors.New("an ops listener is given exactly when --ops-listen is set")
	}
	scheme := "http"
	if s.tls != nil {
		hooksLn = tls.NewListener(hooksLn, s.tls.config())
		scheme = "https"
	}
	servers := []*echo.Echo{s.hooks}
	s.hooks.Listener = hooksLn
	if s.ops != nil {
		s.ops.Listener = opsLn
		servers = append(servers, s.ops)
	}
	served := make(chan error, len(servers))
	for _, e := range servers {
		go func() { served <- e.Start("") }()
	}
	s.ready.Store(true)
	attrs := []any{"address", hooksLn.Addr().String(), "scheme", scheme, "authenticated", s.cfg.Authenticated(),
		"maxBodyBytes", s.cfg.MaxBodyBytes, "maxConcurrentHooks", s.cfg.MaxConcurrentHooks}
	if opsLn != nil {
		attrs = append(attrs, "opsAddress", opsLn.Addr().String())
	}
	s.log.Info("serving", attrs...)

	var failed error
	pending := len(servers)
	select {
	case err := <-served:
		pending--
		failed = fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	s.log.Info("shutting down: finishing in-flight hook calls", "timeout", s.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, e := range servers {
		if err := e.Shutdown(shutdownCtx); err != nil && failed == nil {
			failed = fmt.Errorf("shutting down: %w", err)
		}
	}
	for range pending {
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) && failed == nil {
			failed = fmt.Errorf("serving: %w", err)
		}
	}
	for _, c := range s.closers {
		c()
	}
	if failed != nil {
		return failed
	}
	s.log.Info("stopped")
	return nil
}

// hookCall wraps every hook: it bounds the body, turns a panic into a 500, answers errors, then
// counts the call and writes its one log line, naming the parent when the handler could read it.
func (s *Server) hookCall(hook string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			req := c.Request()
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes)
			hookhttp.WithLogger(c, s.log)

			var panicAttrs []slog.Attr
			release, err := s.admit(c)
			if err == nil {
				panicAttrs, err = callRecovering(next, c)
				release()
			}
			if err != nil {
				c.Error(err)
			}
			code := c.Response().Status
			elapsed := time.Since(start)
			s.metrics.observe(hook, code, elapsed)

			attrs := []slog.Attr{
				slog.String("hook", hook),
				slog.Int("code", code),
				slog.Float64("seconds", elapsed.Seconds()),
			}
			attrs = append(attrs, hookhttp.Annotations(c)...)
			attrs = append(attrs, panicAttrs...)
			level := slog.LevelInfo
			if err != nil {
				attrs = append(attrs, slog.String("error", errorText(err)))
				level = slog.LevelWarn
				if code >= http.StatusInternalServerError {
					level = slog.LevelError
				}
			}
			s.log.LogAttrs(req.Context(), level, "hook call", attrs...)
			return nil
		}
	}
}

// admit decides whether a hook call is served: the caller must carry the token when one is
// configured (nothing of the request is read before that), must not be a web page
// (hookhttp.RefuseBrowsers), and a slot must be free. A call beyond
// the limit is answered 429 with Retry-After at once: Metacontroller requeues it cleanly, where a
// call left to queue would run into its timeout and count as a failure. release frees the slot.
func (s *Server) admit(c echo.Context) (release func(), err error) {
	if s.token != nil && !s.token.allows(c.Request()) {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, bearerScheme+` realm="summon"`)
		hookhttp.Annotate(c, slog.String("remote", c.Request().RemoteAddr))
		return nil, echo.NewHTTPError(http.StatusUnauthorized, errUnauthenticated.Error())
	}
	if err := hookhttp.RefuseBrowsers(c.Request()); err != nil {
		hookhttp.Annotate(c, slog.String("remote", c.Request().RemoteAddr))
		return nil, err
	}
	select {
	case s.slots <- struct{}{}:
		s.metrics.inFlight.Inc()
		return func() {
			s.metrics.inFlight.Dec()
			<-s.slots
		}, nil
	default:
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(s.cfg.OverloadRetryAfter/time.Second)))
		return nil, echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf(
			"the hook is serving %d calls already (--max-concurrent-hooks); call again after the Retry-After", cap(s.slots)))
	}
}

// callRecovering runs a handler and turns a panic into a 500. Metacontroller treats a 500 like
// any failed call: it changes nothing and retries with backoff. The panic and its stack go to the
// log, not to the answer.
func callRecovering(next echo.HandlerFunc, c echo.Context) (panicAttrs []slog.Attr, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		panicAttrs = []slog.Attr{slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack()))}
		err = echo.NewHTTPError(http.StatusInternalServerError,
			"the hook failed unexpectedly (a panic); nothing was changed and Metacontroller will retry. The hook's log has the details")
	}()
	return nil, next(c)
}

// errorText is an error as a log line shows it: the message answered, and the cause behind it.
func errorText(err error) string {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return err.Error()
	}
	msg := fmt.Sprint(he.Message)
	if he.Internal != nil && !strings.Contains(msg, he.Internal.Error()) {
		msg += ": " + he.Internal.Error()
	}
	return msg
}
