package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// testNow is the clock every command test runs at.
var testNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// fakeLead speaks the lead's /v1 user API from memory. Tests look at
// what reached it (requests) and can make any path fail.
type fakeLead struct {
	mu       sync.Mutex
	index    uint64
	apps     map[string]*apiv1.App
	clusters []apiv1.ClusterInfo
	nodes    []fleet.Node
	raft     apiv1.RaftStatus
	requests []string
	// fail maps "METHOD /path" to the error answered.
	fail map[string]apiv1.Error
	// onApply, when set, decides the answer to POST /v1/apps.
	onApply func(a *spec.Application, dryRun bool) apiv1.ApplyResult
	// changed is closed and replaced whenever index moves, waking watches.
	changed chan struct{}
}

func newFakeLead() *fakeLead {
	f := &fakeLead{index: 42, apps: map[string]*apiv1.App{}, fail: map[string]apiv1.Error{}, changed: make(chan struct{})}
	f.clusters, f.nodes = testFleet()
	f.raft = testRaft()
	app := testApp()
	f.apps[app.Spec.Metadata.Name] = &app
	return f
}

func (f *fakeLead) start(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

// bump moves the index, as a committed write does.
func (f *fakeLead) bump() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

// mutate changes the state under the lock and wakes watchers.
func (f *fakeLead) mutate(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	f.bump()
}

func (f *fakeLead) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func statusOf(code string) int {
	switch code {
	case apiv1.CodeBadRequest:
		return 400
	case apiv1.CodeForbidden:
		return 403
	case apiv1.CodeNotFound:
		return 404
	case apiv1.CodeConflict:
		return 409
	case apiv1.CodeNotLeader, apiv1.CodeUnavailable:
		return 503
	}
	return 500
}

func (f *fakeLead) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	key := r.Method + " " + r.URL.Path
	f.requests = append(f.requests, key)
	if e, ok := f.fail[key]; ok {
		f.mu.Unlock()
		writeJSON(w, statusOf(e.Code), e)
		return
	}
	w.Header().Set(apiv1.HeaderIndex, strconv.FormatUint(f.index, 10))
	switch {
	case key == "GET /v1/watch":
		idx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
		wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
		if err != nil {
			wait = apiv1.DefaultWait
		}
		if f.index > idx {
			out := apiv1.WatchResult{Index: f.index}
			f.mu.Unlock()
			writeJSON(w, 200, out)
			return
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
		out := apiv1.WatchResult{Index: f.index}
		f.mu.Unlock()
		writeJSON(w, 200, out)
		return
	}
	defer f.mu.Unlock()
	switch {
	case key == "GET /v1/apps":
		out := apiv1.AppList{Index: f.index}
		for _, a := range f.apps {
			out.Items = append(out.Items, *a)
		}
		writeJSON(w, 200, out)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/apps/"):
		name := strings.TrimPrefix(r.URL.Path, "/v1/apps/")
		a, ok := f.apps[name]
		if !ok {
			writeJSON(w, 404, apiv1.Error{Code: apiv1.CodeNotFound, Message: fmt.Sprintf("application %q not found", name)})
			return
		}
		writeJSON(w, 200, a)
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/v1/apps/"):
		name := strings.TrimPrefix(r.URL.Path, "/v1/apps/")
		if _, ok := f.apps[name]; !ok {
			writeJSON(w, 404, apiv1.Error{Code: apiv1.CodeNotFound, Message: fmt.Sprintf("application %q not found", name)})
			return
		}
		delete(f.apps, name)
		f.bump()
		writeJSON(w, 200, apiv1.Ack{Index: f.index})
	case key == "POST /v1/apps":
		var a spec.Application
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			writeJSON(w, 400, apiv1.Error{Code: apiv1.CodeBadRequest, Message: err.Error()})
			return
		}
		if err := spec.Validate(&a, spec.ValidateOptions{}); err != nil {
			writeJSON(w, 400, apiv1.Error{Code: apiv1.CodeBadRequest, Message: err.Error()})
			return
		}
		dry := r.URL.Query().Get("dryRun") == "true"
		var res apiv1.ApplyResult
		if f.onApply != nil {
			res = f.onApply(&a, dry)
		} else {
			res = f.apply(&a, dry)
		}
		writeJSON(w, 200, res)
	case key == "GET /v1/clusters":
		writeJSON(w, 200, apiv1.ClusterList{Index: f.index, Items: f.clusters})
	case key == "GET /v1/nodes":
		out := apiv1.NodeList{Index: f.index}
		c := r.URL.Query().Get("cluster")
		for _, n := range f.nodes {
			if c == "" || n.Cluster == c {
				out.Items = append(out.Items, n)
			}
		}
		writeJSON(w, 200, out)
	case key == "GET /v1/raft":
		writeJSON(w, 200, f.raft)
	case key == "POST /v1/raft/members":
		var m apiv1.MemberRequest
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m.ID == "" {
			writeJSON(w, 400, apiv1.Error{Code: apiv1.CodeBadRequest, Message: "bad member request"})
			return
		}
		f.raft.Members = append(f.raft.Members, apiv1.Member{ID: m.ID, RaftAddr: m.RaftAddr, APIAddr: m.APIAddr, Suffrage: "Voter"})
		writeJSON(w, 200, apiv1.Ack{Index: f.index})
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/v1/raft/members/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/raft/members/")
		for i, m := range f.raft.Members {
			if m.ID == id {
				f.raft.Members = append(f.raft.Members[:i], f.raft.Members[i+1:]...)
				writeJSON(w, 200, apiv1.Ack{Index: f.index})
				return
			}
		}
		writeJSON(w, 404, apiv1.Error{Code: apiv1.CodeNotFound, Message: fmt.Sprintf("lead %q is not a member", id)})
	default:
		writeJSON(w, 404, apiv1.Error{Code: apiv1.CodeNotFound, Message: "no route " + key})
	}
}

