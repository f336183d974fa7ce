package gate

// BeatReplicas is the replica count of Summon's beat StatefulSet. While any other beat workload is
// observed (one left by an older layout, or by hand) it is 0: that beat may still be running, and
// two beats run every scheduled task twice. The new beat starts once the other is gone.
func BeatReplicas(want int32, otherBeatObserved bool) int32 {
	if otherBeatObserved {
		return 0
	}
	return min(want, 1)
}

// CapBeats returns the replica counts of a response's beat workloads, in the order given, cut
// so that together they never exceed one. It is the last word on any response, including one
// that returns children as observed.
func CapBeats(replicas []int32) []int32 {
	out := make([]int32, len(replicas))
	left := int32(1)
	for i, r := range replicas {
		out[i] = max(0, min(r, left))
		left -= out[i]
	}
	return out
}
