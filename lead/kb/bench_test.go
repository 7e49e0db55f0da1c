package kb

import (
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

// scaleKB fills a KB with clusters × nodesPer nodes and apps of three
// components each, every component placed with an explanation of the size
// the scheduler stores (a dozen nodes, the tier's clusters).
func scaleKB(tb testing.TB, clusters, nodesPer, apps int) *KB {
	k := New(nil)
	var idx uint64
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	apply := func(t Type, p any) {
		idx++
		res := k.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: MustEncode(t, now, p)}).(*Result)
		if res.Err != nil {
			tb.Fatal(res.Err)
		}
	}
	tiers := fleet.Tiers
	for c := range clusters {
		name := fmt.Sprintf("cluster-%04d", c)
		apply(TypeRegisterCluster, RegisterCluster{Cluster: fleet.Cluster{Name: name, Tier: tiers[c%3], Endpoint: name + ".example.net:443",
			Labels: map[string]string{"region": fmt.Sprintf("r%d", c%7)}}})
		var nodes []fleet.Node
		for n := range nodesPer {
			nodes = append(nodes, fleet.Node{Name: fmt.Sprintf("node-%03d", n), Architecture: "amd64", Ready: true,
				Labels:      map[string]string{fleet.LabelEnergy: "0.0024042", fleet.LabelPrice: "16.3884", fleet.LabelBandwidth: "52500000000", "kubernetes.io/hostname": fmt.Sprintf("node-%03d", n)},
				Allocatable: fleet.Resources{MilliCPU: 6000, MemoryBytes: 7_200_000_000, EphemeralStorage: 100_000_000_000, Pods: 110},
				Requested:   fleet.Resources{MilliCPU: 1500, MemoryBytes: 2_000_000_000, Pods: 12}})
		}
		apply(TypeReportNodes, ReportNodes{Cluster: name, Full: true, Nodes: nodes})
	}
	for a := range apps {
		name := fmt.Sprintf("app-%05d", a)
		app := spec.Application{APIVersion: spec.APIVersion, Kind: spec.Kind, Metadata: spec.Metadata{Name: name}}
		app.Spec.QoS = spec.QoS{Energy: 0.5, Cost: 0.25, Performance: 0.25}
		for ci, comp := range []string{"frontend", "backend", "cache"} {
			app.Spec.Components = append(app.Spec.Components, spec.Component{Name: comp, Tier: tiers[ci], Resources: []spec.Object{
				{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": comp},
					"spec": map[string]any{"replicas": 2.0, "template": map[string]any{"spec": map[string]any{"containers": []any{
						map[string]any{"name": comp, "image": "registry.example/" + comp + ":1.2.3",
							"resources": map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}}}}}}}},
				{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": comp},
					"spec": map[string]any{"ports": []any{map[string]any{"port": 80.0}}}},
			}})
		}
		apply(TypePutApp, PutApp{Spec: app})
		var pls []scheduler.Placement
		exps := map[string][]byte{}
		for ci, comp := range app.Spec.Components {
			cl := fmt.Sprintf("cluster-%04d", (a*3+ci*1)%clusters/3*3+ci%3)
			ex := &scheduler.Explanation{Component: comp.Name, Tier: comp.Tier, Weights: app.Spec.QoS, Chosen: cl,
				Criteria: []string{"energy", "price", "cpu", "memory", "bandwidth", "storage"}, Summary: "placed on " + cl + ": best energy score"}
			for n := range 12 {
				ex.Nodes = append(ex.Nodes, scheduler.NodeScore{Cluster: cl, Node: fmt.Sprintf("node-%03d", n), Score: 3.5, Kept: n < 6,
					Values: map[string]float64{"energy": 0.0024, "price": 16.38, "cpu": 4500, "memory": 5.2e9, "bandwidth": 5.25e10, "storage": 1e11},
					Ranks:  map[string]float64{"energy": 3, "price": 2, "cpu": 4, "memory": 4, "bandwidth": 3, "storage": 1}})
			}
			for k := range 6 {
				ex.Clusters = append(ex.Clusters, scheduler.ClusterScore{Cluster: fmt.Sprintf("cluster-%04d", k*3+ci), Score: 2.5, KeptNodes: 6, Outcome: scheduler.OutcomeLost, Reason: "scores 2.5 < 3.5"})
			}
			z, err := CompressExplanation(ex)
			if err != nil {
				tb.Fatal(err)
			}
			exps[comp.Name] = z
			pls = append(pls, scheduler.Placement{Component: comp.Name, Tier: comp.Tier, Cluster: cl, Nodes: []string{"node-001", "node-002"}, Generation: 1, Decided: now})
		}
		apply(TypeSetPlacements, SetPlacements{App: name, Generation: 1, Placements: pls, Explanations: exps})
	}
	return k
}

type countingSink struct {
	n int64
}

func (s *countingSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *countingSink) Close() error                { return nil }
func (s *countingSink) Cancel() error               { return nil }
func (s *countingSink) ID() string                  { return "count" }

var _ io.Writer = (*countingSink)(nil)

// BenchmarkSnapshotAtScale: snapshot size and time, and the KB's heap, at
// 1,000 clusters / 20,000 nodes / 5,000 applications.
func BenchmarkSnapshotAtScale(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	k := scaleKB(b, 1000, 20, 5000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)

	var size int64
	var snapTime, persistTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		snap, err := k.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var sink countingSink
		if err := snap.Persist(&sink); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		snapTime += t1.Sub(t0)
		persistTime += t2.Sub(t1)
		size = sink.n
	}
	b.StopTimer()
	b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
	b.ReportMetric(float64(snapTime.Microseconds())/float64(b.N)/1000, "copy-under-lock-ms")
	b.ReportMetric(float64(persistTime.Milliseconds())/float64(b.N), "persist-ms")
	b.ReportMetric(heap, "kb-heap-MiB")
	runtime.KeepAlive(k)
}

// BenchmarkRestoreAtScale: time to restore the same KB from its snapshot.
func BenchmarkRestoreAtScale(b *testing.B) {
	k := scaleKB(b, 1000, 20, 5000)
	snap, _ := k.Snapshot()
	var sink memSink
	if err := snap.(*fsmSnapshot).Persist(&sink); err != nil {
		b.Fatal(err)
	}
	data := sink.Bytes()
	b.ResetTimer()
	for range b.N {
		other := New(nil)
		if err := other.Restore(io.NopCloser(bytesReader(data))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashAtScale: the cost of RaftStatus.KBHash at scale.
func BenchmarkHashAtScale(b *testing.B) {
	k := scaleKB(b, 1000, 20, 5000)
	b.ResetTimer()
	for range b.N {
		k.Hash()
	}
}
