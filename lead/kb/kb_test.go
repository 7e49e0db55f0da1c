package kb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// harness applies commands to a KB with increasing indexes and times.
type harness struct {
	t     *testing.T
	kb    *KB
	index uint64
	now   time.Time
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, kb: New(nil), now: t0}
}

func (h *harness) apply(typ Type, p any) *Result {
	h.t.Helper()
	h.index++
	h.now = h.now.Add(time.Second)
	data := MustEncode(typ, h.now, p)
	res, ok := h.kb.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data}).(*Result)
	if !ok {
		h.t.Fatalf("Apply returned %T", res)
	}
	return res
}

func (h *harness) ok(typ Type, p any) *Result {
	h.t.Helper()
	res := h.apply(typ, p)
	if res.Err != nil {
		h.t.Fatalf("%s: %v", typ, res.Err)
	}
	return res
}

func testApp(name string, qos spec.QoS, comps ...string) spec.Application {
	a := spec.Application{APIVersion: spec.APIVersion, Kind: spec.Kind, Metadata: spec.Metadata{Name: name}}
	a.Spec.QoS = qos
	for _, c := range comps {
		a.Spec.Components = append(a.Spec.Components, spec.Component{
			Name: c, Tier: fleet.TierEdge,
			Resources: []spec.Object{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": c}}},
		})
	}
	return a
}

func cluster(name string) fleet.Cluster {
	return fleet.Cluster{Name: name, Tier: fleet.TierEdge, Role: fleet.RoleMember, Endpoint: name + ".example:443"}
}

func (h *harness) state() *State {
	st, _ := h.kb.View()
	return st
}

func TestRegisterCluster(t *testing.T) {
	h := newHarness(t)
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: cluster("a")})
	c := h.state().Clusters["a"]
	if c == nil || c.Registered != h.now || c.Endpoint != "a.example:443" {
		t.Fatalf("cluster = %+v", c)
	}
	reg := c.Registered
	// Same facts again: idempotent, timestamps untouched.
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: cluster("a")})
	if c2 := h.state().Clusters["a"]; c2 != c {
		t.Fatalf("unchanged registration replaced the cluster: %+v", c2)
	}
	// New endpoint: LastReport moves, Registered stays.
	c3 := cluster("a")
	c3.Endpoint = "new:443"
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: c3})
	got := h.state().Clusters["a"]
	if got.Registered != reg || got.LastReport != h.now || got.Endpoint != "new:443" {
		t.Fatalf("after update = %+v", got)
	}
	if res := h.apply(TypeRegisterCluster, RegisterCluster{}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("empty name: err = %v", res.Err)
	}
}

func TestReportNodes(t *testing.T) {
	h := newHarness(t)
	if res := h.apply(TypeReportNodes, ReportNodes{Cluster: "x", Nodes: []fleet.Node{{Name: "n"}}}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("unknown cluster: err = %v", res.Err)
	}
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: cluster("a")})
	h.ok(TypeReportNodes, ReportNodes{Cluster: "a", Full: true, Nodes: []fleet.Node{{Name: "n1", Cluster: "other"}, {Name: "n2"}}})
	nodes := h.state().NodeList("a")
	if len(nodes) != 2 || nodes[0].Cluster != "a" || nodes[0].Reported != h.now {
		t.Fatalf("nodes = %+v", nodes)
	}
	h.ok(TypeReportNodes, ReportNodes{Cluster: "a", Nodes: []fleet.Node{{Name: "n3"}}, Deleted: []string{"n1"}})
	if got := names(h.state().NodeList("")); got != "n2,n3" {
		t.Fatalf("after partial report: %s", got)
	}
	h.ok(TypeReportNodes, ReportNodes{Cluster: "a", Full: true, Nodes: []fleet.Node{{Name: "n4"}}})
	if got := names(h.state().NodeList("a")); got != "n4" {
		t.Fatalf("after full report: %s", got)
	}
	if res := h.apply(TypeReportNodes, ReportNodes{Cluster: "a", Nodes: []fleet.Node{{}}}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("empty node name: err = %v", res.Err)
	}
}

