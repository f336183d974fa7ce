package platform

import "github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"

// HookProfile is the hook's configuration as far as it shapes an answer, and nothing secret: the
// defaults it fills in, which systems outside the cluster it has on and how the apps reach them,
// which data services it may run inside the cluster (and so which child groups it expects), and
// whether it holds a credential master key (never the key). The hook serves it (GET /config on
// its ops listener), so that a client of the cluster (summonctl render and diff, the dashboard)
// builds the same Env the hook builds and gets the same answer from Sync.
type HookProfile struct {
	// Version is the hook's build.
	Version string `json:"version,omitempty"`
	// Defaults are what the hook fills in that the API can't default.
	Defaults v1beta1.HookDefaults `json:"defaults"`
	// CredentialKey says whether the hook has a credential master key.
	CredentialKey bool `json:"credentialKey"`
	// Outside is which systems are on and how the apps reach them. Its Ensured is never set here.
	Outside Outside `json:"outside"`
	// Data is the Redis image and the CloudNativePG install the hook knows of.
	Data DataServices `json:"data"`
	// BuilderRevision is the hook's builder revision, and Rollout the builder wave in force
	// (docs/upgrading.md).
	BuilderRevision string `json:"builderRevision,omitempty"`
	Rollout         Wave   `json:"rollout,omitempty"`
}
