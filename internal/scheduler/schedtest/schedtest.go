// Package schedtest builds fleets and applications for scheduler tests:
// the paper's 9-cluster profile (3 tiers × {energy, cost, performance}
// flavoured clusters of 3 nodes), Bookinfo, and seeded random fleets. It is
// for tests only (the lead's included); it does no I/O.
package schedtest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// Now is a fixed instant tests can schedule at.
var Now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Flavour is what a cluster of the paper's profile is built for.
type Flavour string

// The paper's flavours, in the order cluster names use them.
const (
	Energy      Flavour = "energy"
	Cost        Flavour = "cost"
	Performance Flavour = "perf"
)

// Flavours lists the flavours in order.
var Flavours = []Flavour{Energy, Cost, Performance}

// Profile is a node type: its capacity and its QoS labels.
type Profile struct {
	MilliCPU     int64
	MemoryBytes  int64
	StorageBytes int64
	// Bandwidth, Energy and Price are label values as an agent reports them.
	Bandwidth, Energy, Price string
}

// The paper's node profiles (DESIGN.md, "Paper and reference facts").
// Storage is not in the paper: every profile gets the same, so it ties.
var Profiles = map[Flavour]Profile{
	Energy:      {6000, 7_200_000_000, 100 << 30, "52500000000", "0.0024042", "16.3884"},
	Cost:        {6000, 7_200_000_000, 100 << 30, "5000000000", "0.0025689", "0.0042"},
	Performance: {10000, 12_500_000_000, 100 << 30, "100000000000", "0.0027335", "32.7726"},
}

// ClusterName is the paper profile's name for a tier's flavoured cluster,
// e.g. "fog-energy".
func ClusterName(t fleet.Tier, f Flavour) string { return string(t) + "-" + string(f) }

// Endpoint is the endpoint the builders give a cluster.
func Endpoint(cluster string) string { return cluster + ".qonnect.test:443" }

// Cluster returns a registered cluster; cloud clusters are leads, as in the paper.
func Cluster(name string, t fleet.Tier, now time.Time) fleet.Cluster {
	role := fleet.RoleMember
	if t == fleet.TierCloud {
		role = fleet.RoleLead
	}
	return fleet.Cluster{Name: name, Tier: t, Role: role, Endpoint: Endpoint(name), Registered: now.Add(-time.Hour), LastReport: now}
}

// Node returns a healthy, empty, freshly reported amd64 node of a profile.
func Node(cluster, name string, p Profile, now time.Time) fleet.Node {
	return fleet.Node{
		Cluster:      cluster,
		Name:         name,
		Architecture: "amd64",
		Labels: map[string]string{
			fleet.LabelEnergy:    p.Energy,
			fleet.LabelPrice:     p.Price,
			fleet.LabelBandwidth: p.Bandwidth,
		},
		Allocatable: fleet.Resources{MilliCPU: p.MilliCPU, MemoryBytes: p.MemoryBytes, EphemeralStorage: p.StorageBytes, Pods: 110},
		Ready:       true,
		Reported:    now,
	}
}

// Nodes returns n nodes NAME-0..n-1 of a profile.
func Nodes(cluster string, n int, p Profile, now time.Time) []fleet.Node {
	out := make([]fleet.Node, n)
	for i := range out {
		out[i] = Node(cluster, cluster+"-"+strconv.Itoa(i), p, now)
	}
	return out
}

// PaperFleet is the paper's 9 clusters, cloud-energy … edge-perf, with
// nodes NAME-0..2 of their flavour's profile.
func PaperFleet(now time.Time) ([]fleet.Cluster, []fleet.Node) {
	var cs []fleet.Cluster
	var ns []fleet.Node
	for _, t := range fleet.Tiers {
		for _, f := range Flavours {
			name := ClusterName(t, f)
			cs = append(cs, Cluster(name, t, now))
			ns = append(ns, Nodes(name, 3, Profiles[f], now)...)
		}
	}
	return cs, ns
}

// Component returns a component of one Deployment with replicas pods,
// each requesting cpu and memory (Kubernetes quantities, "" for none).
func Component(name string, t fleet.Tier, cpu, memory string, replicas int) spec.Component {
	reqs := map[string]any{}
	if cpu != "" {
		reqs["cpu"] = cpu
	}
	if memory != "" {
		reqs["memory"] = memory
	}
	return spec.Component{Name: name, Tier: t, Resources: []spec.Object{{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"replicas": float64(replicas),
			"template": map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": name, "image": "example/" + name, "resources": map[string]any{"requests": reqs}},
			}}},
		},
	}}}
}

// App returns an application of the given components.
func App(name string, qos spec.QoS, comps ...spec.Component) *spec.Application {
	return &spec.Application{
		APIVersion: spec.APIVersion,
		Kind:       spec.Kind,
		Metadata:   spec.Metadata{Name: name},
		Spec:       spec.AppSpec{QoS: qos, Components: comps},
	}
}

