package server

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forklift-dev/summon/internal/testing/testenv"
)

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	// Written aside and renamed, as the kubelet swaps a Secret volume's files.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsClient calls with the given client certificate (none when certPEM is nil), trusting ca.
func tlsClient(t *testing.T, ca *testenv.CA, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func TestTheHooksServeOverMutualTLSAndFollowRenewedFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")
	serverCA, clientCA, strangerCA := testenv.NewCA(t, "summon-ca"), testenv.NewCA(t, "metacontroller-ca"), testenv.NewCA(t, "stranger-ca")
	c, k := serverCA.Issue("summon.summon-system.svc", x509.ExtKeyUsageServerAuth)
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	writeFile(t, caFile, clientCA.PEM)

	s, _ := testServer(t, withConfig(func(c *Config) {
		c.Listen, c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = "127.0.0.1:0", certFile, keyFile, caFile
	}))
	s.tls.checkEvery = 0
	base := strings.Replace(serveLoopback(t, s), "http://", "https://", 1)
	body := readFile(t, freshInstall)

	mcCert, mcKey := clientCA.Issue("metacontroller", x509.ExtKeyUsageClientAuth)
	strangerCert, strangerKey := strangerCA.Issue("metacontroller", x509.ExtKeyUsageClientAuth)
	call := func(client *http.Client) (int, *x509.Certificate, error) {
		resp, err := client.Post(base+"/sync", "application/json", strings.NewReader(string(body)))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.TLS.PeerCertificates[0], nil
	}

	if _, _, err := call(tlsClient(t, serverCA, nil, nil)); err == nil {
		t.Error("a caller without a client certificate was served")
	}
	if _, _, err := call(tlsClient(t, serverCA, strangerCert, strangerKey)); err == nil {
		t.Error("a caller with a certificate of another CA was served")
	}
	code, served, err := call(tlsClient(t, serverCA, mcCert, mcKey))
	if err != nil || code != http.StatusOK {
		t.Fatalf("Metacontroller's certificate got %d, %v; want 200", code, err)
	}

	// cert-manager renews the serving certificate: the next connection gets the new one.
	c2, k2 := serverCA.Issue("summon.summon-system.svc", x509.ExtKeyUsageServerAuth)
	writeFile(t, keyFile, k2)
	writeFile(t, certFile, c2)
	_, renewed, err := call(tlsClient(t, serverCA, mcCert, mcKey))
	if err != nil {
		t.Fatalf("after the renewal: %v", err)
	}
	if renewed.SerialNumber.Cmp(served.SerialNumber) == 0 {
		t.Error("the renewed certificate is not served")
	}

	// The client CA is replaced: certificates of the old one are refused from then on.
	writeFile(t, caFile, strangerCA.PEM)
	if _, _, err := call(tlsClient(t, serverCA, mcCert, mcKey)); err == nil {
		t.Error("a certificate of the replaced client CA is still accepted")
	}
	if code, _, err := call(tlsClient(t, serverCA, strangerCert, strangerKey)); err != nil || code != http.StatusOK {
		t.Errorf("a certificate of the new client CA got %d, %v; want 200", code, err)
	}
}

func TestUnreadableTLSFilesStopTheStart(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not a certificate"))
	ca := testenv.NewCA(t, "ca")
	c, k := ca.Issue("summon", x509.ExtKeyUsageServerAuth)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	tests := map[string]struct {
		cert, key, ca string
		wantErr       string
	}{
		"a certificate that is not PEM": {garbage, keyFile, "", "reading the TLS certificate"},
		"a missing key":                 {certFile, filepath.Join(dir, "absent"), "", "reading the TLS certificate"},
		"a client CA file without PEM":  {certFile, keyFile, garbage, "holds no PEM certificate"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := newTLSFiles(tc.cert, tc.key, tc.ca, nil); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
