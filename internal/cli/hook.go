package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/forklift-dev/summon/pkg/platform"
)

// hookFlags say where the hook's ops port is: the CLI reads it through the API server's service
// proxy, so it needs no route to the pods, only the user's right to get services/proxy there.
type hookFlags struct {
	namespace, service, port string
	configFile               string
}

func (h *hookFlags) add(f *pflag.FlagSet, withConfig bool) {
	f.StringVar(&h.namespace, "hook-namespace", "summon-system", "namespace of the hook's Service")
	f.StringVar(&h.service, "hook-service", "summon", "the hook's Service")
	f.StringVar(&h.port, "hook-port", "ops", "name of the Service port that serves /readyz and /config")
	if withConfig {
		f.StringVar(&h.configFile, "hook-config", "", "read the hook's configuration from this file (its GET /config JSON) instead of asking the hook")
	}
}

func (h *hookFlags) where() string {
	return fmt.Sprintf("Service %s/%s, port %s", h.namespace, h.service, h.port)
}

// get reads a path of the hook's ops port through the API server's service proxy.
func (h *hookFlags) get(ctx context.Context, kube kubernetes.Interface, path string) ([]byte, error) {
	b, err := kube.CoreV1().Services(h.namespace).ProxyGet("http", h.service, h.port, path, nil).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET %s from the hook through the API server's service proxy (%s): %w; "+
			"check that the hook runs (kubectl -n %s get pods,endpointslices), that its Service has a port named %s, "+
			"and that you may get services/proxy in %s; or pass --hook-namespace, --hook-service and --hook-port",
			path, h.where(), err, h.namespace, h.port, h.namespace)
	}
	return b, nil
}

// profile is the hook's configuration: from --hook-config, or from the hook's GET /config.
func (h *hookFlags) profile(ctx context.Context, kube kubernetes.Interface) (platform.HookProfile, error) {
	if h.configFile != "" {
		return readHookConfig(h.configFile)
	}
	b, err := h.get(ctx, kube, "/config")
	if err != nil {
		return platform.HookProfile{}, fmt.Errorf("%w, or --hook-config FILE", err)
	}
	return decodeHookProfile(b, "the hook's GET /config")
}