// apply stores (or, dry, only computes) an application placed on the
// first cluster of each component's tier.
func (f *fakeLead) apply(a *spec.Application, dry bool) apiv1.ApplyResult {
	prev, exists := f.apps[a.Metadata.Name]
	res := apiv1.ApplyResult{Result: "created", DryRun: dry}
	app := apiv1.App{Spec: *a, Generation: 1, Created: testNow, Updated: testNow}
	if exists {
		res.Result = "configured"
		app.Generation, app.Created = prev.Generation+1, prev.Created
		if specEqual(prev.Spec, *a) {
			res.Result = "unchanged"
			app = *prev
		}
	}
	if res.Result != "unchanged" {
		for _, c := range a.Spec.Components {
			app.Placements = append(app.Placements, f.place(a.Metadata.Name, c, app.Generation))
		}
	}
	if !dry && res.Result != "unchanged" {
		f.apps[a.Metadata.Name] = &app
		f.bump()
	}
	res.Index, res.App = f.index, app
	return res
}

func specEqual(a, b spec.Application) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func (f *fakeLead) place(app string, c spec.Component, gen int64) scheduler.Placement {
	p := scheduler.Placement{App: app, Component: c.Name, Tier: c.Tier, Generation: gen, Decided: testNow}
	for _, cl := range f.clusters {
		if cl.Tier == c.Tier {
			p.Cluster = cl.Name
			for _, n := range f.nodes {
				if n.Cluster == cl.Name {
					p.Nodes = append(p.Nodes, n.Name)
					break
				}
			}
			p.Explanation = &scheduler.Explanation{Component: c.Name, Tier: c.Tier, Chosen: cl.Name,
				Clusters: []scheduler.ClusterScore{{Cluster: cl.Name, Score: 0.8, KeptNodes: 1, Outcome: scheduler.OutcomeChosen}},
				Summary:  "placed on " + cl.Name + ": best score among the " + string(c.Tier) + " clusters"}
			return p
		}
	}
	p.Reason = "no " + string(c.Tier) + " cluster is registered"
	return p
}

// testFleet is a small version of the paper's: one cluster per tier
// flavour that the tests need.
func testFleet() ([]apiv1.ClusterInfo, []fleet.Node) {
	reg := testNow.Add(-72 * time.Hour)
	cl := func(name string, tier fleet.Tier, role fleet.Role, nodes, ready int, alive bool) apiv1.ClusterInfo {
		return apiv1.ClusterInfo{
			Cluster:    fleet.Cluster{Name: name, Tier: tier, Role: role, Endpoint: "https://" + name + ".example:443", Registered: reg, LastReport: testNow.Add(-time.Minute)},
			Nodes:      nodes,
			ReadyNodes: ready,
			Alive:      alive,
			LastSeen:   testNow.Add(-5 * time.Second),
		}
	}
	clusters := []apiv1.ClusterInfo{
		cl("edge-energy", fleet.TierEdge, fleet.RoleMember, 1, 1, true),
		cl("cloud-energy", fleet.TierCloud, fleet.RoleLead, 2, 2, true),
		cl("cloud-perf", fleet.TierCloud, fleet.RoleLead, 1, 1, true),
		cl("fog-cost", fleet.TierFog, fleet.RoleMember, 1, 0, false),
	}
	node := func(cluster, name string, cpu, memGi int64, energy, price, bw string, ready bool) fleet.Node {
		return fleet.Node{
			Cluster: cluster, Name: name, Architecture: "amd64",
			Labels:      map[string]string{fleet.LabelEnergy: energy, fleet.LabelPrice: price, fleet.LabelBandwidth: bw, fleet.LabelLocation: "eu-west"},
			Allocatable: fleet.Resources{MilliCPU: cpu * 1000, MemoryBytes: memGi << 30, Pods: 110},
			Requested:   fleet.Resources{MilliCPU: 500, MemoryBytes: 512 << 20, Pods: 3},
			Ready:       ready,
			Reported:    testNow.Add(-10 * time.Second),
		}
	}
	nodes := []fleet.Node{
		node("cloud-energy", "ce-1", 6, 7, "0.0024042", "16.3884", "52500000000", true),
		node("cloud-energy", "ce-2", 6, 7, "0.0024042", "16.3884", "52500000000", true),
		node("cloud-perf", "cp-1", 10, 12, "0.0027335", "32.7726", "100000000000", true),
		node("edge-energy", "ee-1", 6, 7, "0.0024042", "16.3884", "52500000000", true),
		node("fog-cost", "fc-1", 6, 7, "0.0025689", "0.0042", "5000000000", false),
	}
	nodes[4].MemoryPressure = true
	return clusters, nodes
}

