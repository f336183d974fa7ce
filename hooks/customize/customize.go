// Package customize serves Metacontroller's customize hook: it tells Metacontroller which objects
// besides the children each sync request must carry (a SummonPlatform's input Secrets). The
// decision is platform.Customize; this package only decodes and encodes.
package customize

import (
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/forklift-dev/summon/hooks/hookhttp"
	"github.com/forklift-dev/summon/pkg/metacontroller"
	"github.com/forklift-dev/summon/pkg/platform"
)

// Handle answers POST /customize. Metacontroller caches the answer per parent generation, so it
// is asked again whenever the spec changes.
func Handle(c echo.Context) error {
	var req metacontroller.CustomizeRequest
	if err := hookhttp.Decode(c, &req); err != nil {
		return err
	}
	hookhttp.AnnotateParent(c, req.Parent)
	resp, err := platform.Customize(req.Parent)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error()).SetInternal(err)
	}
	names := 0
	for _, r := range resp.RelatedResources {
		names += len(r.Names)
	}
	hookhttp.Annotate(c, slog.Int("relatedNames", names))
	return hookhttp.Respond(c, resp)
}
