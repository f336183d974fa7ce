package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// Run serves the dashboard on o.Listen until ctx is done, with the API server and credentials of
// cfg: the user's kubeconfig on a laptop, rest.InClusterConfig in a pod.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	o = o.withDefaults()
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.Listen, err)
	}
	return Serve(ctx, cfg, o, ln)
}

// Serve is Run on a listener of the caller's (o.Listen is not read). It first checks, with one
// list of each resource, that the credentials can read what the dashboard shows; then it starts
// the informers and serves at once, answering 503 on /readyz (and a "loading" page) until they
// have listed the cluster. When ctx is done it stops accepting connections, ends the live
// updates and lets the other requests finish, for up to o.ShutdownTimeout.
func Serve(ctx context.Context, cfg *rest.Config, o Options, ln net.Listener) error {
	o = o.withDefaults()
	log := o.Log
	// client-go reports watch failures through klog: into the same JSON log.
	klog.SetSlogLogger(log)

	if err := checkAccess(ctx, cfg, o.Namespace); err != nil {
		ln.Close()
		return err
	}
	w, err := newWatches(cfg, o.Namespace)
	if err != nil {
		ln.Close()
		return err
	}
	watchCtx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	synced := w.start(watchCtx)

	s := newServer(w.view, o.Namespace, log)
	s.hosts = o.AllowedHosts
	s.maxViewers = o.MaxViewers
	if h, _, err := net.SplitHostPort(o.Listen); err == nil && h != "" {
		s.hosts = append(s.hosts, h)
	}
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.stop)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	address := pageURL(ln.Addr())
	log.Info("serving", "address", ln.Addr().String(), "url", address, "namespace", o.Namespace)

	go func() {
		if ok := <-synced; !ok {
			return
		}
		log.Info("fleet loaded", "platforms", w.view.count())
		if o.Open {
			if err := o.OpenURL(address); err != nil {
				log.Warn("can't open a browser; open the address yourself", "url", address, "error", err.Error())
			}
		}
	}()

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", o.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	log.Info("stopped")
	return nil
}

// pageURL is the address a browser on this machine opens: a server on every interface is
// reached through loopback.
func pageURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// systemOpener opens an address in the user's browser.
func systemOpener(url string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	cmd := exec.Command(name, url)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", name, err)
	}
	// The opener hands the address to the browser and exits; reap it.
	go func() { _ = cmd.Wait() }()
	return nil
}
