// Package raftstore runs the lead's Raft group (hashicorp/raft, log and
// stable store in raft-boltdb, file snapshots, all under the data dir) with
// the knowledge base as its FSM. It is built from a Config with an
// injectable transport and logger, so tests run whole groups in one process
// over raft's in-memory transport.
package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/lead/kb"
)

// Peer is one lead of the group: its Raft ID and addresses.
type Peer struct {
	ID       string
	RaftAddr string
	APIAddr  string
}

// ParsePeers reads "id=raftAddr=apiAddr,..." (apiAddr may be omitted).
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, "=")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("peer %q: want id=raftAddress=apiAddress", item)
		}
		p := Peer{ID: parts[0], RaftAddr: parts[1]}
		if len(parts) == 3 {
			p.APIAddr = parts[2]
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("peer %q listed twice", p.ID)
		}
		seen[p.ID] = true
		out = append(out, p)
	}
	return out, nil
}

// Tuning are raft's timing knobs; zero values take the defaults below,
// chosen so that a new leader is elected well within 3 s on a loaded host.
type Tuning struct {
	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
	CommitTimeout      time.Duration // default 20ms
	MaxAppendEntries   int           // default 256
	SnapshotThreshold  uint64        // default 8192 entries
	SnapshotInterval   time.Duration // default 30s
	TrailingLogs       uint64        // default 10240
	// ApplyTimeout bounds how long a write may wait to be enqueued; default 10s.
	ApplyTimeout time.Duration
}

func (t Tuning) withDefaults() Tuning {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&t.HeartbeatTimeout, time.Second)
	def(&t.ElectionTimeout, time.Second)
	def(&t.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&t.CommitTimeout, 20*time.Millisecond)
	def(&t.SnapshotInterval, 30*time.Second)
	def(&t.ApplyTimeout, 10*time.Second)
	if t.MaxAppendEntries == 0 {
		t.MaxAppendEntries = 256
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = 8192
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = 10240
	}
	return t
}

// Config builds a Store.
type Config struct {
	// ID is this lead's Raft server ID (its certificate's name).
	ID string
	// Dir holds raft.db and the snapshots. Empty keeps everything in
	// memory (tests only: nothing survives a restart).
	Dir string
	// Transport carries Raft traffic: NewTransport, or raft's in-memory
	// transport in tests.
	Transport raft.Transport
	// APIAddr is this lead's advertised API address, recorded in the KB so
	// other leads can forward to it and agents can find it.
	APIAddr string
	// Peers is the static member list a new group is bootstrapped from; it
	// must include this lead. Ignored when state exists, so it is safe to
	// pass on every start.
	Peers []Peer
	// Bootstrap bootstraps a new group when there is no state: from Peers,
	// or, when Peers is empty, with this lead alone.
	Bootstrap bool
	// KB is the FSM; nil makes a new one.
	KB     *kb.KB
	Logger *slog.Logger
	Tuning Tuning
}

// Store is a lead's Raft node and its knowledge base.
type Store struct {
	id      string
	apiAddr string
	peers   []Peer
	tuning  Tuning
	log     *slog.Logger
	kb      *kb.KB
	raft    *raft.Raft
	trans   raft.Transport
	bolt    *raftboltdb.BoltStore

	obsCh    chan raft.Observation
	observer *raft.Observer
	stop     chan struct{}
	wg       sync.WaitGroup

	mu          sync.Mutex
	unreachable map[string]bool // leader's view of followers that miss heartbeats
	hash        string
	hashIndex   uint64
}

