package tui

import (
	"context"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sync/errgroup"

	"qonnect.io/qonnect/internal/leadclient"
)

// Conn is an open connection to the lead group.
type Conn struct {
	Client leadclient.User
	// Via says how the leads are reached, shown in the status line.
	Via string
	// Close releases it (port-forwards); may be nil.
	Close func()
}

// ConnectFunc opens a connection; the TUI calls it again after a lead
// went away, so a port-forward to a dead pod is replaced.
type ConnectFunc func(ctx context.Context) (*Conn, error)

func connectCmd(ctx context.Context, connect ConnectFunc, gen int) tea.Cmd {
	return func() tea.Msg {
		c, err := connect(ctx)
		if err != nil {
			return errMsg{gen: gen, err: err}
		}
		return connectedMsg{gen: gen, conn: c}
	}
}

// snapshotCmd fetches every view's data at once. Its index is the
// highest the lists report, so the next watch waits for what comes after.
func snapshotCmd(ctx context.Context, c leadclient.User, gen int) tea.Cmd {
	return func() tea.Msg {
		var s Snapshot
		var appsIdx, clustersIdx, nodesIdx uint64
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			l, err := c.ListApps(gctx)
			if err == nil {
				s.Apps, appsIdx = l.Items, l.Index
			}
			return err
		})
		g.Go(func() error {
			l, err := c.ListClusters(gctx)
			if err == nil {
				s.Clusters, clustersIdx = l.Items, l.Index
			}
			return err
		})
		g.Go(func() error {
			l, err := c.ListNodes(gctx, "")
			if err == nil {
				s.Nodes, nodesIdx = l.Items, l.Index
			}
			return err
		})
		g.Go(func() error {
			st, err := c.RaftStatus(gctx)
			if err == nil {
				s.Raft = st
			}
			return err
		})
		if err := g.Wait(); err != nil {
			return errMsg{gen: gen, err: err}
		}
		s.Index = max(appsIdx, clustersIdx, nodesIdx)
		return snapshotMsg{gen: gen, snap: s}
	}
}

// watchCmd long-polls the lead until the knowledge base moves past index
// (or wait passes), so the views update when something changes, not on a
// fast timer.
func watchCmd(ctx context.Context, c leadclient.User, gen int, index uint64, wait time.Duration) tea.Cmd {
	return func() tea.Msg {
		w, err := c.Watch(ctx, index, wait)
		if err != nil {
			return errMsg{gen: gen, err: fmt.Errorf("watch: %w", err)}
		}
		return watchMsg{gen: gen, index: w.Index}
	}
}

func retryCmd(gen int, after time.Duration) tea.Cmd {
	return tea.Tick(after, func(time.Time) tea.Msg { return retryMsg{gen: gen} })
}
