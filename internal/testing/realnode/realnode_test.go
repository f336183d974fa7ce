package realnode_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/forklift-dev/summon/internal/testing/realnode"
	"github.com/forklift-dev/summon/internal/testing/testenv"
)

// TestMain runs the tests on a real node; once they are done, realnode.Main fails the run if the
// node left anything on the host (a process, a cgroup, a mount).
func TestMain(m *testing.M) {
	os.Exit(realnode.Main(m, realnode.Options{}))
}

// A Deployment's pods run real processes on the node, become Ready by a real HTTP probe, answer
// through their Service's ClusterIP (kube-proxy's rules), and their logs come back through the API
// server from the kubelet.
func TestPodsServeThroughTheirService(t *testing.T) {
	n := realnode.Get(t)
	t.Logf("node Ready after %s", n.ReadyTime.Round(100*time.Millisecond))
	cs, err := kubernetes.NewForConfig(n.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const ns = "realnode-smoke"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "hello"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					Containers: []corev1.Container{{
						Name: "hello", Image: realnode.PauseImage, ImagePullPolicy: corev1.PullNever,
						Args:  []string{"serve", ":8000"},
						Ports: []corev1.ContainerPort{{ContainerPort: 8000}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8000)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8000)}},
		},
	}
	svc, err = cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svc.Spec.ClusterIP, "198.19.") {
		t.Fatalf("the Service's ClusterIP is %s, want one in 198.19.0.0/16", svc.Spec.ClusterIP)
	}

	testenv.Eventually(t, 3*time.Minute, 200*time.Millisecond, "the Deployment's 2 pods Ready", func(ctx context.Context) (bool, string) {
		got, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return got.Status.AvailableReplicas == 2, fmt.Sprintf("%d available", got.Status.AvailableReplicas)
	}, n.Err)

	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Status.PodIP, "198.18.0.") {
			t.Errorf("pod %s has IP %q, want one in 198.18.0.0/24", p.Name, p.Status.PodIP)
		}
		names[p.Name] = true
	}

	// kube-proxy may still be writing the Service's rules when the pods are Ready.
	// A new connection each time: kube-proxy balances connections, not requests.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	answered := map[string]bool{}
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "both pods to answer through the ClusterIP", func(ctx context.Context) (bool, string) {
		resp, err := client.Get("http://" + svc.Spec.ClusterIP + "/")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := strings.TrimSpace(string(b))
		if !names[name] {
			t.Fatalf("the Service answered %q, not the name of one of its pods %v", name, names)
		}
		answered[name] = true
		return len(answered) == 2, fmt.Sprintf("answered by %v", answered)
	}, n.Err)

	// The node's cluster DNS, the pods' nameserver, names the Service by its ClusterIP, and no
	// other name.
	dns := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", net.JoinHostPort(realnode.NodeIP, "53"))
	}}
	addrs, err := dns.LookupHost(ctx, "hello."+ns+".svc.cluster.local")
	if err != nil || len(addrs) != 1 || addrs[0] != svc.Spec.ClusterIP {
		t.Errorf("the cluster DNS gives %v (%v) for the Service, want its ClusterIP %s", addrs, err, svc.Spec.ClusterIP)
	}
	for _, name := range []string{"nothing." + ns + ".svc.cluster.local", "hello.elsewhere.svc.cluster.local", "example.com"} {
		if addrs, err := dns.LookupHost(ctx, name); err == nil {
			t.Errorf("the cluster DNS gives %v for %s, which names no Service", addrs, name)
		}
	}

	if os.Getenv("SUMMON_REALNODE_MEASURE") != "" {
		u, err := n.Cluster.Measure(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("with 2 pods running, over 30 s:\n%s", u)
	}

	// The API server reaches the kubelet (logs, exec) at the node's address.
	var first string
	for name := range names {
		first = name
		break
	}
	if _, err := cs.CoreV1().Pods(ns).GetLogs(first, &corev1.PodLogOptions{}).DoRaw(ctx); err != nil {
		t.Errorf("reading pod %s's logs through the API server: %v", first, err)
	}
}