// Open starts the Raft node. It does not wait for a leader: use WaitForLeader.
func Open(cfg Config) (*Store, error) {
	if cfg.ID == "" {
		return nil, errors.New("raft store: empty ID")
	}
	if cfg.Transport == nil {
		return nil, errors.New("raft store: no transport")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KB == nil {
		cfg.KB = kb.New(cfg.Logger.With("component", "kb"))
	}
	t := cfg.Tuning.withDefaults()
	s := &Store{
		id: cfg.ID, apiAddr: cfg.APIAddr, peers: cfg.Peers, tuning: t,
		log: cfg.Logger, kb: cfg.KB, trans: cfg.Transport,
		stop: make(chan struct{}), unreachable: map[string]bool{},
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = NewHCLogger(cfg.Logger, "raft")
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	rc.CommitTimeout = t.CommitTimeout
	rc.MaxAppendEntries = t.MaxAppendEntries
	rc.SnapshotThreshold = t.SnapshotThreshold
	rc.SnapshotInterval = t.SnapshotInterval
	rc.TrailingLogs = t.TrailingLogs
	// Concurrent writers' entries go into one append and one fsync, and the
	// KB applies them under one lock (BatchingFSM).
	rc.BatchApplyCh = true

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.Dir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("raft store: data dir: %w", err)
		}
		bolt, err := raftboltdb.New(raftboltdb.Options{
			Path: filepath.Join(cfg.Dir, "raft.db"),
			// Fail instead of hanging when another process holds the file.
			BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
		})
		if err != nil {
			return nil, fmt.Errorf("raft store: open %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
		}
		s.bolt = bolt
		cached, err := raft.NewLogCache(256, bolt)
		if err != nil {
			bolt.Close()
			return nil, fmt.Errorf("raft store: log cache: %w", err)
		}
		logs, stable = cached, bolt
		snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, NewHCLogger(cfg.Logger, "raft-snapshots"))
		if err != nil {
			bolt.Close()
			return nil, fmt.Errorf("raft store: snapshot store: %w", err)
		}
	}

	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		s.closeBolt()
		return nil, fmt.Errorf("raft store: inspect state: %w", err)
	}
	r, err := raft.NewRaft(rc, s.kb, logs, stable, snaps, cfg.Transport)
	if err != nil {
		s.closeBolt()
		return nil, fmt.Errorf("raft store: start raft: %w", err)
	}
	s.raft = r

	s.obsCh = make(chan raft.Observation, 64)
	s.observer = raft.NewObserver(s.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(s.observer)
	s.wg.Add(1)
	go s.observe()

	switch {
	case hasState:
		s.log.Info("raft state found; bootstrap list ignored", "dir", cfg.Dir)
	case cfg.Bootstrap:
		servers, err := s.bootstrapServers()
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = s.Close()
			return nil, fmt.Errorf("raft store: bootstrap: %w", err)
		}
		s.log.Info("bootstrapped a new raft group", "members", len(servers))
	default:
		s.log.Info("no raft state and no bootstrap: waiting to be added to a group")
	}
	return s, nil
}

func (s *Store) bootstrapServers() ([]raft.Server, error) {
	peers := s.peers
	if len(peers) == 0 {
		peers = []Peer{{ID: s.id, RaftAddr: string(s.trans.LocalAddr()), APIAddr: s.apiAddr}}
	}
	var servers []raft.Server
	self := false
	for _, p := range peers {
		self = self || p.ID == s.id
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	if !self {
		return nil, fmt.Errorf("raft store: bootstrap list does not include this lead %q", s.id)
	}
	return servers, nil
}

// observe follows raft's observations: who misses heartbeats (for the
// status's Reachable), and leadership gained (to record members' addresses).
func (s *Store) observe() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case o := <-s.obsCh:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				s.mu.Lock()
				s.unreachable[string(d.PeerID)] = true
				s.mu.Unlock()
			case raft.ResumedHeartbeatObservation:
				s.mu.Lock()
				delete(s.unreachable, string(d.PeerID))
				s.mu.Unlock()
			case raft.RaftState:
				if d == raft.Leader {
					s.mu.Lock()
					clear(s.unreachable)
					s.mu.Unlock()
					s.wg.Add(1)
					go func() {
						defer s.wg.Done()
						s.recordMembers()
					}()
				}
			}
		}
	}
}

// recordMembers makes the KB's member list match the Raft configuration,
// with API addresses from the bootstrap list and this lead's own config.
// It runs on each new leader, after a barrier so the KB is up to date.
func (s *Store) recordMembers() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := s.raft.Barrier(s.tuning.ApplyTimeout).Error(); err != nil {
		s.log.Warn("record members: barrier failed", "err", translate("barrier", err))
		return
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		s.log.Warn("record members: read configuration", "err", err)
		return
	}
	known := map[string]Peer{}
	for _, p := range s.peers {
		known[p.ID] = p
	}
	known[s.id] = Peer{ID: s.id, RaftAddr: string(s.trans.LocalAddr()), APIAddr: s.apiAddr}
	var st *kb.State
	st, _ = s.kb.View()
	inConfig := map[string]bool{}
	for _, srv := range cf.Configuration().Servers {
		id := string(srv.ID)
		inConfig[id] = true
		m := kb.Member{ID: id, RaftAddr: string(srv.Address)}
		if old := st.Members[id]; old != nil {
			m.APIAddr = old.APIAddr
		}
		if p, ok := known[id]; ok && p.APIAddr != "" && (m.APIAddr == "" || id == s.id) {
			m.APIAddr = p.APIAddr
		}
		if old := st.Members[id]; old != nil && *old == m {
			continue
		}
		if _, err := s.Apply(ctx, kb.TypeSetMember, kb.SetMember{Member: m}); err != nil {
			s.log.Warn("record member", "id", id, "err", err)
			return
		}
	}
	for id := range st.Members {
		if !inConfig[id] {
			if _, err := s.Apply(ctx, kb.TypeRemoveMember, kb.RemoveMember{ID: id}); err != nil && !errors.Is(err, ErrNotFound) {
				s.log.Warn("forget member", "id", id, "err", err)
				return
			}
		}
	}
}