func names(nodes []fleet.Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, ",")
}

// placed sets up cluster a and b, app "shop" with components web and db, web on a.
func placed(t *testing.T) *harness {
	h := newHarness(t)
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: cluster("a")})
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: cluster("b")})
	h.ok(TypePutApp, PutApp{Spec: testApp("shop", spec.QoS{}, "web", "db")})
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: 0,
		Placements: []scheduler.Placement{{Component: "web", Cluster: "a", Nodes: []string{"n1"}, Generation: 1}}})
	return h
}

func TestPutApp(t *testing.T) {
	h := newHarness(t)
	res := h.ok(TypePutApp, PutApp{Spec: testApp("shop", spec.QoS{}, "web")})
	if res.Outcome != "created" || res.Generation != 1 {
		t.Fatalf("create: %+v", res)
	}
	res = h.ok(TypePutApp, PutApp{Spec: testApp("shop", spec.QoS{}, "web")})
	if res.Outcome != "unchanged" || res.Generation != 1 {
		t.Fatalf("same spec: %+v", res)
	}
	res = h.ok(TypePutApp, PutApp{Spec: testApp("shop", spec.QoS{Energy: 1}, "web")})
	if res.Outcome != "configured" || res.Generation != 2 {
		t.Fatalf("update: %+v", res)
	}
	app := h.state().Apps["shop"]
	sp, err := app.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if app.Created == app.Updated || app.Updated != h.now || sp.Spec.QoS.Energy != 1 || app.Name != "shop" || app.Namespace != "shop" {
		t.Fatalf("app = %+v", app)
	}
	stale := int64(1)
	if res := h.apply(TypePutApp, PutApp{Spec: testApp("shop", spec.QoS{Cost: 1}, "web"), ExpectGeneration: &stale}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("stale generation: err = %v", res.Err)
	}
	if h.state().Apps["shop"].Generation != 2 {
		t.Fatal("a rejected write changed the application")
	}
	zero := int64(0)
	if res := h.apply(TypePutApp, PutApp{Spec: testApp("shop", spec.QoS{}, "web"), ExpectGeneration: &zero}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("create-only on existing: err = %v", res.Err)
	}
	if res := h.apply(TypePutApp, PutApp{}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("empty: err = %v", res.Err)
	}
}

func TestPutAppDropsRemovedComponents(t *testing.T) {
	h := placed(t)
	h.ok(TypeReportStatus, ReportStatus{Cluster: "a", Statuses: []fleet.ComponentStatus{{App: "shop", Component: "web", Generation: 1, Phase: fleet.PhaseHealthy}}})
	before := h.state().AssignmentIndex("a")
	h.ok(TypePutApp, PutApp{Spec: testApp("shop", spec.QoS{}, "db")})
	st := h.state()
	app := st.Apps["shop"]
	if app.Placements["web"] != nil || len(app.Statuses) != 0 {
		t.Fatalf("removed component kept: %+v %+v", app.Placements, app.Statuses)
	}
	if st.AssignmentIndex("a") <= before || len(st.Assignments("a")) != 0 {
		t.Fatalf("cluster a not told: index %d→%d, %+v", before, st.AssignmentIndex("a"), st.Assignments("a"))
	}
}

func TestDeleteApp(t *testing.T) {
	h := placed(t)
	if res := h.apply(TypeDeleteApp, DeleteApp{Name: "nope"}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("missing: err = %v", res.Err)
	}
	wrong := int64(7)
	if res := h.apply(TypeDeleteApp, DeleteApp{Name: "shop", ExpectGeneration: &wrong}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("wrong generation: err = %v", res.Err)
	}
	h.ok(TypeDeleteApp, DeleteApp{Name: "shop"})
	st := h.state()
	if st.Apps["shop"] != nil || st.AssignmentIndex("a") != h.index {
		t.Fatalf("after delete: apps %v, index a %d", st.Apps, st.AssignmentIndex("a"))
	}
}

