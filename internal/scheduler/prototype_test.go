package scheduler

import (
	"cmp"
	"slices"
	"strconv"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// prototypeSchedule is the paper prototype's method as DESIGN.md describes
// it, faults included, as a baseline for the benchmarks: for every
// application, read every node of the fleet again, rank all of them on
// seven criteria (energy, price, and cpu, memory, ephemeral storage, pods
// and bandwidth whose ranks are summed into "performance"), weigh, keep
// the nodes at or above the mean and give each component the cluster of
// its tier whose kept nodes have the largest summed score. No health, no
// fit, no hysteresis, no explanation.
func prototypeSchedule(app *spec.Application, clusters []fleet.Cluster, nodes []fleet.Node) map[string]string {
	const (
		energy = iota
		price
		cpu
		memory
		storage
		pods
		bandwidth
		n
	)
	vals := make([][n]float64, len(nodes))
	for i := range nodes {
		nd := &nodes[i]
		e, _ := strconv.ParseFloat(nd.Labels[fleet.LabelEnergy], 64)
		p, _ := strconv.ParseFloat(nd.Labels[fleet.LabelPrice], 64)
		bw, _ := strconv.ParseFloat(nd.Labels[fleet.LabelBandwidth], 64)
		a := nd.Allocatable
		vals[i] = [n]float64{-e, -p, float64(a.MilliCPU), float64(a.MemoryBytes), float64(a.EphemeralStorage), float64(a.Pods), bw}
	}
	rank := make([][n]float64, len(nodes))
	order := make([]int, len(nodes))
	for c := range n {
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(vals[a][c], vals[b][c]) })
		for r, i := range order {
			rank[i][c] = float64(r)
		}
	}
	q := app.Spec.QoS
	if q.Balanced() {
		q = spec.QoS{Energy: 1, Cost: 1, Performance: 1}
	}
	score := make([]float64, len(nodes))
	mean := 0.0
	for i, r := range rank {
		score[i] = q.Energy*r[energy] + q.Cost*r[price] + q.Performance*(r[cpu]+r[memory]+r[storage]+r[pods]+r[bandwidth])
		mean += score[i] / float64(len(nodes))
	}
	sums := map[string]float64{}
	for i := range nodes {
		if score[i] >= mean {
			sums[nodes[i].Cluster] += score[i]
		}
	}
	out := map[string]string{}
	for _, comp := range app.Spec.Components {
		best, bestSum := "", -1.0
		for _, c := range clusters {
			if c.Tier == comp.Tier && sums[c.Name] > bestSum {
				best, bestSum = c.Name, sums[c.Name]
			}
		}
		out[comp.Name] = best
	}
	return out
}
