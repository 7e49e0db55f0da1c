package tui

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/plugin/fleetview"
)

// view is one of the tabs.
type view int

const (
	viewPlacements view = iota
	viewClusters
	viewLeads
	numViews
)

func (v view) String() string {
	return [...]string{"Placements", "Clusters", "Leads"}[v]
}

var placementColumns = []Column{
	{Title: "APP", Flex: true}, {Title: "COMPONENT", Flex: true}, {Title: "TIER"},
	{Title: "CLUSTER", Flex: true}, {Title: "NODES", Flex: true}, {Title: "PHASE", State: true},
	{Title: "READY", Optional: true}, {Title: "AGE", Optional: true},
}

var clusterColumns = []Column{
	{Title: "NAME", Flex: true}, {Title: "TIER"}, {Title: "ROLE", Optional: true}, {Title: "NODES"},
	{Title: "ENERGY", Flex: true, Optional: true}, {Title: "PRICE", Flex: true, Optional: true},
	{Title: "CPU FREE", Flex: true, Optional: true}, {Title: "MEM FREE", Flex: true, Optional: true},
	{Title: "HEALTH", State: true},
}

var leadColumns = []Column{
	{Title: "ID", Flex: true}, {Title: "STATE", State: true}, {Title: "SUFFRAGE"},
	{Title: "REACHABLE", State: true}, {Title: "API ADDRESS", Flex: true, Optional: true},
}

// placementRows is one row per application × component.
func placementRows(s *Snapshot, now time.Time) []Row {
	apps := append([]apiv1.App(nil), s.Apps...)
	fleetview.SortApps(apps)
	var rows []Row
	for i := range apps {
		for _, c := range fleetview.Components(&apps[i]) {
			cluster := c.Cluster
			if cluster == "" {
				cluster = "<pending>"
			}
			if c.From != "" {
				cluster = c.From + "→" + cluster
			}
			phase := string(c.Phase)
			if c.From != "" && c.Phase != fleet.PhaseFailed {
				phase = fleetview.StatusMigrating
			}
			rows = append(rows, Row{
				Key:   c.App + "/" + c.Component,
				Cells: []string{c.App, c.Component, string(c.Tier), cluster, fleetview.Join(c.Nodes), phase, c.ReadyString(), fleetview.Age(now, c.Since)},
			})
		}
	}
	return rows
}

func clusterRows(s *Snapshot) []Row {
	var rows []Row
	for _, c := range fleetview.ClustersOf(s.Clusters, s.Nodes) {
		rows = append(rows, Row{
			Key: c.Name,
			Cells: []string{
				c.Name, string(c.Tier), string(c.Role), fmt.Sprintf("%d/%d", c.ReadyNodes, c.Nodes),
				fleetview.Number(c.Energy), fleetview.Number(c.Price),
				fleetview.MilliCPU(c.Free.MilliCPU) + "/" + fleetview.MilliCPU(c.Allocatable.MilliCPU),
				fleetview.Bytes(c.Free.MemoryBytes) + "/" + fleetview.Bytes(c.Allocatable.MemoryBytes),
				c.Health(),
			},
		})
	}
	return rows
}

func leadRows(s *Snapshot) []Row {
	if s.Raft == nil {
		return nil
	}
	var rows []Row
	for _, l := range fleetview.LeadsOf(s.Raft) {
		rows = append(rows, Row{
			Key:   l.ID,
			Cells: []string{l.ID, l.State, fleetview.OrDash(l.Suffrage), fleetview.Reachable(l.Reachable), fleetview.OrDash(l.APIAddr)},
		})
	}
	return rows
}

// leadSummary is the line above the leads table.
func leadSummary(st *apiv1.RaftStatus) string {
	if st == nil {
		return ""
	}
	leader := st.Leader
	if leader == "" {
		leader = "none"
	}
	return fmt.Sprintf("leader %s · term %d · last index %d · applied %d · answered by %s (%s)",
		leader, st.Term, st.LastIndex, st.AppliedIndex, st.ID, st.State)
}

