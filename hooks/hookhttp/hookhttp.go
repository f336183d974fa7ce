// Package hookhttp is the HTTP side that Summon's hook handlers share: it reads a Metacontroller
// request body, writes the answer, and carries what a handler learnt about the call (which parent,
// which phase) to the one place that logs and counts hook calls. It decides nothing about a
// SummonPlatform and calls nothing outside the process.
package hookhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// Decode reads the request body into v with metacontroller.Decode, the one decoding every hook
// body goes through: integers stay integers (a replica count or a generation never becomes
// 1.2e+19-style float64), as the core and Kubernetes' unstructured objects expect.
//
// A body that is too large answers 413, one that is not a single JSON value of the right shape
// answers 400. Either way the handler stops before the core runs, so the call changes nothing
// and Metacontroller retries it.
func Decode(c echo.Context, v any) error {
	body, err := ReadBody(c)
	if err != nil {
		return err
	}
	return DecodeBody(body, v)
}

// ReadBody reads the request body whole, refusing (413, 400) one that is too large, unreadable or
// empty, as Decode does.
func ReadBody(c echo.Context) ([]byte, error) {
	body, err := readAll(c.Request().Body, c.Request().ContentLength)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"the request body is larger than the hook's limit of %d bytes: raise --max-body-bytes if a platform really has that many children",
			tooLarge.Limit)).SetInternal(err)
	case err != nil:
		return nil, echo.NewHTTPError(http.StatusBadRequest, "reading the request body: "+err.Error()).SetInternal(err)
	case len(bytes.TrimSpace(body)) == 0:
		return nil, echo.NewHTTPError(http.StatusBadRequest, "the request body is empty: expected a Metacontroller hook request (JSON)")
	}
	return body, nil
}

// maxPrealloc bounds what a request's Content-Length may make the hook allocate before a byte
// arrives; a longer body grows as it comes (up to the server's body limit).
const maxPrealloc = 1 << 20

// bodies are request buffers for reuse (see Release): a 57 KB body allocated afresh per call was
// most of what a 304 allocated, and collecting it a fifth of a 304's CPU.
var bodies sync.Pool // of *[]byte

// readAll is io.ReadAll into a buffer of the size the request announces, reused when one of
// that size was released. io.ReadAll grows from 512 bytes by doubling, which allocated about 2.5
// times a 57 KB sync request per call.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 || size > maxPrealloc {
		return io.ReadAll(r)
	}
	// One byte more than announced, so that reading the end of the body needs no growth.
	var buf []byte
	if p, ok := bodies.Get().(*[]byte); ok && int64(cap(*p)) > size {
		buf = (*p)[:0]
	} else {
		buf = make([]byte, 0, size+1)
	}
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // a body longer than announced
		}
	}
}

// Release gives back a body ReadBody read, for a later call to read into, once nothing refers
// to it any more: a decoded request copies what it keeps (strings, json.RawMessage), so a
// handler releases its body when it has answered. It is zeroed first: a request carries its
// instance's Secrets, and the next call may be another tenant's.
func Release(body []byte) {
	if cap(body) == 0 || cap(body) > maxPrealloc+1 {
		return
	}
	body = body[:cap(body)]
	clear(body)
	body = body[:0]
	bodies.Put(&body)
}

// DecodeBody decodes a body ReadBody read, as Decode does: 400 when it is not a request.
func DecodeBody(body []byte, v any) error {
	if err := metacontroller.Decode(body, v); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "the request body is not a Metacontroller hook request: "+err.Error()).SetInternal(err)
	}
	return nil
}

// Respond answers 200 with v as JSON. v is encoded before anything is written, so an encoding
// failure is a clean 500 rather than a 200 with half a body.
func Respond(c echo.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "encoding the response: "+err.Error()).SetInternal(err)
	}
	return c.JSONBlob(http.StatusOK, b)
}

// Parent names the parent of a hook call in logs.
type Parent struct {
	Namespace  string
	Name       string
	Generation int64
}

// ParentOf reads the parent's identity from its raw JSON. A parent that can't be read gives an
// empty identity: naming the parent in a log line must never fail a hook call.
func ParentOf(raw json.RawMessage) Parent {
	var shell struct {
		Metadata struct {
			Namespace  string `json:"namespace"`
			Name       string `json:"name"`
			Generation int64  `json:"generation"`
		} `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	_ = dec.Decode(&shell)
	return Parent{Namespace: shell.Metadata.Namespace, Name: shell.Metadata.Name, Generation: shell.Metadata.Generation}
}

// LogValue groups the parent's identity in a log line.
func (p Parent) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("namespace", p.Namespace),
		slog.String("name", p.Name),
		slog.Int64("generation", p.Generation),
	)
}

const (
	annotationsKey = "summon.hook.annotations"
	loggerKey      = "summon.hook.logger"
)

// WithLogger gives the handlers of this call the server's logger, for Debug.
func WithLogger(c echo.Context, log *slog.Logger) { c.Set(loggerKey, log) }

// Debug logs, at debug level, a step of this hook call with what the line of the call carries so
// far (the parent). It is for following one call through; what it logs must never hold a secret,
// like everything else the hook logs.
func Debug(c echo.Context, msg string, attrs ...slog.Attr) {
	log, _ := c.Get(loggerKey).(*slog.Logger)
	if log == nil || !log.Enabled(c.Request().Context(), slog.LevelDebug) {
		return
	}
	log.LogAttrs(c.Request().Context(), slog.LevelDebug, msg, append(Annotations(c), attrs...)...)
}

// Annotate adds attributes to the log line of this hook call.
func Annotate(c echo.Context, attrs ...slog.Attr) {
	prev, _ := c.Get(annotationsKey).([]slog.Attr)
	c.Set(annotationsKey, append(prev, attrs...))
}

// AnnotateParent names the call's parent in its log line.
func AnnotateParent(c echo.Context, raw json.RawMessage) {
	Annotate(c, slog.Any("parent", ParentOf(raw)))
}

// Annotations are the attributes the handler added with Annotate.
func Annotations(c echo.Context) []slog.Attr {
	attrs, _ := c.Get(annotationsKey).([]slog.Attr)
	return attrs
}

// RefuseBrowsers answers a call that a web browser could have sent on a page's behalf: one with
// an Origin header (403), or with a body that is not declared application/json (415).
// Metacontroller sends application/json and no Origin. Without this a page that a developer visits
// could POST to a hook on the laptop's loopback, where it runs without a token: a text/plain POST
// is a "simple" cross-site request that the browser sends without asking first, and a JSON
// Content-Type is not, so a browser must ask (CORS preflight), and the hook never says yes.
func RefuseBrowsers(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" {
		return echo.NewHTTPError(http.StatusForbidden, "the hooks answer Metacontroller, not web pages: a request with an Origin header is refused")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, "the hooks read a Metacontroller request: send it with Content-Type: application/json")
	}
	return nil
}
