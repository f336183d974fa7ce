// Package finalize serves Metacontroller's finalize hook, called instead of sync while a
// SummonPlatform is being deleted (or no longer matches the controller's selector) until it
// answers finalized: true. What must happen before the parent may go is a Finalizer's decision;
// the handler only decodes, asks it and encodes.
package finalize

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/forklift-dev/summon/hooks/hookhttp"
	"github.com/forklift-dev/summon/pkg/children"
	"github.com/forklift-dev/summon/pkg/metacontroller"
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
	resp, err := h.Finalizer.Finalize(c.Request().Context(), &req)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "finalizing: "+err.Error()).SetInternal(err)
	}
	hookhttp.Annotate(c, slog.Bool("finalized", resp.Finalized), slog.Int("children", len(resp.Children)))
	return hookhttp.Respond(c, resp)
}

// Immediately finalizes at once. Nothing a SummonPlatform owns lives outside the cluster yet, and
// Kubernetes' garbage collector removes the children once the parent is gone.
//
// Until the parent goes, every child stays as observed (Metacontroller deletes what a finalize
// answer leaves out, and an ordered teardown is the Finalizer's call, not a side effect of an empty
// list), and the status is echoed so that the last thing the user sees is not a wiped status.
type Immediately struct{}

// Finalize answers finalized: true.
func (Immediately) Finalize(_ context.Context, req *metacontroller.SyncRequest) (*metacontroller.SyncResponse, error) {
	var parent struct {
		Status json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(req.Parent, &parent); err != nil {
		return nil, fmt.Errorf("reading the parent's status: %w", err)
	}
	kept := []metacontroller.Object{}
	for _, group := range slices.Sorted(maps.Keys(req.Children)) {
		byName := req.Children[group]
		for _, key := range slices.Sorted(maps.Keys(byName)) {
			if obj := byName[key]; obj != nil {
				kept = append(kept, children.AsObserved(obj))
			}
		}
	}
	return &metacontroller.SyncResponse{Status: parent.Status, Children: kept, Finalized: true}, nil
}