func testRaft() apiv1.RaftStatus {
	yes, no := true, false
	return apiv1.RaftStatus{
		ID: "lead-1", State: "Leader", Leader: "lead-1", LeaderAPI: "https://127.0.0.11:7443",
		Term: 3, LastIndex: 42, CommitIndex: 42, AppliedIndex: 42, KBHash: "9f2c1e",
		Members: []apiv1.Member{
			{ID: "lead-2", RaftAddr: "127.0.0.12:7000", APIAddr: "https://127.0.0.12:7443", Suffrage: "Voter", Reachable: &yes},
			{ID: "lead-1", RaftAddr: "127.0.0.11:7000", APIAddr: "https://127.0.0.11:7443", Suffrage: "Voter", Leader: true, Reachable: &yes},
			{ID: "lead-3", RaftAddr: "127.0.0.13:7000", APIAddr: "https://127.0.0.13:7443", Suffrage: "Voter", Reachable: &no},
		},
	}
}

func deploy(name string) spec.Object {
	return spec.Object{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"replicas": float64(1), "template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": name, "image": "example/" + name, "resources": map[string]any{"requests": map[string]any{"cpu": "500m", "memory": "256Mi"}}}},
		}}},
	}
}

// testApp is Bookinfo on the test fleet: productpage healthy on cloud,
// reviews migrating, details pending, ratings failed.
func testApp() apiv1.App {
	created := testNow.Add(-2 * time.Hour)
	a := apiv1.App{
		Spec: spec.Application{
			APIVersion: spec.APIVersion, Kind: spec.Kind,
			Metadata: spec.Metadata{Name: "bookinfo"},
			Spec: spec.AppSpec{
				QoS: spec.QoS{Energy: 1},
				Components: []spec.Component{
					{Name: "productpage", Tier: fleet.TierCloud, Resources: []spec.Object{deploy("productpage")}},
					{Name: "reviews", Tier: fleet.TierCloud, Resources: []spec.Object{deploy("reviews")}},
					{Name: "details", Tier: fleet.TierFog, Resources: []spec.Object{deploy("details")}},
					{Name: "ratings", Tier: fleet.TierEdge, Resources: []spec.Object{deploy("ratings")}},
				},
			},
		},
		Generation: 2,
		Created:    created,
		Updated:    testNow.Add(-30 * time.Minute),
	}
	exp := &scheduler.Explanation{
		Component: "productpage", Tier: fleet.TierCloud, Weights: spec.QoS{Energy: 1},
		Requirements: spec.Requirements{Total: fleet.Resources{MilliCPU: 500, MemoryBytes: 256 << 20, Pods: 1}, LargestPod: fleet.Resources{MilliCPU: 500, MemoryBytes: 256 << 20, Pods: 1}},
		Criteria:     []string{"energy", "price", "cpu", "memory", "bandwidth", "storage"},
		RankedNodes:  2, Mean: 0.75,
		Nodes: []scheduler.NodeScore{
			{Cluster: "cloud-energy", Node: "ce-1", Values: map[string]float64{"energy": 0.0024042, "price": 16.3884, "cpu": 6, "memory": 7 << 30, "bandwidth": 52.5e9, "storage": 0}, Ranks: map[string]float64{"energy": 2, "price": 2, "cpu": 1, "memory": 1, "bandwidth": 1, "storage": 1}, Goals: scheduler.Goals{Energy: 1, Cost: 1, Performance: 0}, Score: 1, Kept: true},
			{Cluster: "cloud-perf", Node: "cp-1", Values: map[string]float64{"energy": 0.0027335, "price": 32.7726, "cpu": 10, "memory": 12 << 30, "bandwidth": 100e9, "storage": 0}, Ranks: map[string]float64{"energy": 1, "price": 1, "cpu": 2, "memory": 2, "bandwidth": 2, "storage": 1}, Goals: scheduler.Goals{Energy: 0, Cost: 0, Performance: 0.75}, Score: 0.5, Kept: false},
		},
		Clusters: []scheduler.ClusterScore{
			{Cluster: "cloud-energy", Score: 1, KeptNodes: 1, Outcome: scheduler.OutcomeChosen},
			{Cluster: "cloud-perf", Score: 0.5, KeptNodes: 0, Outcome: scheduler.OutcomeLost, Reason: "no node at or above the mean score"},
		},
		Chosen:  "cloud-energy",
		Summary: "placed on cloud-energy: lowest energy cost (score 1.000 vs 0.500)",
	}
	a.Placements = []scheduler.Placement{
		{App: "bookinfo", Component: "productpage", Tier: fleet.TierCloud, Cluster: "cloud-energy", Nodes: []string{"ce-1"}, Generation: 2, Decided: created, Explanation: exp},
		{App: "bookinfo", Component: "reviews", Tier: fleet.TierCloud, Cluster: "cloud-energy", Nodes: []string{"ce-2"}, From: "cloud-perf", FromNodes: []string{"cp-1"}, Generation: 2, Reason: "QoS changed: cloud-energy scores 1.000 vs 0.500", Decided: testNow.Add(-30 * time.Minute)},
		{App: "bookinfo", Component: "details", Tier: fleet.TierFog, Generation: 2, Reason: "no fog cluster fits: fog-cost: memory pressure", Decided: testNow.Add(-30 * time.Minute)},
		{App: "bookinfo", Component: "ratings", Tier: fleet.TierEdge, Cluster: "edge-energy", Nodes: []string{"ee-1"}, Generation: 2, Decided: created},
	}
	a.Statuses = []fleet.ComponentStatus{
		{App: "bookinfo", Component: "productpage", Cluster: "cloud-energy", Generation: 2, Phase: fleet.PhaseHealthy, Ready: 1, Desired: 1, Since: testNow.Add(-110 * time.Minute)},
		{App: "bookinfo", Component: "reviews", Cluster: "cloud-energy", Generation: 2, Phase: fleet.PhaseProgressing, Ready: 0, Desired: 1, Since: testNow.Add(-29 * time.Minute), Message: "0 of 1 replicas available"},
		{App: "bookinfo", Component: "reviews", Cluster: "cloud-perf", Generation: 1, Phase: fleet.PhaseHealthy, Ready: 1, Desired: 1, Since: created},
		{App: "bookinfo", Component: "ratings", Cluster: "edge-energy", Generation: 2, Phase: fleet.PhaseFailed, Message: "ImagePullBackOff", Since: testNow.Add(-5 * time.Minute)},
	}
	a.Events = []apiv1.Event{
		{Time: created, Component: "productpage", Reason: "Placed", Message: "placed on cloud-energy"},
		{Time: testNow.Add(-30 * time.Minute), Reason: "Updated", Message: "generation 2"},
		{Time: testNow.Add(-30 * time.Minute), Component: "reviews", Reason: "Migrating", Message: "cloud-perf -> cloud-energy"},
		{Time: testNow.Add(-30 * time.Minute), Component: "details", Reason: "Pending", Message: "no fog cluster fits"},
	}
	return a
}

// result is what one command run left behind.
type result struct {
	out, errOut string
	err         error
}

// run executes the plugin with args against the lead at leadURL (none
// when empty), the environment env, and stdin.
func run(t *testing.T, leadURL string, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	return runCtx(context.Background(), t, leadURL, env, stdin, args...)
}

func runCtx(ctx context.Context, t *testing.T, leadURL string, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	cmd := NewCmdRootWithEnv(streams, Env{
		Getenv:    func(k string) string { return env[k] },
		Now:       func() time.Time { return testNow },
		Interrupt: func(ctx context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(ctx) },
	})
	if leadURL != "" {
		args = append([]string{"--lead", leadURL}, args...)
	}
	// A kubeconfig that does not exist: no test may reach a real cluster.
	args = append([]string{"--kubeconfig", filepath.Join(t.TempDir(), "no-kubeconfig")}, args...)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return result{out: out.String(), errOut: errOut.String(), err: err}
}

// golden compares got with testdata/NAME.golden, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (run go test ./plugin -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
