// Package liveness keeps, on the leader and in memory only, when each
// cluster was last heard from. Heartbeats arrive every few seconds from
// every cluster; replicating each would turn the Raft log into a heartbeat
// log. Only verdicts (a cluster went down, came back) are replicated, by the
// scheduling loop.
package liveness

import (
	"sync"
	"time"
)

// Tracker is safe for concurrent use.
type Tracker struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	nodes map[string]time.Time
	// grace is when this lead last became leader: no cluster counts as
	// silent for longer than since then, because before it the heartbeats
	// went to another lead.
	grace time.Time
}

// New returns a tracker whose grace period starts now.
func New(now time.Time) *Tracker {
	return &Tracker{seen: map[string]time.Time{}, nodes: map[string]time.Time{}, grace: now}
}

// Seen records a heartbeat from cluster.
func (t *Tracker) Seen(cluster string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at.After(t.seen[cluster]) {
		t.seen[cluster] = at
	}
}

// SeenNodes records a node report from cluster (which is a heartbeat too).
func (t *Tracker) SeenNodes(cluster string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at.After(t.nodes[cluster]) {
		t.nodes[cluster] = at
	}
	if at.After(t.seen[cluster]) {
		t.seen[cluster] = at
	}
}

// Reset starts a new grace period, for a lead that just became leader:
// every cluster gets one full timeout to reach it.
func (t *Tracker) Reset(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.grace = now
}

// GraceStart is when this lead's grace period began (it became leader).
func (t *Tracker) GraceStart() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.grace
}

// LastSeen is the last heartbeat heard from cluster by this lead (zero if
// none).
func (t *Tracker) LastSeen(cluster string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen[cluster]
}

// NodesSeen is when cluster last reported its nodes to this lead.
func (t *Tracker) NodesSeen(cluster string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodes[cluster]
}

// last is the later of the last heartbeat and the grace start.
func (t *Tracker) last(cluster string) time.Time {
	l := t.seen[cluster]
	if t.grace.After(l) {
		l = t.grace
	}
	return l
}

// Alive reports whether cluster was heard from within timeout of now.
func (t *Tracker) Alive(cluster string, now time.Time, timeout time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return now.Sub(t.last(cluster)) <= timeout
}

// NextExpiry is the earliest time after now at which one of clusters, alive
// now, would stop being alive; zero if none would.
func (t *Tracker) NextExpiry(clusters []string, now time.Time, timeout time.Duration) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next time.Time
	for _, c := range clusters {
		exp := t.last(c).Add(timeout)
		if exp.After(now) && (next.IsZero() || exp.Before(next)) {
			next = exp
		}
	}
	return next
}
