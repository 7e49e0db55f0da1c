package tui

import (
	"context"
	"errors"
	"sync"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

var testNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// fakeLead is an in-memory lead for the TUI: it answers from a snapshot,
// can be taken down, and wakes watches when the snapshot changes.
type fakeLead struct {
	mu       sync.Mutex
	snap     Snapshot
	down     bool
	changed  chan struct{}
	connects int
}

var _ leadclient.User = (*fakeLead)(nil)

var errDown = errors.New("dial tcp 127.0.0.11:7443: connect: connection refused")

func newFakeLead() *fakeLead {
	return &fakeLead{snap: testSnapshot(), changed: make(chan struct{})}
}

func (f *fakeLead) connect(context.Context) (*Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	if f.down {
		return nil, errDown
	}
	return &Conn{Client: f, Via: "https://127.0.0.11:7443"}, nil
}

func (f *fakeLead) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeLead) mutate(fn func(s *Snapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.snap)
	f.snap.Index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeLead) read() (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return Snapshot{}, errDown
	}
	return f.snap, nil
}

func (f *fakeLead) ListApps(context.Context) (*apiv1.AppList, error) {
	s, err := f.read()
	if err != nil {
		return nil, err
	}
	return &apiv1.AppList{Index: s.Index, Items: s.Apps}, nil
}

func (f *fakeLead) GetApp(_ context.Context, name string) (*apiv1.App, error) {
	s, err := f.read()
	if err != nil {
		return nil, err
	}
	for i := range s.Apps {
		if s.Apps[i].Spec.Metadata.Name == name {
			return &s.Apps[i], nil
		}
	}
	return nil, &apiv1.Error{Code: apiv1.CodeNotFound, Message: "not found"}
}

func (f *fakeLead) ApplyApp(context.Context, *spec.Application, bool) (*apiv1.ApplyResult, error) {
	return nil, errors.New("not used by the TUI")
}

func (f *fakeLead) DeleteApp(context.Context, string) (*apiv1.Ack, error) {
	return nil, errors.New("not used by the TUI")
}

func (f *fakeLead) ListClusters(context.Context) (*apiv1.ClusterList, error) {
	s, err := f.read()
	if err != nil {
		return nil, err
	}
	return &apiv1.ClusterList{Index: s.Index, Items: s.Clusters}, nil
}

func (f *fakeLead) ListNodes(context.Context, string) (*apiv1.NodeList, error) {
	s, err := f.read()
	if err != nil {
		return nil, err
	}
	return &apiv1.NodeList{Index: s.Index, Items: s.Nodes}, nil
}

func (f *fakeLead) RaftStatus(context.Context) (*apiv1.RaftStatus, error) {
	s, err := f.read()
	if err != nil {
		return nil, err
	}
	return s.Raft, nil
}

func (f *fakeLead) AddMember(context.Context, apiv1.MemberRequest) (*apiv1.Ack, error) {
	return nil, errors.New("not used by the TUI")
}

func (f *fakeLead) RemoveMember(context.Context, string) (*apiv1.Ack, error) {
	return nil, errors.New("not used by the TUI")
}

