// Package sync serves Metacontroller's sync hook for SummonPlatforms: it decodes the request,
// calls the systems outside the cluster when the pure core's plan says so, hands everything to the
// pure core (platform.Sync) and encodes the answer. It keeps no state between
// calls and never talks to the Kubernetes API.
package sync

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/forklift-dev/summon/hooks/hookhttp"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// Ensurer makes an instance's resources outside the cluster exist (internal/outside.Systems).
type Ensurer interface {
	Ensure(ctx context.Context, plan platform.EnsurePlan) *platform.Ensured
}

// Handler answers POST /sync.
type Handler struct {
	// Env gives the core its clock, defaults and credential deriver, fresh for each call.
	Env func() platform.Env
	// Outside is called only when platform.PlanEnsure says so; nil when no system is on.
	Outside Ensurer
	// Phases counts syncs by the phase they leave the parent in (label "phase").
	Phases *prometheus.CounterVec
	// ETag names the answer to a request body (see ETags); nil turns ETags off.
	ETag *ETags
	// Core computes the answer: platform.Sync when nil. Only the performance harness's baseline
	// (server.NewLimit) sets another.
	Core func(*metacontroller.SyncRequest, platform.Env) *metacontroller.SyncResponse
}

// Handle answers one sync call. A request that can't be decoded is refused (400/413) before the
// core runs; anything the core can read gets a 200, whose status tells the user what is wrong.
func (h Handler) Handle(c echo.Context) error {
	body, err := hookhttp.ReadBody(c)
	if err != nil {
		return err
	}
	// The Env first: its wave names the answer, and the answer must be computed under the wave
	// that named it.
	env := h.Env()
	// The decoded request copies what it keeps of the body, and the answer is written before this
	// returns.
	defer hookhttp.Release(body)
	tag := h.ETag.Of(body, env.Rollout)
	if tag != "" && c.Request().Header.Get("If-None-Match") == tag {
		// The very request this hook answered before: the same answer, without decoding it.
		c.Response().Header().Set("ETag", tag)
		hookhttp.Annotate(c, slog.Bool("notModified", true))
		return c.NoContent(http.StatusNotModified)
	}
	var req metacontroller.SyncRequest
	if err := hookhttp.DecodeBody(body, &req); err != nil {
		return err
	}
	hookhttp.AnnotateParent(c, req.Parent)
	hookhttp.Debug(c, "sync request", slog.Any("observed", groupSizes(req.Children)), slog.Any("related", groupSizes(req.Related)))
	calledOut := false
	if h.Outside != nil {
		plan := platform.PlanEnsure(&req, env)
		hookhttp.Debug(c, "ensure plan", slog.Bool("needed", plan.Needed), slog.String("reason", plan.Reason))
		if plan.Needed {
			env.Outside.Ensured = h.Outside.Ensure(c.Request().Context(), plan)
			calledOut = true
			hookhttp.Annotate(c, slog.String("ensured", plan.Reason), slog.Int("failures", len(env.Outside.Ensured.Failures)))
		}
	}
	core := h.Core
	if core == nil {
		core = platform.Sync
	}
	resp := core(&req, env)
	hookhttp.Debug(c, "sync answer", slog.Any("children", childNames(resp.Children)), slog.Float64("resyncAfterSeconds", resp.ResyncAfterSeconds))
	phase := PhaseOf(resp)
	h.Phases.WithLabelValues(phase).Inc()
	hookhttp.Annotate(c, slog.String("phase", phase), slog.Int("children", len(resp.Children)))
	// An answer is the same for the same request, but for one that came of calls outside the
	// cluster (their outcome is not in the request) or asks to be called back (an external failure
	// backing off): those are answered afresh every time.
	if tag != "" && !calledOut && resp.ResyncAfterSeconds == 0 {
		c.Response().Header().Set("ETag", tag)
	}
	return hookhttp.Respond(c, resp)
}

// groupSizes counts the objects of each group, for the debug log: names and counts, never
// content. It is a slog.LogValuer, so that a sync with debug logging off (every steady one)
// builds nothing for it.
type groupSizes metacontroller.RelativeObjects

func (g groupSizes) LogValue() slog.Value {
	out := make(map[string]int, len(g))
	for group, byName := range g {
		out[group] = len(byName)
	}
	return slog.AnyValue(out)
}

// childNames names the children of an answer as "Kind/name", for the debug log, when logged.
type childNames []metacontroller.Object

func (objs childNames) LogValue() slog.Value {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		kind, _ := o["kind"].(string)
		meta, _ := o["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		out = append(out, kind+"/"+name)
	}
	return slog.AnyValue(out)
}

// PhaseOf is the phase a sync response writes, or "Unknown" when its status is not Summon's.
func PhaseOf(resp *metacontroller.SyncResponse) string {
	if st, ok := resp.Status.(v1beta1.Status); ok && st.Phase != "" {
		return string(st.Phase)
	}
	return "Unknown"
}
