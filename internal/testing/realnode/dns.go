package realnode

import (
	"net"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// clusterDomain is the node's cluster domain (kubeletConfig's clusterDomain).
const clusterDomain = "svc.cluster.local"

// clusterDNS is the node's cluster DNS: the kubelet gives every pod NodeIP as its nameserver
// (clusterDNS), and this answers a lookup of <service>.<namespace>.svc.cluster.local with the
// Service's ClusterIP, as CoreDNS's kubernetes plugin answers for a ClusterIP Service, and any
// other name with NXDOMAIN (an AAAA lookup of a Service, with no record). It is a stand-in, and
// the only one in the node: CoreDNS is not packaged in Debian, and building it from its module
// would add minutes to a cold CI run for what Summon's children need of DNS, the Service names in
// the app's settings (its own Redis). Headless Services, pods' names, SRV records and recursion
// are not served. UDP on NodeIP:53 only, inside the node's network namespace.
type clusterDNS struct {
	conn     net.PacketConn
	services corelisters.ServiceLister
	stop     chan struct{}
}

func startClusterDNS(cs kubernetes.Interface) (*clusterDNS, error) {
	conn, err := net.ListenPacket("udp", net.JoinHostPort(NodeIP, "53"))
	if err != nil {
		return nil, err
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	d := &clusterDNS{conn: conn, services: f.Core().V1().Services().Lister(), stop: make(chan struct{})}
	f.Start(d.stop)
	f.WaitForCacheSync(d.stop)
	go d.serve()
	return d, nil
}

func (d *clusterDNS) close() {
	close(d.stop)
	_ = d.conn.Close()
}

func (d *clusterDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if out := d.answer(buf[:n]); out != nil {
			_, _ = d.conn.WriteTo(out, from)
		}
	}
}

// answer builds the reply to one query, or nil for what is not a query.
func (d *clusterDNS) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	ip, found := d.lookup(q.Name.String())
	reply := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !found {
		reply.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, reply)
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	if found && q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET {
		var a dnsmessage.AResource
		copy(a.A[:], ip)
		if b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5}, a) != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// lookup is the ClusterIP of the Service a name names, if there is one.
func (d *clusterDNS) lookup(name string) (net.IP, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	rest, ok := strings.CutSuffix(name, "."+clusterDomain)
	if !ok {
		return nil, false
	}
	service, namespace, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(namespace, ".") {
		return nil, false
	}
	svc, err := d.services.Services(namespace).Get(service)
	if err != nil {
		return nil, false
	}
	ip := net.ParseIP(svc.Spec.ClusterIP).To4()
	return ip, ip != nil
}
