package raftstore

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"qonnect.io/qonnect/lead/kb"
)

// Sentinel errors of the store. Raft's own errors are translated into these,
// so callers test with errors.Is and never import raft.
var (
	// ErrNotLeader: the operation needs the leader and this lead is not it
	// (or lost leadership before the write committed; it may or may not
	// have been applied: retry against the new leader).
	ErrNotLeader = errors.New("not the leader")
	// ErrTimeout: raft did not accept or commit the operation in time,
	// typically because there is no quorum.
	ErrTimeout = errors.New("timed out")
	// ErrShutdown: the store is closed.
	ErrShutdown = errors.New("raft is shut down")
	// ErrNoLeader: no leader is known.
	ErrNoLeader = errors.New("no leader")

	// The knowledge base's errors, re-exported so callers of the store
	// need only this package.
	ErrNotFound = kb.ErrNotFound
	ErrConflict = kb.ErrConflict
	ErrInvalid  = kb.ErrInvalid
)

// translate maps raft's errors onto the store's sentinels, keeping raft's
// message for the log.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return fmt.Errorf("%s: %w (%v)", op, ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%s: %w (%v)", op, ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%s: %w", op, ErrShutdown)
	}
	return fmt.Errorf("%s: %w", op, err)
}
