package realpods

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/forklift-dev/summon/internal/testing/realnode"
	"github.com/forklift-dev/summon/internal/testing/testenv"
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// Summon's serving Deployments (pkg/children, exactly as the hook answers them, but for the
// command and image: the node's own test server, which stops accepting at once on SIGTERM, as
// gunicorn, Daphne and Caddy do) are rolled through new versions behind their Services while a
// client sends a request every 20 ms through the ClusterIP: not one fails. Without the preStop
// delay requests fail on each rollout (SUMMON_REALPODS_STRIP_PRESTOP=1).
func TestServingRolloutsDropNoRequest(t *testing.T) {
	n := realnode.Get(t)
	cs, err := kubernetes.NewForConfig(n.Config())
	if err != nil {
		t.Fatal(err)
	}
	image, _, _ := strings.Cut(realnode.PauseImage, ":")
	for _, v := range []string{"v1", "v2", "v3"} {
		if err := n.TagImage(realnode.PauseImage, image+":"+v); err != nil {
			t.Fatal(err)
		}
	}
	small := corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi"),
	}}
	for _, tc := range []struct {
		component children.Component
		replicas  int32
		versions  []string
		build     func(children.Platform, children.Release) *appsv1.Deployment
	}{
		{children.Web, 3, []string{"v1", "v2", "v3"}, func(p children.Platform, r children.Release) *appsv1.Deployment {
			return children.WebDeployment(p, r, 3)
		}},
		{children.Daphne, 1, []string{"v1", "v2"}, children.DaphneDeployment},
		{children.Static, 1, []string{"v1", "v2"}, children.StaticDeployment},
	} {
		t.Run(string(tc.component), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			ns := "rollouts-" + string(tc.component)
			if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			realnode.RecordTimeline(t, cs, ns)
			spec := v1beta1.Spec{
				Image: image, Version: tc.versions[0],
				Resources: v1beta1.ComponentResources{Web: small, Daphne: small, Static: small},
			}.Defaulted(v1beta1.HookDefaults{})
			p := children.NewPlatform("shop", ns, spec)
			// The pods mount the instance's config Secret; its content doesn't matter to this server.
			if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: p.Names.Config()}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			svc, err := cs.CoreV1().Services(ns).Create(ctx, children.ServiceFor(p, tc.component), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			apply := func(version string) {
				d := tc.build(p, children.Release{Version: version, ConfigHash: "same"})
				c := &d.Spec.Template.Spec.Containers[0]
				c.Command = []string{"/pause", "serve", ":8000"}
				c.ImagePullPolicy = corev1.PullNever
				if stripPreStop() {
					c.Lifecycle = nil
				}
				if version == tc.versions[0] {
					_, err = cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
				} else {
					var cur *appsv1.Deployment
					if cur, err = cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{}); err == nil {
						d.ResourceVersion = cur.ResourceVersion
						_, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				waitRolledOut(t, n, cs, ns, d.Name, tc.replicas)
			}

			begin := time.Now()
			apply(tc.versions[0])
			t.Logf("%d %s pods Ready in %s", tc.replicas, tc.component, time.Since(begin).Round(100*time.Millisecond))

			prober := realnode.StartProber("http://"+svc.Spec.ClusterIP+"/", 20*time.Millisecond)
			// kube-proxy may still be writing the Service's rules.
			testenv.Eventually(t, time.Minute, 100*time.Millisecond, "a first answer through the Service", func(context.Context) (bool, string) {
				c := prober.Count()
				return c.Requests > c.Failed, c.String()
			}, n.Err)
			warmup := prober.Count()
			for _, v := range tc.versions[1:] {
				begin := time.Now()
				apply(v)
				t.Logf("rolled to %s in %s: %s", v, time.Since(begin).Round(100*time.Millisecond), prober.Count())
			}
			got := prober.Stop()
			failed := got.Failed - warmup.Failed
			t.Logf("prober: %s (%d failed before the first answer, not counted)", got, warmup.Failed)
			if f := got.Firsts(); f != "" {
				t.Logf("counted or not, %s", f)
			}
			if failed != 0 {
				t.Errorf("%d of %d requests failed during %d rollouts; first failures: %v", failed, got.Requests-warmup.Requests, len(tc.versions)-1, got.FirstFailures)
			}
			if want := len(tc.versions) * int(tc.replicas); len(got.Answers) < want {
				t.Errorf("answers came from %d pods, want %d (every version's): %v", len(got.Answers), want, got.Answers)
			}
		})
	}
}

// waitRolledOut waits until the Deployment's rollout is over: every pod of its current template
// Ready and every old pod gone (not just terminating: a terminating pod is the one that drops
// requests).
func waitRolledOut(t *testing.T, n *realnode.Node, cs kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	testenv.Eventually(t, 5*time.Minute, 200*time.Millisecond, "Deployment "+name+" rolled out", func(ctx context.Context) (bool, string) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != replicas || st.Replicas != replicas || st.AvailableReplicas != replicas {
			return false, fmt.Sprintf("generation %d observed %d, %d updated, %d in all, %d available", d.Generation, st.ObservedGeneration, st.UpdatedReplicas, st.Replicas, st.AvailableReplicas)
		}
		sel := metav1.FormatLabelSelector(d.Spec.Selector)
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err.Error()
		}
		if len(pods.Items) != int(replicas) {
			return false, fmt.Sprintf("%d pods, some still terminating", len(pods.Items))
		}
		return true, ""
	}, n.Err)
}
