package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/lead/kb"
)

var fastTuning = Tuning{
	HeartbeatTimeout:   300 * time.Millisecond,
	ElectionTimeout:    300 * time.Millisecond,
	LeaderLeaseTimeout: 150 * time.Millisecond,
	CommitTimeout:      5 * time.Millisecond,
	ApplyTimeout:       3 * time.Second,
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("QONNECT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// group is N stores in one process over raft's in-memory transport.
type group struct {
	t      testing.TB
	stores []*Store
	trans  []*raft.InmemTransport
	dirs   []string
}

func newGroup(t testing.TB, n int, persistent bool) *group {
	g := &group{t: t}
	var peers []Peer
	for i := range n {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("lead%d", i)))
		g.trans = append(g.trans, tr)
		peers = append(peers, Peer{ID: fmt.Sprintf("lead%d", i), RaftAddr: string(addr), APIAddr: fmt.Sprintf("api%d:8443", i)})
		if persistent {
			g.dirs = append(g.dirs, t.TempDir())
		} else {
			g.dirs = append(g.dirs, "")
		}
	}
	for i := range n {
		for j := range n {
			if i != j {
				g.trans[i].Connect(g.trans[j].LocalAddr(), g.trans[j])
			}
		}
	}
	for i := range n {
		s, err := Open(Config{ID: peers[i].ID, Dir: g.dirs[i], Transport: g.trans[i], APIAddr: peers[i].APIAddr,
			Peers: peers, Bootstrap: true, Logger: testLogger(t), Tuning: fastTuning})
		if err != nil {
			t.Fatal(err)
		}
		g.stores = append(g.stores, s)
	}
	t.Cleanup(func() {
		for _, s := range g.stores {
			if s != nil {
				_ = s.Close()
			}
		}
	})
	return g
}

