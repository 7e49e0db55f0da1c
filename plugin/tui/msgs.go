package tui

import (
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
)

// Snapshot is everything the views show, fetched together so they agree.
type Snapshot struct {
	Apps     []apiv1.App
	Clusters []apiv1.ClusterInfo
	Nodes    []fleet.Node
	Raft     *apiv1.RaftStatus
	// Index is the knowledge base index the snapshot is at; the next
	// watch waits for a change past it.
	Index uint64
}

// The messages the TUI's commands return. Each carries the connection
// generation it belongs to, so answers from a connection that was since
// replaced are dropped.
type (
	connectedMsg struct {
		gen  int
		conn *Conn
	}
	snapshotMsg struct {
		gen  int
		snap Snapshot
	}
	watchMsg struct {
		gen   int
		index uint64
	}
	// errMsg is a failed connect, fetch or watch: the lead went away.
	errMsg struct {
		gen int
		err error
	}
	retryMsg struct{ gen int }
)

// retryDelay is how long the TUI waits before reconnecting after the n-th
// failure in a row: 1s, 2s, 4s, then every 10s.
func retryDelay(n int) time.Duration {
	d := time.Second << min(n, 4)
	return min(d, 10*time.Second)
}