func TestSetPlacementsGuards(t *testing.T) {
	h := placed(t)
	rev := h.state().Apps["shop"].PlacementRev
	for name, p := range map[string]SetPlacements{
		"old generation": {App: "shop", Generation: 0, ExpectRev: rev},
		"old revision":   {App: "shop", Generation: 1, ExpectRev: rev - 1},
	} {
		if res := h.apply(TypeSetPlacements, p); !errors.Is(res.Err, ErrConflict) {
			t.Errorf("%s: err = %v", name, res.Err)
		}
	}
	if res := h.apply(TypeSetPlacements, SetPlacements{App: "nope"}); !errors.Is(res.Err, ErrNotFound) {
		t.Errorf("missing app: err = %v", res.Err)
	}
	if res := h.apply(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: rev,
		Placements: []scheduler.Placement{{Component: "ghost"}}}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("unknown component: err = %v", res.Err)
	}
	if got := h.state().Apps["shop"].PlacementRev; got != rev {
		t.Fatalf("rejected writes moved the revision %d → %d", rev, got)
	}
}

func TestMigrationAssignmentsAndStatuses(t *testing.T) {
	h := placed(t)
	h.ok(TypeReportStatus, ReportStatus{Cluster: "a", Statuses: []fleet.ComponentStatus{{App: "shop", Component: "web", Generation: 1, Phase: fleet.PhaseHealthy}}})
	app := h.state().Apps["shop"]
	// Migrate web from a to b, make-before-break.
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: app.PlacementRev,
		Placements: []scheduler.Placement{{Component: "web", Cluster: "b", Nodes: []string{"m1"}, From: "a", FromNodes: []string{"n1"}, Generation: 1}},
		Events:     []apiv1.Event{{Time: h.now, Component: "web", Reason: "Migrating"}}})
	st := h.state()
	as, bs := st.Assignments("a"), st.Assignments("b")
	if len(as) != 1 || !as[0].Leaving || as[0].Nodes[0] != "n1" {
		t.Fatalf("a's assignments = %+v", as)
	}
	if len(bs) != 1 || bs[0].Leaving || bs[0].Addresses["web"] != "b.example:443" || bs[0].Namespace != "shop" {
		t.Fatalf("b's assignments = %+v", bs)
	}
	if st.Apps["shop"].Status("web", "a") == nil {
		t.Fatal("status on the cluster being left was dropped too early")
	}
	// Done: clear From. a's status goes, a's assignment goes.
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: st.Apps["shop"].PlacementRev,
		Placements: []scheduler.Placement{{Component: "web", Cluster: "b", Nodes: []string{"m1"}, Generation: 1}}})
	st = h.state()
	if len(st.Assignments("a")) != 0 || st.Apps["shop"].Status("web", "a") != nil {
		t.Fatalf("a still has web: %+v", st.Assignments("a"))
	}
	if ev := st.Apps["shop"].Events; ev[len(ev)-1].Reason != "Migrating" {
		t.Fatalf("events = %+v", ev)
	}
}

