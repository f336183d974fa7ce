package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/pkg/platform"
)

// rolloutFile is the builder wave the operator opened (docs/upgrading.md), read from a file that
// is looked at once a second and read again when it changes, as the token file is: summonctl
// waves open rewrites the ConfigMap mounted there, and the kubelet swaps the file, so a wave opens
// without a restart.
//
// A missing file is no wave: every app workload that only this build's builders would change is
// held, which is what a fleet needs from a new release before anyone opens its first wave. A
// file that can't be read or holds no valid wave keeps the last good wave in force and says so
// in the log; at the start, it stops the start, since an operator who wrote a wave meant one.
type rolloutFile struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	seen fileStamp
	recheck
	wave platform.Wave
}

func newRolloutFile(path string, log *slog.Logger) (*rolloutFile, error) {
	r := &rolloutFile{path: path, log: log, recheck: recheck{checkEvery: time.Second}}
	w, err := readWave(path)
	if err != nil {
		return nil, err
	}
	r.seen, r.wave, r.lastCheck = stampOf(path), w, time.Now()
	r.announce(w)
	return r, nil
}

// readWave reads a rollout file: YAML (or JSON) of a platform.Wave. A missing or empty file is
// no wave.
func readWave(path string) (platform.Wave, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return platform.Wave{}, nil
	}
	if err != nil {
		return platform.Wave{}, fmt.Errorf("reading the rollout file: %w", err)
	}
	var w platform.Wave
	if err := yaml.UnmarshalStrict(b, &w); err != nil {
		return platform.Wave{}, fmt.Errorf("the rollout file %s is not a wave ({revision, percent, selector, urgent}): %w", path, err)
	}
	if w == (platform.Wave{}) {
		return w, nil
	}
	if err := w.Validate(); err != nil {
		return platform.Wave{}, fmt.Errorf("the rollout file %s: %w", path, err)
	}
	return w, nil
}

// current is the wave in force, read again if the file changed.
func (r *rolloutFile) current() platform.Wave {
	if r == nil {
		return platform.Wave{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.due(time.Now()) {
		return r.wave
	}
	if !r.seen.changed(r.path) {
		return r.wave
	}
	stamp := stampOf(r.path)
	w, err := readWave(r.path)
	r.seen = stamp
	if err != nil {
		r.log.Error("the rollout file changed but holds no valid wave; the previous wave stays in force", "error", err.Error())
		return r.wave
	}
	if w != r.wave {
		r.announce(w)
	}
	r.wave = w
	return w
}

// announce logs the wave now in force, and a wave that names another revision than this build's,
// which opens nothing.
func (r *rolloutFile) announce(w platform.Wave) {
	switch {
	case w == (platform.Wave{}):
		r.log.Info("no builder wave open: app workloads that only this build's builders would change keep their templates",
			"builderRevision", platform.BuilderRevision)
	case w.Revision != platform.BuilderRevision:
		r.log.Warn("the builder wave names another revision than this build's: it opens nothing",
			"waveRevision", w.Revision, "builderRevision", platform.BuilderRevision)
	default:
		r.log.Info("builder wave open", "builderRevision", w.Revision, "percent", w.Percent, "selector", w.Selector, "urgent", w.Urgent)
	}
}
