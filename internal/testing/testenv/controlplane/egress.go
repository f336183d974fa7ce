package controlplane

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

// ServiceProxyIP is the address the tests give the pods that the API server's service proxy
// reaches. The API server refuses loopback addresses in an EndpointSlice, so the endpoint can't be
// 127.0.0.1; 192.0.2.0/24 is TEST-NET-1, reserved for documentation and routed nowhere. Nothing
// is ever sent to it: the API server's egress to the cluster goes through the CONNECT proxy
// below, on a unix socket, which takes such an address to 127.0.0.1 on the same port.
const ServiceProxyIP = "192.0.2.1"

// egressProxy is an HTTP CONNECT proxy on a unix socket that the API server sends its traffic to
// the cluster through (--egress-selector-config-file, egress "cluster"): the service proxy's
// connections to endpoints.
type egressProxy struct {
	dir string
	ln  net.Listener
}

// startEgressProxy starts the proxy and writes the API server's egress selector configuration
// for it; configFile is that file.
func startEgressProxy() (*egressProxy, string, error) {
	dir, err := os.MkdirTemp("", "summon-egress-")
	if err != nil {
		return nil, "", err
	}
	sock := filepath.Join(dir, "egress.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("listening on %s: %w", sock, err)
	}
	config := filepath.Join(dir, "egress-selector.yaml")
	text := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
  - name: cluster
    connection:
      proxyProtocol: HTTPConnect
      transport:
        uds:
          udsName: %s
`, sock)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, "", err
	}
	p := &egressProxy{dir: dir, ln: ln}
	go p.serve()
	return p, config, nil
}

func (p *egressProxy) serve() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.tunnel(conn)
	}
}

// tunnel answers one CONNECT to ServiceProxyIP:port with a connection to 127.0.0.1:port; any other
// destination is refused.
func (p *egressProxy) tunnel(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	host, port, err := net.SplitHostPort(req.Host)
	if req.Method != http.MethodConnect || err != nil || host != ServiceProxyIP {
		fmt.Fprintf(conn, "HTTP/1.1 403 Forbidden\r\n\r\nthe test egress proxy goes only to %s\n", ServiceProxyIP)
		return
	}
	upstream, err := net.Dial("tcp", net.JoinHostPort(loopback, port))
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v\n", err)
		return
	}
	defer upstream.Close()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, upstream); done <- struct{}{} }()
	<-done
}

// stop closes the socket and removes the proxy's files.
func (p *egressProxy) stop() error {
	err := p.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return errors.Join(err, os.RemoveAll(p.dir))
}
