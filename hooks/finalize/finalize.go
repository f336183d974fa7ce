// Package finalize serves Metacontroller's finalize hook, called instead of sync while a
// SummonPlatform is being deleted (or no longer matches the controller's selector) until it
// answers finalized: true. What must happen before the parent may go is a Finalizer's decision;
// the handler only decodes, asks it and encodes.
package finalize

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/forklift-dev/summon/hooks/hookhttp"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// Finalizer decides whether a parent being deleted may go. It must be idempotent: Metacontroller
// calls finalize until it answers finalized: true, and may call it again after that.
type Finalizer interface {
	Finalize(ctx context.Context, req *metacontroller.SyncRequest) (*metacontroller.SyncResponse, error)
}

// Handler answers POST /finalize.
type Handler struct {
	Finalizer Finalizer
}

// Handle answers one finalize call. A Finalizer error is a 500: nothing changes and Metacontroller
// calls again with backoff.
func (h Handler) Handle(c echo.Context) error {
	var req metacontroller.SyncRequest
	if err := hookhttp.Decode(c, &req); err != nil {
		return err
	}
	hookhttp.AnnotateParent(c, req.Parent)
	hookhttp.Debug(c, "finalize request", slog.Int("observedGroups", len(req.Children)))
	resp, err := h.Finalizer.Finalize(c.Request().Context(), &req)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "finalizing: "+err.Error()).SetInternal(err)
	}
	hookhttp.Annotate(c, slog.Bool("finalized", resp.Finalized), slog.Int("children", len(resp.Children)))
	return hookhttp.Respond(c, resp)
}

// TeardownRunner removes an instance's resources outside the cluster as its deletion policy says
// (internal/outside.Systems).
type TeardownRunner interface {
	Teardown(ctx context.Context, plan platform.FinalizePlan) platform.Teardown
}

// Teardown finalizes through the pure core: plan from the request, tear down outside the cluster,
// then let platform.Finalize answer (finalized only once nothing is left; every child kept until
// then, since Metacontroller deletes what a finalize answer leaves out).
type Teardown struct {
	Env func() platform.Env
	// Outside is nil when no system is on: then there is nothing to wait for.
	Outside TeardownRunner
}

// Finalize answers one finalize call.
func (t Teardown) Finalize(ctx context.Context, req *metacontroller.SyncRequest) (*metacontroller.SyncResponse, error) {
	env := t.Env()
	var done platform.Teardown
	if t.Outside != nil {
		done = t.Outside.Teardown(ctx, platform.PlanFinalize(req, env))
	}
	return platform.Finalize(req, env, done), nil
}