// Bookinfo is the paper's sample split over the tiers: productpage on
// cloud, details and reviews on fog, ratings on edge.
func Bookinfo(qos spec.QoS) *spec.Application {
	return App("bookinfo", qos,
		Component("productpage", fleet.TierCloud, "500m", "512Mi", 1),
		Component("details", fleet.TierFog, "250m", "256Mi", 1),
		Component("reviews", fleet.TierFog, "500m", "512Mi", 2),
		Component("ratings", fleet.TierEdge, "250m", "256Mi", 1),
	)
}

// The QoS weightings tests use most.
var (
	EnergyOnly      = spec.QoS{Energy: 1}
	CostOnly        = spec.QoS{Cost: 1}
	PerformanceOnly = spec.QoS{Performance: 1}
	Balanced        = spec.QoS{}
)

// Faults are how often RandomFleet makes nodes unfit, each in [0,1].
type Faults struct {
	NotReady, Cordoned, Pressure, Stale, BadLabel, OtherArch float64
}

// RandomFleet returns clusters c0000… (tiers in turn) of nodesPer nodes
// each, of the paper's profiles with some spread, partly used, with the
// given faults, all drawn from seed: the same seed gives the same fleet.
func RandomFleet(seed uint64, clusters, nodesPer int, f Faults, now time.Time) ([]fleet.Cluster, []fleet.Node) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cs := make([]fleet.Cluster, clusters)
	ns := make([]fleet.Node, 0, clusters*nodesPer)
	for c := range cs {
		name := fmt.Sprintf("c%04d", c)
		cs[c] = Cluster(name, fleet.Tiers[c%len(fleet.Tiers)], now)
		flavour := Flavours[rng.IntN(len(Flavours))]
		for i := range nodesPer {
			p := Profiles[flavour]
			p.MilliCPU = p.MilliCPU / 2 * int64(1+rng.IntN(4))
			p.MemoryBytes = p.MemoryBytes / 2 * int64(1+rng.IntN(4))
			p.Energy = strconv.FormatFloat(0.0024+rng.Float64()*0.0004, 'f', 7, 64)
			p.Price = strconv.FormatFloat(rng.Float64()*40, 'f', 4, 64)
			p.Bandwidth = strconv.Itoa((1 + rng.IntN(100)) * 1_000_000_000)
			n := Node(name, fmt.Sprintf("%s-%d", name, i), p, now)
			n.Requested = fleet.Resources{
				MilliCPU:    n.Allocatable.MilliCPU * int64(rng.IntN(80)) / 100,
				MemoryBytes: n.Allocatable.MemoryBytes * int64(rng.IntN(80)) / 100,
				Pods:        int64(rng.IntN(60)),
			}
			n.Ready = rng.Float64() >= f.NotReady
			n.Unschedulable = rng.Float64() < f.Cordoned
			if rng.Float64() < f.Pressure {
				switch rng.IntN(3) {
				case 0:
					n.MemoryPressure = true
				case 1:
					n.DiskPressure = true
				default:
					n.PIDPressure = true
				}
			}
			if rng.Float64() < f.Stale {
				n.Reported = now.Add(-time.Duration(3+rng.IntN(60)) * time.Minute)
			}
			if rng.Float64() < f.BadLabel {
				if rng.IntN(2) == 0 {
					delete(n.Labels, fleet.LabelEnergy)
				} else {
					n.Labels[fleet.LabelPrice] = "cheap"
				}
			}
			if rng.Float64() < f.OtherArch {
				n.Architecture = "arm64"
			}
			ns = append(ns, n)
		}
	}
	return cs, ns
}

// RandomApp returns an application of 1–5 components over random tiers
// with random requests and a random weighting, drawn from seed.
func RandomApp(seed uint64, name string) *spec.Application {
	rng := rand.New(rand.NewPCG(seed, seed^0x51ed2701f3a5c7b9))
	qos := spec.QoS{}
	if rng.IntN(4) > 0 {
		qos = spec.QoS{Energy: float64(rng.IntN(5)) / 4, Cost: float64(rng.IntN(5)) / 4, Performance: float64(rng.IntN(5)) / 4}
	}
	n := 1 + rng.IntN(5)
	comps := make([]spec.Component, n)
	for i := range comps {
		comps[i] = Component(fmt.Sprintf("c%d", i), fleet.Tiers[rng.IntN(len(fleet.Tiers))],
			fmt.Sprintf("%dm", 100*(1+rng.IntN(40))), fmt.Sprintf("%dMi", 128*(1+rng.IntN(32))), 1+rng.IntN(4))
	}
	return App(name, qos, comps...)
}