// KB is the store's knowledge base (read it directly: reads are local).
func (s *Store) KB() *kb.KB { return s.kb }

// ID is this lead's Raft server ID.
func (s *Store) ID() string { return s.id }

// Apply proposes a command and waits until it is committed and applied.
// The command's outcome (ErrNotFound, ErrConflict, ...) is returned as the
// error too. Only the leader can apply; others get ErrNotLeader.
func (s *Store) Apply(ctx context.Context, typ kb.Type, payload any) (*kb.Result, error) {
	data, err := kb.Encode(typ, time.Now(), payload)
	if err != nil {
		return nil, err
	}
	return s.ApplyEncoded(ctx, data)
}

// ApplyEncoded is Apply for a command already encoded with kb.Encode.
func (s *Store) ApplyEncoded(ctx context.Context, data []byte) (*kb.Result, error) {
	timeout := s.tuning.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	f := s.raft.Apply(data, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, translate("apply", err)
		}
	case <-ctx.Done():
		// The entry may still commit; the caller learns nothing more.
		return nil, fmt.Errorf("apply: %w", ctx.Err())
	}
	res, ok := f.Response().(*kb.Result)
	if !ok {
		return nil, fmt.Errorf("apply: unexpected FSM response %T", f.Response())
	}
	return res, res.Err
}

// IsLeader reports whether this lead is the leader right now (as far as it
// knows; see VerifyLeader).
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// VerifyLeader confirms with a quorum that this lead is still the leader.
// A lead cut off from the majority fails here.
func (s *Store) VerifyLeader() error {
	return translate("verify leader", s.raft.VerifyLeader().Error())
}

// LeaderCh delivers true when this lead becomes leader and false when it
// stops. It has a single consumer (the scheduling loop's supervisor).
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// Leader returns the current leader's ID and Raft address, empty if none.
func (s *Store) Leader() (id, raftAddr string) {
	addr, lid := s.raft.LeaderWithID()
	return string(lid), string(addr)
}

// LeaderAPI is the current leader's API address, empty if unknown.
func (s *Store) LeaderAPI() string {
	id, _ := s.Leader()
	if id == "" {
		return ""
	}
	if id == s.id {
		return s.apiAddr
	}
	var addr string
	s.kb.Read(func(st *kb.State, _ uint64) {
		if m := st.Members[id]; m != nil {
			addr = m.APIAddr
		}
	})
	if addr == "" {
		for _, p := range s.peers {
			if p.ID == id {
				addr = p.APIAddr
			}
		}
	}
	return addr
}

// WaitForLeader waits until a leader is known and returns its ID.
func (s *Store) WaitForLeader(timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, _ := s.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return "", fmt.Errorf("wait for leader (%s): %w", timeout, ErrNoLeader)
		case <-s.stop:
			return "", ErrShutdown
		}
	}
}

// ReadIndex is, on the leader, an index such that any read served after
// the KB applied it sees every write acknowledged before the call. It uses a
// barrier, which also covers a new leader that has not yet committed an
// entry of its own term.
func (s *Store) ReadIndex(ctx context.Context) (uint64, error) {
	if !s.IsLeader() {
		return 0, fmt.Errorf("read index: %w", ErrNotLeader)
	}
	f := s.raft.Barrier(s.tuning.ApplyTimeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, translate("read index", err)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("read index: %w", ctx.Err())
	}
	return s.raft.AppliedIndex(), nil
}

// WaitApplied waits until this lead has applied index.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.raft.AppliedIndex() < index {
		select {
		case <-tick.C:
		case <-s.kb.Changed():
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (at %d): %w", index, s.raft.AppliedIndex(), ctx.Err())
		case <-s.stop:
			return ErrShutdown
		}
	}
	return nil
}

