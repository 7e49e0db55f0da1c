// Package kb is qonnect's knowledge base: the replicated state of the
// federation (clusters, nodes, applications, placements, statuses, members)
// and the Raft FSM that applies commands to it.
//
// The FSM is thin, in the manner of hraftd: every log entry is a versioned
// Command envelope; Apply decodes it, switches on its type and hands the
// payload to the applier (apply.go). The FSM never reads a clock or any
// other local fact, so every lead that applies the same log holds the same
// state, byte for byte (see Hash).
package kb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"
)

// Result is what applying one command returns through raft's ApplyFuture.
type Result struct {
	// Index is the log index of the command.
	Index uint64
	// Err is the command's outcome when it was rejected: ErrNotFound,
	// ErrConflict or ErrInvalid, wrapped with context.
	Err error
	// Outcome is "created", "configured" or "unchanged" for PutApp.
	Outcome string
	// Generation is the application's generation after PutApp.
	Generation int64

	// Which clusters' assignments the command changed (all of them when
	// the lead list changed), to wake only their blocking queries.
	touched    []string
	allTouched bool
}

// KB is the knowledge base and its Raft FSM. It is safe for concurrent use.
type KB struct {
	log *slog.Logger

	mu    sync.RWMutex
	st    *State
	index uint64 // log index of the last applied command or restored snapshot
	// changed is closed and replaced each time state changes, waking every
	// blocking query at once.
	changed chan struct{}
	// clusterChanged wakes the blocking queries of one cluster only (an
	// agent's long-poll): with a thousand agents waiting, waking all of
	// them on every change would cost more than the changes.
	clusterChanged map[string]chan struct{}

	// panicFn is how the FSM stops on an entry it cannot apply; tests
	// replace it to observe the failure.
	panicFn func(msg string)
}

// New returns an empty knowledge base.
func New(logger *slog.Logger) *KB {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &KB{
		log:            logger,
		st:             newState(),
		changed:        make(chan struct{}),
		clusterChanged: map[string]chan struct{}{},
		panicFn:        func(msg string) { panic(msg) },
	}
}

var (
	_ raft.FSM         = (*KB)(nil)
	_ raft.BatchingFSM = (*KB)(nil)
)

// Apply applies one committed log entry.
func (k *KB) Apply(l *raft.Log) any {
	return k.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries under one lock and wakes waiters once,
// which is what makes batched writes cheap.
func (k *KB) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	k.mu.Lock()
	defer k.mu.Unlock() // deferred: applyLocked may panic
	applied, all := false, false
	touched := map[string]bool{}
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue // configuration changes are raft's business, not the KB's
		}
		res := k.applyLocked(l.Index, l.Data)
		out[i] = res
		applied = true
		all = all || res.allTouched
		for _, c := range res.touched {
			touched[c] = true
		}
		res.touched = nil
	}
	if applied {
		k.notifyLocked()
		for c, ch := range k.clusterChanged {
			if all || touched[c] {
				close(ch)
				delete(k.clusterChanged, c)
			}
		}
	}
	return out
}

// applyLocked decodes and applies one command. An entry that cannot be
// decoded was written by a buggy or newer lead: applying some entries and
// skipping others would make this lead's state diverge silently from the
// others', so the FSM stops the process instead (as hraftd does).
func (k *KB) applyLocked(index uint64, data []byte) *Result {
	cmd, err := Decode(data)
	if err == nil {
		var res *Result
		res, err = apply(k.st, index, cmd)
		if err == nil {
			k.index = index
			return res
		}
	}
	msg := fmt.Sprintf("kb: cannot apply log entry %d: %v", index, err)
	k.log.Error("FSM stopping on an entry it cannot apply", "index", index, "err", err)
	k.panicFn(msg)
	// Reached only when a test replaced panicFn.
	return &Result{Index: index, Err: fmt.Errorf("%s", msg)}
}

func (k *KB) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// Index is the log index of the last applied command.
func (k *KB) Index() uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.index
}

// Read calls fn with the state under the read lock. fn must not keep or
// modify what it reads, nor block.
func (k *KB) Read(fn func(st *State, index uint64)) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	fn(k.st, k.index)
}

// App returns the stored application (read-only), or nil.
func (k *KB) App(name string) *App {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.st.Apps[name]
}

// View returns a consistent copy of the state that stays valid without a
// lock (see State: only the top-level maps are copied). Read-only.
func (k *KB) View() (*State, uint64) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.st.shallowCopy(), k.index
}

// Changed returns a channel that is closed at the next change of state.
func (k *KB) Changed() <-chan struct{} {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.changed
}

// Wait blocks until cond holds on the state, ctx is done, or (when cond
// never holds) forever. It returns the index at which cond held.
func (k *KB) Wait(ctx context.Context, cond func(st *State, index uint64) bool) (uint64, error) {
	for {
		k.mu.RLock()
		ok, idx, ch := cond(k.st, k.index), k.index, k.changed
		k.mu.RUnlock()
		if ok {
			return idx, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return idx, ctx.Err()
		}
	}
}

// WaitIndex blocks until the KB's index is past after, or ctx is done.
// It returns the index it reached.
func (k *KB) WaitIndex(ctx context.Context, after uint64) (uint64, error) {
	return k.Wait(ctx, func(_ *State, idx uint64) bool { return idx > after })
}

// WaitCluster blocks until cluster's assignment index is past after, or
// ctx is done. It returns the cluster's assignment index. It wakes only on
// changes to that cluster's assignments.
func (k *KB) WaitCluster(ctx context.Context, cluster string, after uint64) (uint64, error) {
	for {
		k.mu.Lock()
		ai := k.st.AssignmentIndex(cluster)
		if ai > after {
			k.mu.Unlock()
			return ai, nil
		}
		ch := k.clusterChanged[cluster]
		if ch == nil {
			ch = make(chan struct{})
			k.clusterChanged[cluster] = ch
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ai, ctx.Err()
		}
	}
}

// Snapshot captures the state for raft. Thanks to copy-on-write the copy is
// a few map copies under the lock; encoding happens later, in Persist,
// without blocking Apply.
func (k *KB) Snapshot() (raft.FSMSnapshot, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return &fsmSnapshot{st: k.st.shallowCopy(), index: k.index}, nil
}

// Restore replaces the whole state with a snapshot's.
func (k *KB) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, index, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore knowledge base: %w", err)
	}
	k.mu.Lock()
	k.st, k.index = st, index
	k.notifyLocked()
	for c, ch := range k.clusterChanged {
		close(ch)
		delete(k.clusterChanged, c)
	}
	k.mu.Unlock()
	k.log.Info("knowledge base restored from snapshot", "index", index,
		"clusters", len(st.Clusters), "apps", len(st.Apps))
	return nil
}

// Hash is the hex SHA-256 of the canonical encoding of the state, with the
// index it was taken at. Two leads at the same index have the same hash.
func (k *KB) Hash() (string, uint64) {
	st, idx := k.View()
	h, err := hashState(st)
	if err != nil {
		// The state is plain data; failing to encode it is a bug.
		panic(fmt.Sprintf("kb: hash state: %v", err))
	}
	return h, idx
}
