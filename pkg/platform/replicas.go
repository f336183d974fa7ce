package platform

import (
	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/children"
)

// desiredReplicas is how many pods an app workload asks for: the spec's count, the beat
// singleton's, or, while an HPA scales the component, the count handed over to it.
func desiredReplicas(p children.Platform, c children.Component, w *observedWorkload, beatReplicas int32) int32 {
	s := p.Spec
	switch c {
	case children.Web:
		if h := s.Autoscaling.Web; h != nil {
			return handOverReplicas(*h, w)
		}
		return *s.Replicas.Web
	case children.Celeryd:
		if h := s.Autoscaling.Celeryd; h != nil {
			return handOverReplicas(*h, w)
		}
		return *s.Replicas.Celeryd
	case children.Daphne:
		return *s.Replicas.Daphne
	case children.ChannelWorker:
		return *s.Replicas.ChannelWorker
	case children.Static:
		return *s.Replicas.Static
	}
	return beatReplicas
}

// handOverReplicas is the replica count of a workload while an HPA scales it: the count it runs
// now (its observed spec.replicas), moved into the HPA's bounds, or minReplicas when it doesn't
// exist yet. Turning autoscaling on so keeps the running count (a busy instance is not cut down),
// and from then on the answer only ever repeats what the HPA set.
//
// Why the answer states replicas at all: Metacontroller's default apply is a three-way merge of
// the observed object, its last-applied annotation and the answer. A field in the last-applied
// annotation that the answer leaves out is removed from the object, and the API server then
// defaults a Deployment's replicas to 1: leaving the count to the HPA by omitting it took a
// running instance down to one pod before the HPA raised it again. A field the answer states is
// set to the answer's value, so the answer states the observed value: the merge changes nothing,
// and whatever the HPA writes through the scale subresource stands. Metacontroller updates with
// the resourceVersion it observed, so an HPA change that lands between that observation and the
// update makes the update conflict instead of being overwritten, and the next sync repeats it.
//
// Under --apply-strategy=server-side-apply Metacontroller applies with force and no
// resourceVersion: an HPA change in that window is overwritten once with the count it replaced
// (never outside the HPA's bounds), and the HPA sets it again at its next evaluation.
// docs/behaviour.md, "Autoscaling", says which strategy to run and shows the tests.
func handOverReplicas(h v1beta1.HorizontalScaling, w *observedWorkload) int32 {
	if w == nil {
		return h.MinReplicas
	}
	running := int32(1) // the API server's default, for a workload that states none
	if w.replicas != nil {
		running = *w.replicas
	}
	return min(max(running, h.MinReplicas), h.MaxReplicas)
}
