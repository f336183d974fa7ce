package server

import (
	"runtime/debug"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/platform"
)

// hookProfile is what GET /config serves: the configuration that shapes the hook's answers, so
// that summonctl and the dashboard build the Env this hook builds. It holds whether there is a
// credential key, never the key, and the systems' switches and app-facing addresses, never the
// admin URLs (they carry passwords).
func hookProfile(cfg Config, key credentials.Source, systems platform.Outside) platform.HookProfile {
	systems.Ensured = nil
	p := platform.HookProfile{
		Defaults:      v1beta1.HookDefaults{Image: cfg.DefaultImage},
		CredentialKey: key.Ready(),
		Outside:       systems,
		Data:          cfg.DataServices(),
		// The wave is filled in per GET /config: it changes while the hook runs.
		BuilderRevision: platform.BuilderRevision,
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		p.Version = info.Main.Version
	}
	return p
}
