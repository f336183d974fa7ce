package standin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/forklift-dev/summon/pkg/metacontroller"
)

// TestCallTreatsAnythingButA200AsRetryLater: a hook's answer is applied only when it is a 200
// with a strict hooks-v2 body; a 429 asks to be called after Retry-After; anything else is an
// error, retried with backoff. Neither changes anything.
func TestCallTreatsAnythingButA200AsRetryLater(t *testing.T) {
	tests := map[string]struct {
		code       int
		retryAfter string
		body       string
		wantLater  time.Duration
		wantErr    string
	}{
		"a 200 with a v2 answer is decoded": {
			code: 200, body: `{"status":{"phase":"Ready"},"children":[],"resyncAfterSeconds":5}`,
		},
		"a 429 with Retry-After says when to call again": {
			code: 429, retryAfter: "7", wantLater: 7 * time.Second,
		},
		"a 429 without Retry-After is retried after a second": {
			code: 429, wantLater: time.Second,
		},
		"a 500 is an error": {
			code: 500, body: "the hook failed", wantErr: "answered 500: the hook failed",
		},
		"a 200 with a field v2 doesn't know is refused": {
			code: 200, body: `{"status":{},"children":[],"extra":1}`, wantErr: "strictly",
		},
		"a 200 that isn't JSON is refused": {
			code: 200, body: `<html>`, wantErr: "decoding the answer",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &Controller{http: srv.Client()}
			h := &hook{Version: "v2"}
			h.Webhook.URL = srv.URL
			var resp metacontroller.SyncResponse
			err := c.call(t.Context(), h, &metacontroller.SyncRequest{}, &resp)
			var later *retryLater
			switch {
			case tc.wantLater > 0:
				if !errors.As(err, &later) || later.after != tc.wantLater {
					t.Fatalf("got %v, want a retry after %s", err, tc.wantLater)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.As(err, &later) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if resp.ResyncAfterSeconds != 5 || resp.Children == nil {
					t.Errorf("decoded %+v", resp)
				}
			}
		})
	}
}
