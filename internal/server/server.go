// Package server wires Summon's hook server: the HTTP routes (the Metacontroller hooks, health,
// readiness and metrics), the request body limit, panic recovery, JSON logs, Prometheus metrics
// and graceful shutdown. The hooks' decisions live in pkg/platform; nothing here talks to the
// Kubernetes API.
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
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
	cfg     Config
	log     *slog.Logger
	echo    *echo.Echo
	metrics *metrics
	ready   atomic.Bool
	// closers release the providers' connections once the last hook call is done.
	closers []func()
}

// Main runs the server as the summon command does and returns the process's exit code.
func Main(args []string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := ParseConfig(args, envOf, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		return 2
	}
	s, err := New(cfg, log)
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
	systems, closeSystems, err := buildSystems(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	log.Info("systems outside the cluster", "aws", systems.View.AWS, "rabbitmq", systems.View.RabbitMQ, "postgres", systems.View.Postgres)
	defaults := v1beta1.HookDefaults{Image: cfg.DefaultImage}
	data := cfg.DataServices()
	log.Info("data services inside the cluster", "redisImage", data.RedisImage, "cnpg", data.CNPG != nil)
	env := func() platform.Env {
		return platform.Env{Now: time.Now(), Defaults: defaults, Credentials: deriver, Outside: systems.View, Data: data}
	}
	var ensurer synchook.Ensurer
	fin := finalize.Teardown{Env: env}
	if systems.View.Any() {
		ensurer, fin.Outside = systems, systems
	}
	s := newServer(cfg, log, env, ensurer, fin)
	s.closers = append(s.closers, closeSystems)
	return s, nil
}

func newServer(cfg Config, log *slog.Logger, env func() platform.Env, ensurer synchook.Ensurer, finalizer finalize.Finalizer) *Server {
	s := &Server{cfg: cfg, log: log, metrics: newMetrics()}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.StdLogger = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	// Metacontroller gives up on a hook after 10s; a connection that takes much longer to send its
	// request or take its answer is not Metacontroller's.
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.ReadTimeout = 30 * time.Second
	e.Server.WriteTimeout = 30 * time.Second
	e.Server.IdleTimeout = 2 * time.Minute

	e.POST("/sync", synchook.Handler{Env: env, Outside: ensurer, Phases: s.metrics.syncs}.Handle, s.hookCall(hookSync))
	e.POST("/finalize", finalize.Handler{Finalizer: finalizer}.Handle, s.hookCall(hookFinalize))
	e.POST("/customize", customize.Handle, s.hookCall(hookCustomize))

	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", func(c echo.Context) error {
		if !s.ready.Load() {
			return c.String(http.StatusServiceUnavailable, "not ready: starting or shutting down\n")
		}
		return c.String(http.StatusOK, "ready\n")
	})
	e.GET("/metrics", echo.WrapHandler(s.metrics.handler()))
	s.echo = e
	return s
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Run listens on the configured address and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down gracefully: /readyz answers 503 at once,
// no new connection is accepted, and in-flight hook calls get up to the shutdown timeout to finish.
// A hook call cut short changes nothing: Metacontroller sees an error and calls again.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.echo.Listener = ln
	served := make(chan error, 1)
	go func() { served <- s.echo.Start("") }()
	s.ready.Store(true)
	s.log.Info("serving", "address", ln.Addr().String(), "maxBodyBytes", s.cfg.MaxBodyBytes)

	select {
	case err := <-served:
		s.ready.Store(false)
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	s.log.Info("shutting down: finishing in-flight hook calls", "timeout", s.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.echo.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	for _, c := range s.closers {
		c()
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

			panicAttrs, err := callRecovering(next, c)
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