func TestReportStatus(t *testing.T) {
	h := placed(t)
	report := func(cl string, gen int64, ph fleet.Phase) {
		h.ok(TypeReportStatus, ReportStatus{Cluster: cl, Statuses: []fleet.ComponentStatus{{App: "shop", Component: "web", Generation: gen, Phase: ph}}})
	}
	report("a", 1, fleet.PhaseProgressing)
	since := h.now
	report("a", 1, fleet.PhaseProgressing)
	s := h.state().Apps["shop"].Status("web", "a")
	if s.Since != since || s.Heartbeat != h.now || s.Cluster != "a" {
		t.Fatalf("same phase: %+v", s)
	}
	report("a", 1, fleet.PhaseHealthy)
	if s := h.state().Apps["shop"].Status("web", "a"); s.Phase != fleet.PhaseHealthy || s.Since != h.now {
		t.Fatalf("new phase: %+v", s)
	}
	report("a", 0, fleet.PhaseFailed) // late report of an older generation
	if s := h.state().Apps["shop"].Status("web", "a"); s.Phase != fleet.PhaseHealthy {
		t.Fatalf("older generation rolled back the status: %+v", s)
	}
	report("b", 1, fleet.PhaseHealthy) // web is not placed on b
	if s := h.state().Apps["shop"].Status("web", "b"); s != nil {
		t.Fatalf("status kept for a cluster the component is not on: %+v", s)
	}
	h.ok(TypeReportStatus, ReportStatus{Cluster: "a", Statuses: []fleet.ComponentStatus{{App: "gone", Component: "x"}}})
	if res := h.apply(TypeReportStatus, ReportStatus{Cluster: "zz"}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("unknown cluster: err = %v", res.Err)
	}
}

func TestExclusionsExpireAndEventsAreBounded(t *testing.T) {
	h := placed(t)
	rev := h.state().Apps["shop"].PlacementRev
	var events []apiv1.Event
	for i := range MaxEvents + 5 {
		events = append(events, apiv1.Event{Time: h.now, Reason: "Placed", Message: string(rune('a' + i%26))})
	}
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: rev,
		Placements: []scheduler.Placement{{Component: "web", Cluster: "b", Generation: 1}},
		Exclude:    []Exclusion{{Component: "web", Cluster: "a", Until: h.now.Add(3 * time.Second)}, {Component: "db", Cluster: "a", Until: h.now.Add(time.Hour)}},
		Events:     events})
	app := h.state().Apps["shop"]
	if len(app.Events) != MaxEvents || len(app.Exclusions["web"]) != 1 {
		t.Fatalf("events %d, exclusions %+v", len(app.Events), app.Exclusions)
	}
	// Five seconds later the short back-off is gone, the long one stays.
	h.now = h.now.Add(5 * time.Second)
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: app.PlacementRev})
	app = h.state().Apps["shop"]
	if app.Exclusions["web"] != nil || app.Exclusions["db"] == nil {
		t.Fatalf("exclusions = %+v", app.Exclusions)
	}
}

func TestLivenessAndMembers(t *testing.T) {
	h := newHarness(t)
	if res := h.apply(TypeSetLiveness, SetLiveness{Cluster: "a"}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("unknown cluster: err = %v", res.Err)
	}
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: cluster("a")})
	h.ok(TypeSetLiveness, SetLiveness{Cluster: "a", Alive: false})
	down := h.state().Down["a"]
	h.ok(TypeSetLiveness, SetLiveness{Cluster: "a", Alive: false})
	if h.state().Down["a"] != down {
		t.Fatal("repeating 'down' moved the time it went down")
	}
	h.ok(TypeSetLiveness, SetLiveness{Cluster: "a", Alive: true})
	if _, ok := h.state().Down["a"]; ok {
		t.Fatal("still down")
	}

	h.ok(TypeSetMember, SetMember{Member: Member{ID: "l1", RaftAddr: "r1", APIAddr: "api1"}})
	idx := h.index
	h.ok(TypeSetMember, SetMember{Member: Member{ID: "l1", RaftAddr: "r1", APIAddr: "api1"}})
	st := h.state()
	if st.MembersIndex != idx || st.AssignmentIndex("a") != idx || strings.Join(st.LeadAPIs(), ",") != "api1" {
		t.Fatalf("members index %d (want %d), leads %v", st.MembersIndex, idx, st.LeadAPIs())
	}
	h.ok(TypeRemoveMember, RemoveMember{ID: "l1"})
	if res := h.apply(TypeRemoveMember, RemoveMember{ID: "l1"}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("remove twice: err = %v", res.Err)
	}
	if res := h.apply(TypeSetMember, SetMember{}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("empty member: err = %v", res.Err)
	}
}

