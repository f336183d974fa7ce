package dashboard

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"time"
)

// DefaultListen is where the dashboard listens unless told otherwise: loopback, because on a
// laptop it serves the user's own view of the cluster with their own credentials.
const DefaultListen = "127.0.0.1:8090"

// Options are the dashboard's settings. The zero value is usable: every field has a default.
type Options struct {
	// Listen is the host:port to serve on. In a cluster the Deployment uses 0.0.0.0:8090.
	Listen string
	// Open opens the fleet page in the user's browser once the fleet is loaded.
	Open bool
	// OpenURL opens an address in a browser; nil is the system's opener (xdg-open, or open on
	// macOS). Tests replace it.
	OpenURL func(url string) error
	// AllowedHosts are the host names, beside localhost and IP addresses, that the dashboard
	// answers for: the Service's DNS name, an Ingress host. Any other Host is refused (DNS
	// rebinding).
	AllowedHosts []string
	// MaxViewers caps the pages open with live updates at once; beyond it /live answers 503.
	// 0 is DefaultMaxViewers.
	MaxViewers int
	// Namespace limits the view to one namespace; "" is every namespace the credentials can
	// list.
	Namespace string
	// Log receives the JSON log; nil logs to stderr.
	Log *slog.Logger
	// ShutdownTimeout bounds how long requests in flight may take after the context ends.
	ShutdownTimeout time.Duration
}

// DefaultMaxViewers is the cap on live viewers unless --max-viewers says otherwise: a team's
// screens and laptops, far below what a pod's file descriptors and memory hold.
const DefaultMaxViewers = 200

// withDefaults fills what was left out.
func (o Options) withDefaults() Options {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if o.OpenURL == nil {
		o.OpenURL = systemOpener
	}
	if o.MaxViewers <= 0 {
		o.MaxViewers = DefaultMaxViewers
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	return o
}

// Validate says what is wrong with the options, in words a user can act on.
func (o Options) Validate() error {
	o = o.withDefaults()
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return errors.New("--listen must be host:port, e.g. 127.0.0.1:8090 (or 0.0.0.0:8090 in a pod): " + err.Error())
	}
	return nil
}
