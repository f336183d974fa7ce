package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A page that a developer visits can make the browser POST to a hook on the laptop's loopback,
// where it runs without a token. A text/plain body is a "simple" request the browser sends without
// a preflight; a page's fetch also carries Origin. Only a call as Metacontroller makes it is served.
func TestTheHooksRefuseWhatABrowserSendsForAPage(t *testing.T) {
	s, _ := testServer(t) // loopback, no token: the local run
	body := readFile(t, freshInstall)
	tests := map[string]struct {
		header map[string]string
		want   int
	}{
		"a JSON call without Origin, as Metacontroller makes it, is served": {
			header: map[string]string{"Content-Type": "application/json"}, want: http.StatusOK,
		},
		"a JSON call with a charset is served": {
			header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, want: http.StatusOK,
		},
		"a cross-site text/plain form post is refused": {
			header: map[string]string{"Content-Type": "text/plain"}, want: http.StatusUnsupportedMediaType,
		},
		"a call without a Content-Type is refused": {
			header: map[string]string{}, want: http.StatusUnsupportedMediaType,
		},
		"a url-encoded form post is refused": {
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, want: http.StatusUnsupportedMediaType,
		},
		"a call from a page (Origin), even JSON, is refused": {
			header: map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, want: http.StatusForbidden,
		},
		"a call from a page with a null Origin is refused": {
			header: map[string]string{"Content-Type": "text/plain", "Origin": "null"}, want: http.StatusForbidden,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/sync", "/customize", "/finalize"} {
				req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, req)
				if rec.Code != tc.want {
					t.Errorf("%s answered %d %s, want %d", path, rec.Code, rec.Body, tc.want)
				}
			}
		})
	}
}
