package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/internal/testing/sim"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/credentials"
	"github.com/forklift-dev/summon/pkg/external"
)

// victim is a tenant whose name and UID anyone who may list SummonPlatforms can read.
func victim() *v1beta1.SummonPlatform {
	return &v1beta1.SummonPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: "tenant-attack", UID: "9b2f6c1e-5a43-4d0e-8f7a-2c1d3e4f5a6b"},
		Spec: v1beta1.Spec{
			Version:        "108912-6e2f8b7-release-2019-8",
			Database:       v1beta1.Database{Shared: &v1beta1.SharedDatabase{Host: "postgres.shared.svc"}},
			DeletionPolicy: v1beta1.DeletionPolicyRetain,
		},
	}
}

// forgedFinalize is what an attacker sends to tear the victim's data down while it runs: its
// name and UID, and a deletion policy of the attacker's choosing.
func forgedFinalize(t *testing.T) []byte {
	p := victim()
	p.Spec.DeletionPolicy = v1beta1.DeletionPolicyDelete
	now := metav1.NewTime(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	p.DeletionTimestamp = &now
	req := sim.NewCluster(p).Request()
	req.Finalizing = true
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func syncRequest(t *testing.T, p *v1beta1.SummonPlatform) []byte {
	t.Helper()
	b, err := json.Marshal(sim.NewCluster(p).Request())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func call(t *testing.T, url string, body []byte, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// configFile is the app config file in a sync answer, or "" when the answer has none.
func configFile(t *testing.T, answer []byte) string {
	t.Helper()
	var resp struct {
		Children []struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
		}
	}
	if err := json.Unmarshal(answer, &resp); err != nil {
		return ""
	}
	for _, c := range resp.Children {
		if c.Kind == "Secret" && strings.HasSuffix(c.Metadata.Name, "-config") {
			b, _ := base64.StdEncoding.DecodeString(c.Data["summon-platform.yml"])
			return string(b)
		}
	}
	return ""
}

func TestAForgedCallForAnotherTenantIsRefusedUnlessAuthenticationIsOff(t *testing.T) {
	live := newLiveSystems(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(goodToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secureCfg := live.config(t)
	secureCfg.AuthTokenFile = tokenFile
	secure, _ := liveServer(t, secureCfg, slog.LevelInfo)
	insecureCfg := live.config(t)
	insecureCfg.InsecureNoAuth = true
	insecure, _ := liveServer(t, insecureCfg, slog.LevelInfo)

	p := victim()
	names := external.NamesFor("summon-test-", p.Namespace, p.Name)
	d, _ := credentials.NewDeriver([]byte(liveKey))
	dbPassword := d.Derive(string(p.UID), credentials.DatabasePassword)

	// Metacontroller, with the token, makes the victim's resources exist.
	if code, body := call(t, secure+"/sync", syncRequest(t, p), goodToken); code != http.StatusOK {
		t.Fatalf("Metacontroller's sync got %d: %s", code, body)
	}
	everything := left{Bucket: true, Vhost: true, Database: true}
	if got := live.left(t, names); got != everything {
		t.Fatalf("after Metacontroller's sync the victim has %+v, want everything", got)
	}

	// Against the default install, every forged call is refused and nothing happens.
	for name, token := range map[string]string{"no token": "", "a wrong token": otherToken, "a token cut short": goodToken[:20]} {
		code, body := call(t, secure+"/sync", syncRequest(t, p), token)
		if code != http.StatusUnauthorized || strings.Contains(string(body), dbPassword) || configFile(t, body) != "" {
			t.Errorf("a forged sync with %s got %d and the config file %q, want 401 and nothing", name, code, configFile(t, body))
		}
		if code, _ := call(t, secure+"/finalize", forgedFinalize(t), token); code != http.StatusUnauthorized {
			t.Errorf("a forged finalize with %s got %d, want 401", name, code)
		}
	}
	if got := live.left(t, names); got != everything {
		t.Fatalf("the forged finalize calls to the default install tore down %+v", got)
	}

	// With authentication off, the same calls succeed: this is the hole the token closes.
	code, body := call(t, insecure+"/sync", syncRequest(t, p), "")
	if code != http.StatusOK || !strings.Contains(configFile(t, body), dbPassword) {
		t.Fatalf("a forged sync to --insecure-no-auth got %d without the victim's database password; the attack this test guards against is not shown", code)
	}
	finalized := false
	for range 10 {
		code, body := call(t, insecure+"/finalize", forgedFinalize(t), "")
		if code != http.StatusOK {
			t.Fatalf("a forged finalize to --insecure-no-auth got %d: %s", code, body)
		}
		var r struct{ Finalized bool }
		_ = json.Unmarshal(body, &r)
		if finalized = r.Finalized; finalized {
			break
		}
	}
	if got := live.left(t, names); !finalized || got != (left{}) {
		t.Errorf("a forged finalize with deletionPolicy Delete to --insecure-no-auth left %+v (finalized %v); the attack is not shown", got, finalized)
	}
}