// placementDetail is a component's state and its placement decision.
func placementDetail(s *Snapshot, key string, now time.Time) (title, body string) {
	appName, comp, _ := strings.Cut(key, "/")
	var b strings.Builder
	for i := range s.Apps {
		a := &s.Apps[i]
		if a.Spec.Metadata.Name != appName {
			continue
		}
		for _, c := range fleetview.Components(a) {
			if c.Component != comp {
				continue
			}
			tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
			where := c.Cluster
			if where == "" {
				where = "<pending>"
			}
			if e := c.Explanation; e != nil && e.Summary != "" {
				fmt.Fprintf(tw, "Why:\t%s\n", e.Summary)
			}
			fmt.Fprintf(tw, "Cluster:\t%s\n", where)
			if c.From != "" {
				fmt.Fprintf(tw, "Leaving:\t%s (make-before-break)\n", c.From)
			}
			fmt.Fprintf(tw, "Nodes:\t%s\n", fleetview.Join(c.Nodes))
			fmt.Fprintf(tw, "Phase:\t%s, %s ready, for %s\n", c.Phase, c.ReadyString(), fleetview.Age(now, c.Since))
			if c.Message != "" {
				fmt.Fprintf(tw, "Message:\t%s\n", c.Message)
			}
			if c.Reason != "" && c.Reason != c.Message {
				fmt.Fprintf(tw, "Reason:\t%s\n", c.Reason)
			}
			_ = tw.Flush()
			b.WriteString("\n")
			_ = fleetview.WriteExplanation(&b, c.Explanation)
			return appName + "/" + comp, b.String()
		}
	}
	return key, "This component is gone."
}

// clusterDetail is a cluster's facts and its nodes.
func clusterDetail(s *Snapshot, name string, now time.Time) (title, body string) {
	var b strings.Builder
	for _, c := range fleetview.ClustersOf(s.Clusters, s.Nodes) {
		if c.Name != name {
			continue
		}
		tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
		fmt.Fprintf(tw, "Tier:\t%s\nRole:\t%s\nEndpoint:\t%s\nHealth:\t%s (last seen %s ago)\n", c.Tier, c.Role, fleetview.OrDash(c.Endpoint), c.Health(), fleetview.Age(now, c.LastSeen))
		fmt.Fprintf(tw, "Energy:\t%s\nPrice:\t%s\nBandwidth:\t%s\n", fleetview.Number(c.Energy), fleetview.Number(c.Price), fleetview.Bandwidth(c.Bandwidth))
		fmt.Fprintf(tw, "Free:\t%s of %s\n", fleetview.Resources(c.Free), fleetview.Resources(c.Allocatable))
		_ = tw.Flush()
		b.WriteString("\nNodes:\n")
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "  NAME\tSTATUS\tCPU FREE\tMEM FREE\tENERGY\tPRICE\n")
		nodes := append([]fleet.Node(nil), s.Nodes...)
		fleetview.SortNodes(nodes)
		for _, n := range nodes {
			if n.Cluster != name {
				continue
			}
			energy, _ := labelOrDash(n, fleet.LabelEnergy)
			price, _ := labelOrDash(n, fleet.LabelPrice)
			free := n.Free()
			fmt.Fprintf(tw, "  %s\t%s\t%s/%s\t%s/%s\t%s\t%s\n", n.Name, fleetview.NodeConditions(n),
				fleetview.MilliCPU(free.MilliCPU), fleetview.MilliCPU(n.Allocatable.MilliCPU),
				fleetview.Bytes(free.MemoryBytes), fleetview.Bytes(n.Allocatable.MemoryBytes), energy, price)
		}
		_ = tw.Flush()
		return "cluster " + name, b.String()
	}
	return "cluster " + name, "This cluster is gone."
}

func labelOrDash(n fleet.Node, label string) (string, bool) {
	v, ok := fleetview.LabelFloat(n, label)
	if !ok {
		return "-", false
	}
	return fleetview.Number(v), true
}

// leadDetail is one member of the lead group.
func leadDetail(s *Snapshot, id string) (title, body string) {
	if s.Raft == nil {
		return "lead " + id, "No lead group status."
	}
	for _, l := range fleetview.LeadsOf(s.Raft) {
		if l.ID != id {
			continue
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
		fmt.Fprintf(tw, "State:\t%s\nSuffrage:\t%s\nReachable:\t%s (as the leader sees it)\nRaft address:\t%s\nAPI address:\t%s\n",
			l.State, fleetview.OrDash(l.Suffrage), fleetview.Reachable(l.Reachable), fleetview.OrDash(l.RaftAddr), fleetview.OrDash(l.APIAddr))
		fmt.Fprintf(tw, "\nGroup:\tterm %d, commit %d, applied %d, KB hash %s\n", s.Raft.Term, s.Raft.CommitIndex, s.Raft.AppliedIndex, fleetview.OrDash(s.Raft.KBHash))
		_ = tw.Flush()
		return "lead " + id, b.String()
	}
	return "lead " + id, "This lead is no longer a member."
}
