package sync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/forklift-dev/summon/pkg/platform"
)

// ETags name sync answers for Metacontroller's ETag cache (hooks.sync.webhook.etag): it keeps the
// last answer per parent with its ETag, sends the ETag back in If-None-Match, and takes a 304 as
// "the same answer again". The core is a pure function of the request, the hook's configuration
// and the clock (which only stamps conditions whose status changes, so an earlier answer to the
// same request is as right as a fresh one). So an answer is named by a hash of the request body
// and of everything else it depends on: the hook's build and configuration, in Fingerprint. A
// hook with another build or configuration names every answer differently, and Metacontroller's
// cache misses.
type ETags struct {
	// Fingerprint stands for the hook's build and configuration (credential key included, as a
	// digest); see internal/server.
	Fingerprint [32]byte
}

// Of is the ETag of the answer to body under the builder wave in force, quoted as HTTP wants
// it; "" when ETags are off. The wave is part of the hook's configuration that changes while it
// runs (its --rollout-file): an answer named without it would be served again, as a 304, after
// the wave it was computed for has closed or opened.
func (e *ETags) Of(body []byte, wave platform.Wave) string {
	if e == nil {
		return ""
	}
	h := sha256.New()
	h.Write(e.Fingerprint[:])
	w, _ := json.Marshal(wave)
	h.Write(w)
	h.Write([]byte{0})
	h.Write(body)
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}
