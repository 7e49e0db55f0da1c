package scheduler

import (
	"math"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// How fit works.
//
// A node is a candidate for a component only if its free room (allocatable
// minus requested, minus what this round already reserved, plus the
// component's own share when it already runs there) holds the component's
// largest pod. A cluster can take the component only if its node set
// holds all of the component's pods: the requirements say only the total
// and the largest pod, so the pods are modelled as one pod of the largest
// size plus Total.Pods-1 pods of the average size of the others (exact
// when all pods are alike, as with a single Deployment). The largest goes
// on the best node of the set; each node then holds as many of the others
// as fit in every resource, pods count included. This refuses clusters
// whose free room is only there in crumbs, which a plain "sum of free
// room" test would accept. The Kubernetes scheduler of the cluster still
// does the real packing; this only avoids choosing a cluster that
// cannot hold the component.

// podModel is how the fit sees a component's pods.
type podModel struct {
	count   int64           // pods in all
	largest fleet.Resources // one pod this big
	rest    fleet.Resources // count-1 pods this big
}

func newPodModel(req spec.Requirements) podModel {
	m := podModel{count: req.Total.Pods, largest: req.LargestPod}
	if m.count <= 0 {
		return podModel{}
	}
	if m.count > 1 {
		others := req.Total.Sub(req.LargestPod)
		n := m.count - 1
		m.rest = fleet.Resources{
			MilliCPU:         ceilDiv(others.MilliCPU, n),
			MemoryBytes:      ceilDiv(others.MemoryBytes, n),
			EphemeralStorage: ceilDiv(others.EphemeralStorage, n),
			Pods:             1,
		}
	}
	m.largest.Pods = 1
	return m
}

// ceilDiv rounds up, so the model never asks for less than the pods do.
func ceilDiv(a, n int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + n - 1) / n
}

// fitsNode reports whether a node with this much free room can be a
// candidate, and if not which resource is short.
func (m podModel) fitsNode(free fleet.Resources) (bool, string) {
	if m.count == 0 {
		return true, ""
	}
	return free.Fits(m.largest)
}

// howMany is how many pods of size pod fit in free.
func howMany(free, pod fleet.Resources) int64 {
	k := int64(math.MaxInt64)
	for _, d := range [...][2]int64{
		{free.MilliCPU, pod.MilliCPU},
		{free.MemoryBytes, pod.MemoryBytes},
		{free.EphemeralStorage, pod.EphemeralStorage},
		{free.Pods, pod.Pods},
	} {
		if d[1] > 0 {
			k = min(k, d[0]/d[1])
		}
	}
	return max(k, 0)
}

// fitPrefix returns the smallest n >= minN such that the first n nodes
// hold every pod, or -1 if all of them together do not. nodes come best
// first; each is already known to hold the largest pod.
func (m podModel) fitPrefix(nodes []int32, minN int, free func(int32) fleet.Resources) int {
	if len(nodes) == 0 {
		return -1
	}
	minN = max(minN, 1)
	if m.count <= 1 {
		return min(minN, len(nodes))
	}
	need := m.count - 1
	held := int64(0)
	for i, ni := range nodes {
		f := free(ni)
		if i == 0 {
			f = f.Sub(m.largest)
		}
		held += howMany(f, m.rest)
		if i+1 >= minN && held >= need {
			return i + 1
		}
	}
	return -1
}

// spread says how much of the component each node of its set takes: the
// largest pod on the first node, the others dealt out one at a time like
// the cluster's own scheduler spreads them. It is what a round reserves,
// and nodes that cannot hold their share simply get less (the fit test
// already said the set holds it all).
func spread(m podModel, set []int32, free func(int32) fleet.Resources) []fleet.Resources {
	out := make([]fleet.Resources, len(set))
	if m.count == 0 || len(set) == 0 {
		return out
	}
	room := make([]int64, len(set))
	for i, ni := range set {
		f := free(ni)
		if i == 0 {
			out[0] = m.largest
			f = f.Sub(m.largest)
		}
		room[i] = howMany(f, m.rest)
	}
	left := m.count - 1
	for left > 0 {
		dealt := false
		for i := range set {
			if left > 0 && room[i] > 0 {
				out[i] = out[i].Add(m.rest)
				room[i]--
				left--
				dealt = true
			}
		}
		if !dealt {
			break
		}
	}
	return out
}