type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	h := placed(t)
	h.ok(TypeReportNodes, ReportNodes{Cluster: "a", Full: true, Nodes: []fleet.Node{{Name: "n1", Labels: map[string]string{fleet.LabelEnergy: "0.1"}, Ready: true}}})
	h.ok(TypeReportStatus, ReportStatus{Cluster: "a", Statuses: []fleet.ComponentStatus{{App: "shop", Component: "web", Generation: 1, Phase: fleet.PhaseHealthy}}})
	h.ok(TypeSetLiveness, SetLiveness{Cluster: "b"})
	h.ok(TypeSetMember, SetMember{Member: Member{ID: "l1", RaftAddr: "r1", APIAddr: "api1"}})
	wantHash, wantIdx := h.kb.Hash()

	snap, err := h.kb.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the snapshot must not leak into it (copy-on-write).
	h.ok(TypeDeleteApp, DeleteApp{Name: "shop"})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}

	other := New(nil)
	other.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: MustEncode(TypeRegisterCluster, t0, RegisterCluster{Cluster: cluster("stale")})})
	if err := other.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	gotHash, gotIdx := other.Hash()
	if gotHash != wantHash || gotIdx != wantIdx {
		t.Fatalf("restored hash %s@%d, want %s@%d", gotHash, gotIdx, wantHash, wantIdx)
	}
	st, _ := other.View()
	if st.Clusters["stale"] != nil || st.Apps["shop"] == nil {
		t.Fatal("restore did not replace the whole state")
	}
	if err := other.Restore(io.NopCloser(strings.NewReader(`{"version":9}`))); err == nil {
		t.Fatal("restore of a future snapshot version succeeded")
	}
}

type failingSink struct{ memSink }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPersistCancelsOnError(t *testing.T) {
	h := placed(t)
	snap, _ := h.kb.Snapshot()
	var sink failingSink
	if err := snap.Persist(&sink); err == nil || !sink.cancelled || sink.closed {
		t.Fatalf("err=%v cancelled=%v closed=%v", err, sink.cancelled, sink.closed)
	}
}

func TestHashIsDeterministicAcrossLeads(t *testing.T) {
	a, b := placed(t), placed(t)
	ha, _ := a.kb.Hash()
	hb, _ := b.kb.Hash()
	if ha != hb {
		t.Fatalf("same log, different hashes %s %s", ha, hb)
	}
	b.ok(TypeSetLiveness, SetLiveness{Cluster: "a"})
	if hb2, _ := b.kb.Hash(); hb2 == ha {
		t.Fatal("hash did not change with the state")
	}
}

func TestUndecodableEntryStopsTheFSM(t *testing.T) {
	future := []byte(`{"type":"PutApp","version":2,"payload":{}}`)
	for name, data := range map[string][]byte{
		"garbage":        []byte("\x00\x01not json"),
		"unknown type":   []byte(`{"type":"Frobnicate","version":1,"payload":{}}`),
		"future version": future,
		"no payload":     []byte(`{"type":"PutApp","version":1}`),
		"bad payload":    []byte(`{"type":"PutApp","version":1,"payload":{"spec":{},"surprise":1}}`),
		"wrong shape":    []byte(`{"type":"SetMember","version":1,"payload":[1,2]}`),
	} {
		t.Run(name, func(t *testing.T) {
			k := New(nil)
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("FSM applied an undecodable entry without stopping")
				}
				if !strings.Contains(r.(string), "cannot apply log entry 7") {
					t.Fatalf("panic = %v", r)
				}
				if k.Index() != 0 {
					t.Fatal("index moved past the bad entry")
				}
			}()
			k.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: data})
		})
	}
	if _, err := Decode(future); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("Decode(future) = %v", err)
	}
}

