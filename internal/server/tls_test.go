package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki is a throwaway certificate authority, as cert-manager's CA Issuer would be.
type pki struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial = big.NewInt(100)

func nextSerial() *big.Int {
	serial = new(big.Int).Add(serial, big.NewInt(1))
	return serial
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate and returns it as PEM, with its key.
func (p *pki) issue(name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

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
func tlsClient(t *testing.T, ca *pki, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
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
	serverCA, clientCA, strangerCA := newPKI(t, "summon-ca"), newPKI(t, "metacontroller-ca"), newPKI(t, "stranger-ca")
	c, k := serverCA.issue("summon.summon-system.svc", x509.ExtKeyUsageServerAuth)
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	writeFile(t, caFile, clientCA.pem)

	s, _ := testServer(t, withConfig(func(c *Config) {
		c.Listen, c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = "127.0.0.1:0", certFile, keyFile, caFile
	}))
	s.tls.checkEvery = 0
	base := strings.Replace(serveLoopback(t, s), "http://", "https://", 1)
	body := readFile(t, freshInstall)

	mcCert, mcKey := clientCA.issue("metacontroller", x509.ExtKeyUsageClientAuth)
	strangerCert, strangerKey := strangerCA.issue("metacontroller", x509.ExtKeyUsageClientAuth)
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
	c2, k2 := serverCA.issue("summon.summon-system.svc", x509.ExtKeyUsageServerAuth)
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
	writeFile(t, caFile, strangerCA.pem)
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
	ca := newPKI(t, "ca")
	c, k := ca.issue("summon", x509.ExtKeyUsageServerAuth)
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
