package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/forklift-dev/summon/internal/testing/standin"
	"github.com/forklift-dev/summon/pkg/children"
)

// TestAutoscalingHandOverNeverScalesDown hands web's replicas to an HPA and back, with the real
// Deployment and HPA controllers acting (kube-controller-manager; no metrics server runs, so the
// HPA controller keeps the count within its bounds and changes it no further). It runs 5 web
// pods, turns autoscaling on with bounds 3 to 10, scales web to 7 through the scale subresource as
// the HPA would on load, changes a setting (a sync that rolls every pod), then turns autoscaling
// off with replicas.web 4. On every watch event the web Deployment's spec.replicas, its Ready
// count and the Ready web pods stay at or above the floor: 5 once 5 ran, 7 once 7 ran, and, once
// autoscaling is off, 4 (the smaller of the HPA's count and the spec's).
//
// Under server-side apply only the hand-over itself is checked (on, then off): Metacontroller
// applies with force and no resourceVersion there, so an answer computed before the HPA's write
// and applied after it undoes that write. The HPA would set its count again at its next
// evaluation; here, with no metrics, it can't, and the undone count stays (seen in this test
// while it included that step). docs/behaviour.md recommends the default strategy for that reason.
func TestAutoscalingHandOverNeverScalesDown(t *testing.T) {
	for _, strategy := range []standin.ApplyStrategy{standin.DynamicApply, standin.ServerSideApply} {
		t.Run(string(strategy), func(t *testing.T) {
			hpaScales := strategy == standin.DynamicApply
			c := cluster(t)
			cl := clientsOf(c)
			ns := newNamespace(t, cl.kube, "hpa-"+strings.ReplaceAll(string(strategy), "-apply", ""))
			tl := record(t, cl.kube, ns)
			slowReadyWeb(t, cl, ns, readyTime)
			hook := startHook(t)
			startController(t, c, hook.URL(), strategy)
			web := children.NamesFor("car1").Of(children.Web)

			in := apply(t, cl, ns, platformSpec("v1", 5))
			in.waitReady("v1")

			on := in.patchSpec(map[string]any{"autoscaling": map[string]any{"web": map[string]any{"minReplicas": int64(3), "maxReplicas": int64(10)}}})
			in.waitReady("v1")
			if _, err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(t.Context(), web, metav1.GetOptions{}); err != nil {
				t.Fatalf("the HPA is not there with autoscaling on: %v", err)
			}

			running := int32(5)
			scaled := int64(0)
			if hpaScales {
				scaled = scaleLikeTheHPA(t, cl, ns, web, 7)
				in.waitWeb(7)
				in.patchSpec(map[string]any{"config": map[string]any{"DEBUG": true}})
				in.waitReady("v1")
				in.waitWeb(7)
				running = 7
			}
			in.waitWeb(running)

			off := in.patchSpec(map[string]any{"autoscaling": nil, "replicas": map[string]any{"web": int64(4)}})
			in.waitReady("v1")
			in.waitWeb(4)
			waitFor(t, giveUp, "the HPA to be gone", func(ctx context.Context) (bool, string) {
				_, err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, web, metav1.GetOptions{})
				return apierrors.IsNotFound(err), fmt.Sprint(err)
			})

			events := tl.snapshot(t)
			replay(t, events, webFloor(web, on, scaled, off))
			if n := count(events, func(e event) bool {
				d, ok := e.obj.(*appsv1.Deployment)
				return ok && d.Name == web && e.rv > scaled && e.rv < off && ptr.Deref(d.Spec.Replicas, 0) == 7
			}); hpaScales && n == 0 {
				t.Error("web never ran 7 pods while the HPA had it: the hand-over can't have been seen")
			}
		})
	}
}

// webFloor is the lower bound of the hand-over on every event: it rises to a count only once
// that count ran (5, then 7 after the HPA's scale at rv scaled, if any), and falls to 4 at once when
// autoscaling is turned off (rv off). spec.replicas, the Deployment's Ready count and the Ready,
// not terminating web pods all stay at or above it.
func webFloor(web string, on, scaled, off int64) invariant {
	floor := int32(0)
	return invariant{name: "web never below the hand-over's floor", check: func(s state, ev event) string {
		d := s.deployments[web]
		if d == nil {
			return ""
		}
		replicas, ready := ptr.Deref(d.Spec.Replicas, 1), d.Status.ReadyReplicas
		switch {
		case ev.rv > off:
			floor = 4
		case scaled > 0 && ev.rv > scaled && ready >= 7 && replicas >= 7:
			floor = max(floor, 7)
		case ev.rv < on && ready >= 5 && replicas == 5:
			floor = max(floor, 5)
		}
		pods := 0
		for _, p := range s.pods {
			if component(p) == string(children.Web) && p.DeletionTimestamp == nil && podReady(p) {
				pods++
			}
		}
		if replicas < floor || ready < floor || int32(pods) < floor {
			return fmt.Sprintf("spec.replicas %d, %d Ready by the Deployment, %d Ready web pods; the floor is %d", replicas, ready, pods, floor)
		}
		return ""
	}}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// scaleLikeTheHPA writes web's count through the scale subresource, the path the HPA controller
// takes, and returns the write's resourceVersion. It stands for the HPA deciding on load: no
// metrics server runs here for the real HPA to decide anything but its bounds.
func scaleLikeTheHPA(t *testing.T, cl clients, ns, name string, replicas int32) int64 {
	t.Helper()
	var rv int64
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := cl.kube.AppsV1().Deployments(ns).GetScale(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec = autoscalingv1.ScaleSpec{Replicas: replicas}
		out, err := cl.kube.AppsV1().Deployments(ns).UpdateScale(t.Context(), name, sc, metav1.UpdateOptions{FieldManager: "horizontal-pod-autoscaler"})
		if err == nil {
			rv = resourceVersion(t, out)
		}
		return err
	})
	if err != nil {
		t.Fatalf("scaling %s to %d: %v", name, replicas, err)
	}
	return rv
}

// waitWeb waits until the web Deployment asks for n pods and has n Ready.
func (in *instance) waitWeb(n int32) {
	in.t.Helper()
	web := children.NamesFor(in.name).Of(children.Web)
	waitFor(in.t, giveUp, fmt.Sprintf("web at %d Ready pods", n), func(ctx context.Context) (bool, string) {
		d, err := in.cl.kube.AppsV1().Deployments(in.ns).Get(ctx, web, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		done := ptr.Deref(d.Spec.Replicas, 1) == n && st.ObservedGeneration == d.Generation && st.ReadyReplicas == n && st.Replicas == n
		return done, fmt.Sprintf("spec.replicas %d, status %+v", ptr.Deref(d.Spec.Replicas, 1), st)
	})
}