// leader waits for a leader among the live stores and returns its index.
func (g *group) leader(exclude ...int) int {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range g.stores {
			if s == nil || contains(exclude, i) {
				continue
			}
			if s.IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.t.Fatal("no leader elected within 10s")
	return -1
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// isolate cuts store i off from every other, both ways.
func (g *group) isolate(i int) {
	for j := range g.trans {
		if j != i {
			g.trans[i].Disconnect(g.trans[j].LocalAddr())
			g.trans[j].Disconnect(g.trans[i].LocalAddr())
		}
	}
}

func (g *group) heal(i int) {
	for j := range g.trans {
		if j != i {
			g.trans[i].Connect(g.trans[j].LocalAddr(), g.trans[j])
			g.trans[j].Connect(g.trans[i].LocalAddr(), g.trans[i])
		}
	}
}

func register(ctx context.Context, s *Store, name string) error {
	_, err := s.Apply(ctx, kb.TypeRegisterCluster, kb.RegisterCluster{Cluster: fleet.Cluster{Name: name, Tier: fleet.TierEdge}})
	return err
}

// waitConverged waits until every live store has the same KB hash at the
// same applied index as the leader.
func (g *group) waitConverged(live ...int) string {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var hashes []string
		var idx []uint64
		for _, i := range live {
			h, at := g.stores[i].KB().Hash()
			hashes = append(hashes, h)
			idx = append(idx, at)
		}
		same := true
		for k := range hashes {
			same = same && hashes[k] == hashes[0] && idx[k] == idx[0]
		}
		if same {
			return hashes[0]
		}
		last = fmt.Sprint(hashes, idx)
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("leads did not converge: %s", last)
	return ""
}

func TestGroupReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	g := newGroup(t, 3, false)
	ctx := context.Background()
	l := g.leader()
	var acked []string
	for i := range 20 {
		name := fmt.Sprintf("c%d", i)
		if err := register(ctx, g.stores[l], name); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, name)
	}
	follower := (l + 1) % 3
	if err := register(ctx, g.stores[follower], "nope"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write on a follower: err = %v", err)
	}
	g.waitConverged(0, 1, 2)

	// Every lead learns every member's API address, and who leads.
	waitFor(t, "members recorded", func() bool {
		st, _ := g.stores[follower].KB().View()
		return len(st.LeadAPIs()) == 3 && g.stores[follower].LeaderAPI() == fmt.Sprintf("api%d:8443", l)
	})

	// Lose the leader.
	if err := g.stores[l].Close(); err != nil {
		t.Fatal(err)
	}
	g.stores[l] = nil
	start := time.Now()
	nl := g.leader(l)
	t.Logf("new leader lead%d after %v", nl, time.Since(start))
	for i := 20; i < 30; i++ {
		name := fmt.Sprintf("c%d", i)
		if err := register(ctx, g.stores[nl], name); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, name)
	}
	live := []int{}
	for i := range 3 {
		if i != l {
			live = append(live, i)
		}
	}
	g.waitConverged(live...)
	for _, i := range live {
		st, _ := g.stores[i].KB().View()
		for _, name := range acked {
			if st.Clusters[name] == nil {
				t.Fatalf("lead%d lost acknowledged write %s", i, name)
			}
		}
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMinorityPartitionCannotCommitAndRejoins(t *testing.T) {
	g := newGroup(t, 3, false)
	ctx := context.Background()
	l := g.leader()
	if err := register(ctx, g.stores[l], "before"); err != nil {
		t.Fatal(err)
	}
	g.isolate(l)

	// The cut-off leader cannot commit: it fails rather than acknowledging.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := register(wctx, g.stores[l], "minority")
	cancel()
	if err == nil {
		t.Fatal("a leader cut off from the majority committed a write")
	}
	t.Logf("minority write failed as it should: %v", err)
	waitFor(t, "old leader to step down", func() bool { return !g.stores[l].IsLeader() })
	if err := g.stores[l].VerifyLeader(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("VerifyLeader on the minority: %v", err)
	}

	nl := g.leader(l)
	if err := register(ctx, g.stores[nl], "majority"); err != nil {
		t.Fatal(err)
	}

	g.heal(l)
	h := g.waitConverged(0, 1, 2)
	st, _ := g.stores[l].KB().View()
	if st.Clusters["majority"] == nil || st.Clusters["before"] == nil {
		t.Fatal("rejoined lead is missing committed writes")
	}
	if st.Clusters["minority"] != nil {
		t.Fatal("an unacknowledged minority write survived")
	}
	t.Logf("converged, kb hash %s", h[:12])
}

func TestReadIndexOnFollower(t *testing.T) {
	g := newGroup(t, 3, false)
	ctx := context.Background()
	l := g.leader()
	for i := range 5 {
		if err := register(ctx, g.stores[l], fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := g.stores[l].ReadIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := g.stores[(l+1)%3]
	if _, err := f.ReadIndex(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ReadIndex on follower: %v", err)
	}
	if err := f.WaitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	st, _ := f.KB().View()
	if st.Clusters["c4"] == nil {
		t.Fatal("follower at the read index misses a write")
	}
}

func TestAddAndRemoveMember(t *testing.T) {
	g := newGroup(t, 3, false)
	ctx := context.Background()
	l := g.leader()
	if err := register(ctx, g.stores[l], "c0"); err != nil {
		t.Fatal(err)
	}
	addr, tr := raft.NewInmemTransport("lead3")
	for _, other := range g.trans {
		tr.Connect(other.LocalAddr(), other)
		other.Connect(addr, tr)
	}
	s, err := Open(Config{ID: "lead3", Transport: tr, APIAddr: "api3:8443", Logger: testLogger(t), Tuning: fastTuning})
	if err != nil {
		t.Fatal(err)
	}
	g.stores, g.trans = append(g.stores, s), append(g.trans, tr)
	if err := s.AddMember(ctx, Peer{ID: "lead3"}, true); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("AddMember on a non-leader: %v", err)
	}
	if err := g.stores[l].AddMember(ctx, Peer{ID: "lead3", RaftAddr: string(addr), APIAddr: "api3:8443"}, true); err != nil {
		t.Fatal(err)
	}
	// Adding again is harmless.
	if err := g.stores[l].AddMember(ctx, Peer{ID: "lead3", RaftAddr: string(addr), APIAddr: "api3:8443"}, true); err != nil {
		t.Fatal(err)
	}
	g.waitConverged(0, 1, 2, 3)
	if st := s.Status(); len(st.Members) != 4 || st.Leader == "" {
		t.Fatalf("new member's status = %+v", st)
	}
	if err := g.stores[l].RemoveMember(ctx, "lead3"); err != nil {
		t.Fatal(err)
	}
	st := g.stores[l].Status()
	if len(st.Members) != 3 {
		t.Fatalf("members after remove = %+v", st.Members)
	}
	for _, m := range st.Members {
		if m.Reachable == nil || !*m.Reachable || m.APIAddr == "" {
			t.Fatalf("leader's view of %s = %+v", m.ID, m)
		}
	}
	if err := g.stores[l].RemoveMember(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
}

func TestRestartFromDisk(t *testing.T) {
	dir := t.TempDir()
	open := func() *Store {
		_, tr := raft.NewInmemTransport("solo")
		s, err := Open(Config{ID: "solo", Dir: dir, Transport: tr, APIAddr: "api:1", Bootstrap: true, Logger: testLogger(t), Tuning: fastTuning})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitForLeader(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "leadership", s.IsLeader)
		return s
	}
	s := open()
	ctx := context.Background()
	for i := range 10 {
		if err := register(ctx, s, fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if err := s.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, _ := s.KB().Hash()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	if err := s.WaitApplied(ctx, s.raft.LastIndex()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "state replayed", func() bool { h, _ := s.KB().Hash(); return h == want })
	if _, err := os.Stat(dir + "/raft.db"); err != nil {
		t.Fatal(err)
	}
}

func TestParsePeers(t *testing.T) {
	ps, err := ParsePeers("a=127.0.0.11:7000=127.0.0.11:8443, b=h:1")
	if err != nil || len(ps) != 2 || ps[0].APIAddr != "127.0.0.11:8443" || ps[1].RaftAddr != "h:1" {
		t.Fatalf("%+v %v", ps, err)
	}
	for _, bad := range []string{"a", "=x=y", "a=b=c=d", "a=x,a=y"} {
		if _, err := ParsePeers(bad); err == nil {
			t.Errorf("ParsePeers(%q) accepted", bad)
		}
	}
}