func TestNonCommandEntriesAreSkipped(t *testing.T) {
	k := New(nil)
	out := k.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogConfiguration, Data: []byte("x")}, {Index: 2, Type: raft.LogCommand, Data: MustEncode(TypeRegisterCluster, t0, RegisterCluster{Cluster: cluster("a")})}})
	if out[0] != nil || out[1].(*Result).Err != nil || k.Index() != 2 {
		t.Fatalf("out = %v, index %d", out, k.Index())
	}
}

func TestWaitIndexAndCluster(t *testing.T) {
	h := newHarness(t)
	h.ok(TypeRegisterCluster, RegisterCluster{Cluster: cluster("a")})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.kb.WaitIndex(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitIndex with nothing new: %v", err)
	}
	done := make(chan uint64)
	go func() {
		idx, _ := h.kb.WaitCluster(context.Background(), "a", 0)
		done <- idx
	}()
	h.ok(TypeSetMember, SetMember{Member: Member{ID: "l1", APIAddr: "x"}})
	select {
	case idx := <-done:
		if idx != 2 {
			t.Fatalf("WaitCluster returned %d", idx)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitCluster did not wake")
	}
	if idx, err := h.kb.WaitIndex(context.Background(), 1); err != nil || idx != 2 {
		t.Fatalf("WaitIndex = %d, %v", idx, err)
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func TestExplanationsAreStoredCompressed(t *testing.T) {
	h := placed(t)
	ex := &scheduler.Explanation{Component: "web", Chosen: "b", Summary: "b wins"}
	z, err := CompressExplanation(ex)
	if err != nil {
		t.Fatal(err)
	}
	rev := h.state().Apps["shop"].PlacementRev
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: rev,
		Placements:   []scheduler.Placement{{Component: "web", Cluster: "b", Generation: 1}},
		Explanations: map[string][]byte{"web": z}})
	app := h.state().Apps["shop"]
	if app.Placements["web"].Explanation != nil {
		t.Fatal("explanation stored uncompressed")
	}
	if got := app.Placement("web").Explanation; got == nil || got.Summary != "b wins" {
		t.Fatalf("explanation = %+v", got)
	}
	// A new decision without an explanation drops the old one.
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: app.PlacementRev,
		Placements: []scheduler.Placement{{Component: "web", Cluster: "a", Generation: 1}}})
	if h.state().Apps["shop"].Placement("web").Explanation != nil {
		t.Fatal("stale explanation kept")
	}
}

func TestWaitClusterWakesOnlyForItsCluster(t *testing.T) {
	h := placed(t) // web on a; cluster b has nothing
	idxB := h.state().AssignmentIndex("b")
	woke := make(chan uint64, 1)
	go func() {
		idx, _ := h.kb.WaitCluster(context.Background(), "b", idxB)
		woke <- idx
	}()
	time.Sleep(20 * time.Millisecond)
	rev := h.state().Apps["shop"].PlacementRev
	// A change on a only (a status report) does not wake b's poll…
	h.ok(TypeReportStatus, ReportStatus{Cluster: "a", Statuses: []fleet.ComponentStatus{{App: "shop", Component: "web", Generation: 1, Phase: fleet.PhaseHealthy}}})
	select {
	case idx := <-woke:
		t.Fatalf("b woke for a change elsewhere (index %d)", idx)
	case <-time.After(50 * time.Millisecond):
	}
	// …moving web to b does.
	h.ok(TypeSetPlacements, SetPlacements{App: "shop", Generation: 1, ExpectRev: rev,
		Placements: []scheduler.Placement{{Component: "web", Cluster: "b", Generation: 1}}})
	select {
	case idx := <-woke:
		if idx != h.index {
			t.Fatalf("woke at %d, want %d", idx, h.index)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's poll did not wake")
	}
}
