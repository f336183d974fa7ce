// Package sync serves Metacontroller's sync hook for SummonPlatforms: it decodes the request,
// hands it to the pure core (platform.Sync) and encodes the answer. It keeps no state between
// calls and never talks to the Kubernetes API.
package sync

import (
	"log/slog"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/forklift-dev/summon/hooks/hookhttp"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// Handler answers POST /sync.
type Handler struct {
	// Env gives the core its clock, defaults and credential deriver, fresh for each call.
	Env func() platform.Env
	// Phases counts syncs by the phase they leave the parent in (label "phase").
	Phases *prometheus.CounterVec
}

// Handle answers one sync call. A request that can't be decoded is refused (400/413) before the
// core runs; anything the core can read gets a 200, whose status tells the user what is wrong.
func (h Handler) Handle(c echo.Context) error {
	var req metacontroller.SyncRequest
	if err := hookhttp.Decode(c, &req); err != nil {
		return err
	}
	hookhttp.AnnotateParent(c, req.Parent)
	resp := platform.Sync(&req, h.Env())
	phase := PhaseOf(resp)
	h.Phases.WithLabelValues(phase).Inc()
	hookhttp.Annotate(c, slog.String("phase", phase), slog.Int("children", len(resp.Children)))
	return hookhttp.Respond(c, resp)
}

// PhaseOf is the phase a sync response writes, or "Unknown" when its status is not Summon's.
func PhaseOf(resp *metacontroller.SyncResponse) string {
	if st, ok := resp.Status.(v1beta1.Status); ok && st.Phase != "" {
		return string(st.Phase)
	}
	return "Unknown"
}