// AppliedIndex is the last log index applied here.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// AddMember adds a lead to the group (as a voter unless voter is false) and
// records its API address. Adding a lead that is already a member with the
// same address only updates its record. Leader only.
func (s *Store) AddMember(ctx context.Context, p Peer, voter bool) error {
	if !s.IsLeader() {
		return fmt.Errorf("add member %q: %w", p.ID, ErrNotLeader)
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return translate("add member: read configuration", err)
	}
	present := slices.ContainsFunc(cf.Configuration().Servers, func(srv raft.Server) bool {
		return string(srv.ID) == p.ID && string(srv.Address) == p.RaftAddr &&
			(srv.Suffrage == raft.Voter) == voter
	})
	if !present {
		var f raft.IndexFuture
		if voter {
			f = s.raft.AddVoter(raft.ServerID(p.ID), raft.ServerAddress(p.RaftAddr), 0, s.tuning.ApplyTimeout)
		} else {
			f = s.raft.AddNonvoter(raft.ServerID(p.ID), raft.ServerAddress(p.RaftAddr), 0, s.tuning.ApplyTimeout)
		}
		if err := f.Error(); err != nil {
			return translate(fmt.Sprintf("add member %q", p.ID), err)
		}
		s.log.Info("added raft member", "id", p.ID, "raft", p.RaftAddr, "voter", voter)
	}
	_, err := s.Apply(ctx, kb.TypeSetMember, kb.SetMember{Member: kb.Member{ID: p.ID, RaftAddr: p.RaftAddr, APIAddr: p.APIAddr}})
	return err
}

// RemoveMember removes a lead from the group and forgets its addresses.
// Leader only.
func (s *Store) RemoveMember(ctx context.Context, id string) error {
	if !s.IsLeader() {
		return fmt.Errorf("remove member %q: %w", id, ErrNotLeader)
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return translate("remove member: read configuration", err)
	}
	inConfig := slices.ContainsFunc(cf.Configuration().Servers, func(srv raft.Server) bool { return string(srv.ID) == id })
	_, err := s.Apply(ctx, kb.TypeRemoveMember, kb.RemoveMember{ID: id})
	if err != nil && !(errors.Is(err, ErrNotFound) && inConfig) {
		return err
	}
	if !inConfig {
		return nil
	}
	// Removing the leader itself is allowed: it steps down once committed.
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, s.tuning.ApplyTimeout).Error(); err != nil {
		return translate(fmt.Sprintf("remove member %q", id), err)
	}
	s.log.Info("removed raft member", "id", id)
	return nil
}

// Snapshot takes a Raft snapshot now.
func (s *Store) Snapshot() error {
	return translate("snapshot", s.raft.Snapshot().Error())
}

// Status is the group as this lead sees it.
func (s *Store) Status() apiv1.RaftStatus {
	lid, laddr := s.Leader()
	st := apiv1.RaftStatus{
		ID:           s.id,
		State:        s.raft.State().String(),
		Leader:       lid,
		LeaderAPI:    s.LeaderAPI(),
		Term:         s.raft.CurrentTerm(),
		LastIndex:    s.raft.LastIndex(),
		CommitIndex:  s.raft.CommitIndex(),
		AppliedIndex: s.raft.AppliedIndex(),
	}
	_ = laddr
	kbState, _ := s.kb.View()
	isLeader := s.IsLeader()
	if cf := s.raft.GetConfiguration(); cf.Error() == nil {
		s.mu.Lock()
		for _, srv := range cf.Configuration().Servers {
			m := apiv1.Member{
				ID:       string(srv.ID),
				RaftAddr: string(srv.Address),
				Suffrage: srv.Suffrage.String(),
				Leader:   string(srv.ID) == lid,
			}
			if km := kbState.Members[m.ID]; km != nil {
				m.APIAddr = km.APIAddr
			}
			if isLeader {
				ok := m.ID == s.id || !s.unreachable[m.ID]
				m.Reachable = &ok
			}
			st.Members = append(st.Members, m)
		}
		s.mu.Unlock()
	}
	st.KBHash = s.kbHash()
	return st
}

// kbHash caches the KB hash per index: encoding a large KB is not free.
func (s *Store) kbHash() string {
	idx := s.kb.Index()
	s.mu.Lock()
	if s.hash != "" && s.hashIndex == idx {
		h := s.hash
		s.mu.Unlock()
		return h
	}
	s.mu.Unlock()
	h, at := s.kb.Hash()
	s.mu.Lock()
	s.hash, s.hashIndex = h, at
	s.mu.Unlock()
	return h
}

// Close shuts raft down and closes the stores and the transport.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	var errs []error
	if s.raft != nil {
		if err := s.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
		}
		s.raft.DeregisterObserver(s.observer)
	}
	s.wg.Wait()
	if c, ok := s.trans.(raft.WithClose); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transport: %w", err))
		}
	}
	s.closeBolt()
	return errors.Join(errs...)
}

func (s *Store) closeBolt() {
	if s.bolt != nil {
		if err := s.bolt.Close(); err != nil {
			s.log.Warn("close raft.db", "err", err)
		}
		s.bolt = nil
	}
}
