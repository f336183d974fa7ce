package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	goodToken  = "summon-test-hook-token-0123456789abcdefghij"
	otherToken = "summon-test-hook-token-ZYXWVUTSRQPONMLKJIHG"
)

// secretVolume lays a token out as the kubelet lays out a Secret volume, and updates it the way
// the kubelet does: the new files go into a new timestamped directory, and the ..data symlink is
// swapped to it in one rename.
type secretVolume struct {
	t   *testing.T
	dir string
	n   int
}

func newSecretVolume(t *testing.T, token string) *secretVolume {
	t.Helper()
	v := &secretVolume{t: t, dir: t.TempDir()}
	v.update(token)
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(v.dir, "token")); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v *secretVolume) path() string { return filepath.Join(v.dir, "token") }

func (v *secretVolume) update(content string) {
	v.t.Helper()
	v.n++
	ts := filepath.Join(v.dir, "..2026_12_01_"+strings.Repeat("0", v.n))
	if err := os.Mkdir(ts, 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "token"), []byte(content), 0o400); err != nil {
		v.t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
}

func postWith(s *Server, path string, body []byte, authorization string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestHookCallsNeedTheBearerToken(t *testing.T) {
	vol := newSecretVolume(t, goodToken+"\n")
	tests := map[string]struct {
		authorization string
		wantCode      int
	}{
		"no Authorization header is refused":          {"", http.StatusUnauthorized},
		"an empty bearer token is refused":            {"Bearer ", http.StatusUnauthorized},
		"a wrong token is refused":                    {"Bearer " + otherToken, http.StatusUnauthorized},
		"the token cut short is refused":              {"Bearer " + goodToken[:len(goodToken)-1], http.StatusUnauthorized},
		"the token with a character more is refused":  {"Bearer " + goodToken + "x", http.StatusUnauthorized},
		"the token in another scheme is refused":      {"Basic " + goodToken, http.StatusUnauthorized},
		"the token without a scheme is refused":       {goodToken, http.StatusUnauthorized},
		"the token is accepted":                       {"Bearer " + goodToken, http.StatusOK},
		"the scheme's case doesn't matter (RFC 7235)": {"bearer " + goodToken, http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, l := testServer(t, withConfig(func(c *Config) { c.AuthTokenFile = vol.path() }))
			for _, hook := range []string{"/sync", "/finalize", "/customize"} {
				rec := postWith(s, hook, readFile(t, freshInstall), tc.authorization)
				if rec.Code != tc.wantCode {
					t.Fatalf("%s: code = %d, want %d: %s", hook, rec.Code, tc.wantCode, rec.Body)
				}
				if tc.wantCode != http.StatusUnauthorized {
					continue
				}
				if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="summon"` {
					t.Errorf("%s: WWW-Authenticate = %q", hook, got)
				}
				// Nothing of the tenant is answered: no child, no status, no config file.
				for _, leak := range []string{"children", "status", "car1-qa", "summon-platform.yml"} {
					if strings.Contains(rec.Body.String(), leak) {
						t.Errorf("%s: the refusal answers %q: %s", hook, leak, rec.Body)
					}
				}
			}
			if tc.wantCode == http.StatusUnauthorized {
				if m := metricsText(t, s); !strings.Contains(m, `summon_syncs_total{phase="Initializing"} 0`) {
					t.Error("a refused call reached the core")
				}
				if !strings.Contains(metricsText(t, s), `summon_hook_requests_total{code="401",hook="sync"} 1`) {
					t.Error("the refusal is not counted")
				}
			}
			for _, line := range l.hookCalls(t) {
				if b, _ := jsonLine(line); strings.Contains(b, goodToken) || strings.Contains(b, otherToken) {
					t.Errorf("a log line holds a token: %s", b)
				}
			}
		})
	}
}

func TestTheOpsRoutesNeedNoToken(t *testing.T) {
	vol := newSecretVolume(t, goodToken)
	s, _ := testServer(t, withConfig(func(c *Config) { c.AuthTokenFile = vol.path() }))
	for _, path := range []string{"/healthz", "/metrics"} {
		if rec := get(s, path); rec.Code != http.StatusOK {
			t.Errorf("%s = %d, want 200: the kubelet and Prometheus carry no token", path, rec.Code)
		}
	}
}

func TestARotatedTokenIsFollowedAndTheStaleOneRefused(t *testing.T) {
	vol := newSecretVolume(t, goodToken+"\n")
	s, l := testServer(t, withConfig(func(c *Config) { c.AuthTokenFile = vol.path() }))
	s.token.checkEvery = 0 // every call looks at the file: the rotation is seen at once
	call := func(token string) int {
		return postWith(s, "/customize", []byte(`{"parent":{"metadata":{"name":"a","namespace":"b"},"spec":{"version":"v1"}}}`), "Bearer "+token).Code
	}
	if got := call(goodToken); got != http.StatusOK {
		t.Fatalf("before the rotation the token gets %d", got)
	}

	vol.update(otherToken + "\n")
	if got := call(goodToken); got != http.StatusUnauthorized {
		t.Errorf("after the rotation the stale token gets %d, want 401", got)
	}
	if got := call(otherToken); got != http.StatusOK {
		t.Errorf("after the rotation the new token gets %d, want 200", got)
	}

	// A Secret emptied by mistake must not lock Metacontroller out: the last good token stays.
	vol.update("")
	if got := call(otherToken); got != http.StatusOK {
		t.Errorf("with an emptied token file the last good token gets %d, want 200", got)
	}
	if got := call(""); got != http.StatusUnauthorized {
		t.Errorf("with an emptied token file an empty token gets %d, want 401", got)
	}
	if !strings.Contains(l.text(), "the auth token file changed but can't be used") {
		t.Error("the unusable token file is not reported in the log")
	}
	if strings.Contains(l.text(), goodToken) || strings.Contains(l.text(), otherToken) {
		t.Error("the log holds a token")
	}
}

func TestAnUnusableTokenFileStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]struct {
		path    string
		wantErr string
	}{
		"a missing file":             {filepath.Join(dir, "absent"), "reading the auth token file"},
		"a token too short to trust": {write("short", "0123456789"), "holds 10 characters; a token must have at least 32"},
		"two tokens":                 {write("two", goodToken+"\n"+otherToken+"\n"), "more than one word"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := newTokenFile(tc.path, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "0123456789") || strings.Contains(err.Error(), goodToken) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

func TestWithoutAuthenticationTheServerSaysSo(t *testing.T) {
	_, l := testServer(t)
	if !strings.Contains(l.text(), "hook authentication is off") {
		t.Errorf("no warning that authentication is off:\n%s", l.text())
	}
}

func TestTheTokenFileIsLookedAtAtMostOncePerInterval(t *testing.T) {
	vol := newSecretVolume(t, goodToken)
	s, _ := testServer(t, withConfig(func(c *Config) { c.AuthTokenFile = vol.path() }))
	if s.token.checkEvery != time.Second {
		t.Errorf("the token file is looked at every %s, want once a second", s.token.checkEvery)
	}
	s.token.checkEvery = time.Hour // no look falls due during this test
	call := func(token string) int {
		return postWith(s, "/customize", []byte(`{"parent":{"metadata":{"name":"a","namespace":"b"},"spec":{"version":"v1"}}}`), "Bearer "+token).Code
	}
	vol.update(otherToken)
	if got := call(goodToken); got != http.StatusOK {
		t.Errorf("within the interval the token in force gets %d, want 200: a call looked at the file", got)
	}
	s.token.lastCheck = time.Time{} // the interval is over
	if got := call(goodToken); got != http.StatusUnauthorized {
		t.Errorf("once the interval is over the rotated-out token gets %d, want 401", got)
	}
}
