package server

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/forklift-dev/summon/pkg/credentials"
)

// fingerprint stands for everything besides the request that a sync answer depends on: this
// build of the hook (a hash of its executable, so that any new build misses Metacontroller's ETag
// cache, whatever its version string says), its whole configuration, and its credential key (as a
// value derived from it: the key itself goes nowhere). Two replicas with the same build and
// configuration have the same fingerprint, so either one's ETag serves.
func fingerprint(cfg Config, key credentials.Source) ([32]byte, error) {
	h := sha256.New()
	exe, err := os.Executable()
	if err != nil {
		return [32]byte{}, fmt.Errorf("finding the hook's own executable, for its ETags: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return [32]byte{}, fmt.Errorf("reading the hook's own executable, for its ETags: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, fmt.Errorf("reading the hook's own executable, for its ETags: %w", err)
	}
	// Every setting counts, the ones that can't change an answer too: a needless miss costs one
	// full sync, a missed setting a stale answer.
	c, err := json.Marshal(cfg)
	if err != nil {
		return [32]byte{}, err
	}
	h.Write(c)
	if key != nil && key.Ready() {
		h.Write([]byte(key.Derive("summon-hook", "etag-fingerprint")))
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}
