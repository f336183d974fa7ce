package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// fileStamp tells whether a file changed since it was read: cert-manager renews a certificate by
// rewriting its Secret, and the kubelet swaps the mounted files.
type fileStamp struct {
	info os.FileInfo
}

func (s fileStamp) changed(path string) bool {
	info, err := os.Stat(path)
	if err != nil || s.info == nil {
		return true
	}
	return !os.SameFile(info, s.info) || info.Size() != s.info.Size() || !info.ModTime().Equal(s.info.ModTime())
}

// recheck keeps the look at a watched file to once every checkEvery: a rotation is seen within
// that, and a steady hook call costs no stat. The token, rollout and TLS files share it.
type recheck struct {
	lastCheck  time.Time
	checkEvery time.Duration
}

// due says whether a look is due now, and if so counts it as taken.
func (r *recheck) due(now time.Time) bool {
	if now.Sub(r.lastCheck) < r.checkEvery {
		return false
	}
	r.lastCheck = now
	return true
}

func stampOf(path string) fileStamp {
	info, _ := os.Stat(path)
	return fileStamp{info: info}
}

// tlsFiles is the hook's serving certificate and, for mutual TLS, the CA its callers' client
// certificates must chain to. Each is read again on the first handshake after its file changes;
// one that can't be read then keeps the previous one in force.
type tlsFiles struct {
	certFile, keyFile, caFile string
	log                       *slog.Logger

	mu            sync.Mutex
	cert          *tls.Certificate
	certAt, keyAt fileStamp
	pool          *x509.CertPool
	caAt          fileStamp
	recheck
}

// newTLSFiles reads the files once: a server that can't present its certificate can't start.
func newTLSFiles(certFile, keyFile, caFile string, log *slog.Logger) (*tlsFiles, error) {
	f := &tlsFiles{certFile: certFile, keyFile: keyFile, caFile: caFile, log: log, recheck: recheck{checkEvery: time.Second}}
	if err := f.loadCert(); err != nil {
		return nil, err
	}
	if caFile != "" {
		if err := f.loadCA(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *tlsFiles) loadCert() error {
	certAt, keyAt := stampOf(f.certFile), stampOf(f.keyFile)
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("reading the TLS certificate %s and key %s: %w", f.certFile, f.keyFile, err)
	}
	f.cert, f.certAt, f.keyAt = &cert, certAt, keyAt
	return nil
}

func (f *tlsFiles) loadCA() error {
	caAt := stampOf(f.caFile)
	b, err := os.ReadFile(f.caFile)
	if err != nil {
		return fmt.Errorf("reading the client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("the client CA file %s holds no PEM certificate", f.caFile)
	}
	f.pool, f.caAt = pool, caAt
	return nil
}

// refresh reads again what changed, at most once a second: a handshake costs one stat per file
// then, not a parse.
func (f *tlsFiles) refresh() {
	if !f.due(time.Now()) {
		return
	}
	if f.certAt.changed(f.certFile) || f.keyAt.changed(f.keyFile) {
		if err := f.loadCert(); err != nil {
			f.log.Error("the TLS certificate changed but can't be read; the previous one stays in force", "error", err.Error())
			// A cert and key written one after the other are read again on the next check.
		} else {
			f.log.Info("serving a new TLS certificate", "file", f.certFile)
		}
	}
	if f.caFile != "" && f.caAt.changed(f.caFile) {
		if err := f.loadCA(); err != nil {
			f.log.Error("the client CA file changed but can't be read; the previous one stays in force", "error", err.Error())
		} else {
			f.log.Info("verifying client certificates against a new CA bundle", "file", f.caFile)
		}
	}
}

// config is the server's TLS configuration. GetConfigForClient runs on every handshake, so a
// renewed certificate or CA takes effect for the next connection.
func (f *tlsFiles) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.refresh()
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*f.cert}}
			if f.pool != nil {
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.ClientCAs = f.pool
			}
			return c, nil
		},
	}
}