// Watch blocks until the snapshot changes past index, the lead goes down,
// wait passes or ctx ends, like the lead's long-poll.
func (f *fakeLead) Watch(ctx context.Context, index uint64, wait time.Duration) (*apiv1.WatchResult, error) {
	for {
		f.mu.Lock()
		down, cur, ch := f.down, f.snap.Index, f.changed
		f.mu.Unlock()
		if down {
			return nil, errDown
		}
		if cur > index {
			return &apiv1.WatchResult{Index: cur}, nil
		}
		select {
		case <-ch:
		case <-time.After(wait):
			return &apiv1.WatchResult{Index: cur}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func testSnapshot() Snapshot {
	yes, no := true, false
	reg := testNow.Add(-48 * time.Hour)
	node := func(cluster, name string, cpu int64, energy, price string, ready bool) fleet.Node {
		return fleet.Node{Cluster: cluster, Name: name,
			Labels:      map[string]string{fleet.LabelEnergy: energy, fleet.LabelPrice: price, fleet.LabelBandwidth: "52500000000"},
			Allocatable: fleet.Resources{MilliCPU: cpu * 1000, MemoryBytes: 8 << 30, Pods: 110},
			Requested:   fleet.Resources{MilliCPU: 1000, MemoryBytes: 1 << 30, Pods: 4},
			Ready:       ready, Reported: testNow.Add(-10 * time.Second)}
	}
	exp := &scheduler.Explanation{
		Component: "web", Tier: fleet.TierCloud, Weights: spec.QoS{Energy: 1},
		Requirements: spec.Requirements{Total: fleet.Resources{MilliCPU: 500, MemoryBytes: 256 << 20, Pods: 1}},
		Criteria:     []string{"energy", "price", "cpu"},
		Nodes: []scheduler.NodeScore{
			{Cluster: "cloud-a", Node: "a-1", Values: map[string]float64{"energy": 0.0024, "price": 16.4, "cpu": 6}, Ranks: map[string]float64{"energy": 2, "price": 2, "cpu": 1}, Score: 1, Kept: true},
			{Cluster: "cloud-b", Node: "b-1", Values: map[string]float64{"energy": 0.0027, "price": 32.8, "cpu": 10}, Ranks: map[string]float64{"energy": 1, "price": 1, "cpu": 2}, Score: 0.5},
		},
		Clusters: []scheduler.ClusterScore{
			{Cluster: "cloud-a", Score: 1, KeptNodes: 1, Outcome: scheduler.OutcomeChosen},
			{Cluster: "cloud-b", Score: 0.5, Outcome: scheduler.OutcomeLost, Reason: "lower score"},
		},
		Chosen: "cloud-a", Summary: "placed on cloud-a: lowest energy",
	}
	app := func(name string, comps ...string) apiv1.App {
		a := apiv1.App{Spec: spec.Application{APIVersion: spec.APIVersion, Kind: spec.Kind, Metadata: spec.Metadata{Name: name}},
			Generation: 1, Created: testNow.Add(-time.Hour)}
		for _, c := range comps {
			tier := fleet.TierCloud
			cluster := "cloud-a"
			if c == "cache" {
				tier, cluster = fleet.TierEdge, "edge-a"
			}
			a.Spec.Spec.Components = append(a.Spec.Spec.Components, spec.Component{Name: c, Tier: tier})
			p := scheduler.Placement{App: name, Component: c, Tier: tier, Cluster: cluster, Nodes: []string{cluster[:len(cluster)-2] + "-1"}, Generation: 1, Decided: testNow.Add(-time.Hour)}
			if c == "web" {
				p.Nodes, p.Explanation = []string{"a-1"}, exp
			}
			if c == "db" {
				p.Cluster, p.Nodes, p.Reason = "", nil, "no cloud cluster fits"
			}
			a.Placements = append(a.Placements, p)
			if p.Cluster != "" {
				a.Statuses = append(a.Statuses, fleet.ComponentStatus{App: name, Component: c, Cluster: cluster, Generation: 1, Phase: fleet.PhaseHealthy, Ready: 2, Desired: 2, Since: testNow.Add(-50 * time.Minute)})
			}
		}
		return a
	}
	return Snapshot{
		Index: 7,
		Apps:  []apiv1.App{app("shop", "web", "cache", "db"), app("blog", "web")},
		Clusters: []apiv1.ClusterInfo{
			{Cluster: fleet.Cluster{Name: "cloud-a", Tier: fleet.TierCloud, Role: fleet.RoleLead, Registered: reg}, Nodes: 1, ReadyNodes: 1, Alive: true, LastSeen: testNow.Add(-3 * time.Second)},
			{Cluster: fleet.Cluster{Name: "cloud-b", Tier: fleet.TierCloud, Role: fleet.RoleLead, Registered: reg}, Nodes: 1, ReadyNodes: 1, Alive: true, LastSeen: testNow.Add(-3 * time.Second)},
			{Cluster: fleet.Cluster{Name: "edge-a", Tier: fleet.TierEdge, Role: fleet.RoleMember, Registered: reg}, Nodes: 2, ReadyNodes: 1, Alive: false, LastSeen: testNow.Add(-2 * time.Minute)},
		},
		Nodes: []fleet.Node{
			node("cloud-a", "a-1", 6, "0.0024", "16.4", true),
			node("cloud-b", "b-1", 10, "0.0027", "32.8", true),
			node("edge-a", "e-1", 4, "0.0024", "0.0042", true),
			node("edge-a", "e-2", 4, "0.0024", "0.0042", false),
		},
		Raft: &apiv1.RaftStatus{ID: "lead-1", State: "Leader", Leader: "lead-1", Term: 4, LastIndex: 7, CommitIndex: 7, AppliedIndex: 7, KBHash: "ab12",
			Members: []apiv1.Member{
				{ID: "lead-1", RaftAddr: "127.0.0.11:7000", APIAddr: "https://127.0.0.11:7443", Suffrage: "Voter", Leader: true, Reachable: &yes},
				{ID: "lead-2", RaftAddr: "127.0.0.12:7000", APIAddr: "https://127.0.0.12:7443", Suffrage: "Voter", Reachable: &yes},
				{ID: "lead-3", RaftAddr: "127.0.0.13:7000", APIAddr: "https://127.0.0.13:7443", Suffrage: "Voter", Reachable: &no},
			}},
	}
}
