// Package fleetview turns what the leads answer into display-ready facts:
// one row per application, component, cluster, node or lead, with the
// derived values (is a component healthy, what a cluster costs) computed in
// one place, so the commands' tables and the TUI never disagree.
package fleetview

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

// Application-level statuses, derived from the components' phases.
const (
	StatusHealthy     = "Healthy"
	StatusProgressing = "Progressing"
	StatusMigrating   = "Migrating"
	StatusPending     = "Pending"
	StatusFailed      = "Failed"
)

// Component is one component of an application with where it runs and how
// it is doing.
type Component struct {
	App       string
	Component string
	Tier      fleet.Tier
	// Cluster is empty while the component is pending.
	Cluster string
	Nodes   []string
	// From is the cluster a migrating component is leaving.
	From  string
	Phase fleet.Phase
	// Ready and Desired are replica counts as the agent reports them.
	Ready, Desired int32
	// Message is the agent's message, or the placement's reason.
	Message string
	// Since is when the phase last changed (or the decision, without a status).
	Since       time.Time
	Decided     time.Time
	Generation  int64
	Reason      string
	Explanation *scheduler.Explanation
}

// Healthy reports whether the component runs where it was placed and is
// available at the generation it was placed for.
func (c Component) Healthy() bool {
	return c.Cluster != "" && c.From == "" && c.Phase == fleet.PhaseHealthy
}

// ReadyString is "ready/desired", or "-" when nothing was reported.
func (c Component) ReadyString() string {
	if c.Desired == 0 && c.Ready == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", c.Ready, c.Desired)
}

// Components lists an application's components in the order of its spec,
// then any placement the spec no longer names (being removed).
func Components(app *apiv1.App) []Component {
	byName := map[string]*scheduler.Placement{}
	for i := range app.Placements {
		byName[app.Placements[i].Component] = &app.Placements[i]
	}
	names := make([]string, 0, len(app.Spec.Spec.Components))
	seen := map[string]bool{}
	for _, c := range app.Spec.Spec.Components {
		names = append(names, c.Name)
		seen[c.Name] = true
	}
	var extra []string
	for n := range byName {
		if !seen[n] {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	names = append(names, extra...)

	out := make([]Component, 0, len(names))
	for _, n := range names {
		c := Component{App: app.Spec.Metadata.Name, Component: n, Phase: fleet.PhasePending}
		if sc := app.Spec.Component(n); sc != nil {
			c.Tier = sc.Tier
		}
		if p := byName[n]; p != nil {
			c.Tier, c.Cluster, c.Nodes, c.From = p.Tier, p.Cluster, p.Nodes, p.From
			c.Decided, c.Since, c.Generation = p.Decided, p.Decided, p.Generation
			c.Reason, c.Message, c.Explanation = p.Reason, p.Reason, p.Explanation
		}
		if st := statusOf(app, n, c.Cluster); st != nil {
			c.Phase, c.Ready, c.Desired = st.Phase, st.Ready, st.Desired
			if st.Message != "" {
				c.Message = st.Message
			}
			if !st.Since.IsZero() {
				c.Since = st.Since
			}
			// A Healthy report for an older generation says nothing about
			// the spec now placed: the agent has not applied it yet.
			if c.Phase == fleet.PhaseHealthy && st.Generation < c.Generation {
				c.Phase = fleet.PhaseProgressing
			}
		}
		if c.Cluster == "" {
			c.Phase = fleet.PhasePending
		}
		out = append(out, c)
	}
	return out
}

func statusOf(app *apiv1.App, component, cluster string) *fleet.ComponentStatus {
	if cluster == "" {
		return nil
	}
	for i := range app.Statuses {
		s := &app.Statuses[i]
		if s.Component == component && s.Cluster == cluster {
			return s
		}
	}
	return nil
}

// App is one application's summary row.
type App struct {
	Name       string
	Namespace  string
	Generation int64
	Components int
	Healthy    int
	Status     string
	QoS        spec.QoS
	Clusters   []string
	Created    time.Time
	Updated    time.Time
}

// AppOf summarises an application.
func AppOf(app *apiv1.App) App {
	comps := Components(app)
	a := App{
		Name:       app.Spec.Metadata.Name,
		Namespace:  app.Spec.NamespaceOf(),
		Generation: app.Generation,
		Components: len(app.Spec.Spec.Components),
		QoS:        app.Spec.Spec.QoS,
		Created:    app.Created,
		Updated:    app.Updated,
	}
	clusters := map[string]bool{}
	var failed, pending, migrating bool
	for _, c := range comps {
		if c.Healthy() {
			a.Healthy++
		}
		if c.Cluster != "" {
			clusters[c.Cluster] = true
		}
		switch {
		case c.Phase == fleet.PhaseFailed:
			failed = true
		case c.Cluster == "":
			pending = true
		case c.From != "":
			migrating = true
		}
	}
	for c := range clusters {
		a.Clusters = append(a.Clusters, c)
	}
	sort.Strings(a.Clusters)
	switch {
	case failed:
		a.Status = StatusFailed
	case pending:
		a.Status = StatusPending
	case migrating:
		a.Status = StatusMigrating
	case a.Healthy == len(comps) && len(comps) > 0:
		a.Status = StatusHealthy
	default:
		a.Status = StatusProgressing
	}
	return a
}

// Cluster is one cluster with a summary of its nodes.
type Cluster struct {
	apiv1.ClusterInfo
	// Energy and Price are the mean of the nodes' labels; NaN when no node
	// carries a valid label.
	Energy, Price float64
	// Bandwidth is the mean of the nodes' bandwidth labels (bit/s); NaN if none.
	Bandwidth float64
	// Allocatable and Free sum the cluster's ready nodes.
	Allocatable, Free fleet.Resources
}

// Health is how the cluster is doing in one word.
func (c Cluster) Health() string {
	switch {
	case !c.Alive:
		return "Down"
	case c.Nodes > 0 && c.ReadyNodes == 0:
		return "NoReadyNodes"
	case c.ReadyNodes < c.Nodes:
		return "Degraded"
	}
	return "Alive"
}

// ClustersOf joins clusters with their nodes, sorted by tier then name.
func ClustersOf(clusters []apiv1.ClusterInfo, nodes []fleet.Node) []Cluster {
	byCluster := map[string][]fleet.Node{}
	for _, n := range nodes {
		byCluster[n.Cluster] = append(byCluster[n.Cluster], n)
	}
	out := make([]Cluster, 0, len(clusters))
	for _, ci := range clusters {
		c := Cluster{ClusterInfo: ci}
		c.Energy = meanLabel(byCluster[ci.Name], fleet.LabelEnergy)
		c.Price = meanLabel(byCluster[ci.Name], fleet.LabelPrice)
		c.Bandwidth = meanLabel(byCluster[ci.Name], fleet.LabelBandwidth)
		for _, n := range byCluster[ci.Name] {
			if !n.Ready {
				continue
			}
			c.Allocatable = c.Allocatable.Add(n.Allocatable)
			c.Free = c.Free.Add(n.Free())
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ti, tj := TierOrder(out[i].Tier), TierOrder(out[j].Tier); ti != tj {
			return ti < tj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// TierOrder sorts tiers cloud, fog, edge, then unknown ones.
func TierOrder(t fleet.Tier) int {
	for i, k := range fleet.Tiers {
		if k == t {
			return i
		}
	}
	return len(fleet.Tiers)
}

func meanLabel(nodes []fleet.Node, label string) float64 {
	var sum float64
	var n int
	for _, node := range nodes {
		v, ok := LabelFloat(node, label)
		if !ok {
			continue
		}
		sum += v
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// LabelFloat reads a numeric QoS label; ok is false when it is missing or
// malformed (the scheduler reports those, the views show "-").
func LabelFloat(n fleet.Node, label string) (float64, bool) {
	s, ok := n.Labels[label]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// NodeConditions lists what is wrong with a node, or "Ready".
func NodeConditions(n fleet.Node) string {
	var bad []string
	if !n.Ready {
		bad = append(bad, "NotReady")
	}
	if n.Unschedulable {
		bad = append(bad, "SchedulingDisabled")
	}
	if n.MemoryPressure {
		bad = append(bad, "MemoryPressure")
	}
	if n.DiskPressure {
		bad = append(bad, "DiskPressure")
	}
	if n.PIDPressure {
		bad = append(bad, "PIDPressure")
	}
	if len(bad) == 0 {
		return "Ready"
	}
	return strings.Join(bad, ",")
}

// SortNodes orders nodes by tier-independent cluster name, then node name.
func SortNodes(nodes []fleet.Node) {
	sort.SliceStable(nodes, func(i, j int) bool {
		if nodes[i].Cluster != nodes[j].Cluster {
			return nodes[i].Cluster < nodes[j].Cluster
		}
		return nodes[i].Name < nodes[j].Name
	})
}

// SortApps orders applications by name.
func SortApps(apps []apiv1.App) {
	sort.SliceStable(apps, func(i, j int) bool { return apps[i].Spec.Metadata.Name < apps[j].Spec.Metadata.Name })
}

// Age is kubectl's AGE: a short human duration, "<unknown>" for a zero time.
func Age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

// MilliCPU formats CPU as Kubernetes does: whole cores or millicores.
func MilliCPU(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// Bytes formats a size with a binary suffix, one decimal where it helps.
func Bytes(b int64) string {
	const unit = 1024
	if b < unit && b > -unit {
		return strconv.FormatInt(b, 10)
	}
	suffixes := []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	v := float64(b)
	i := -1
	for math.Abs(v) >= unit && i < len(suffixes)-1 {
		v /= unit
		i++
	}
	if v == math.Trunc(v) || math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f%s", v, suffixes[i])
	}
	return fmt.Sprintf("%.1f%s", v, suffixes[i])
}

// Bandwidth formats bits per second.
func Bandwidth(bps float64) string {
	if math.IsNaN(bps) {
		return "-"
	}
	units := []string{"bit/s", "Kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"}
	i := 0
	for bps >= 1000 && i < len(units)-1 {
		bps /= 1000
		i++
	}
	return strconv.FormatFloat(bps, 'f', -1, 64) + units[i]
}

// Number formats a label value compactly, "-" for NaN.
func Number(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// QoS formats weights as "energy=1 cost=0 performance=0", or "balanced".
func QoS(q spec.QoS) string {
	if q.Balanced() {
		return "balanced"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	return "energy=" + f(q.Energy) + " cost=" + f(q.Cost) + " performance=" + f(q.Performance)
}

// Lead is one member of the lead group with its state in one word.
type Lead struct {
	apiv1.Member
	State string
}

// LeadsOf lists the members, the leader first, then by ID.
func LeadsOf(st *apiv1.RaftStatus) []Lead {
	out := make([]Lead, 0, len(st.Members))
	for _, m := range st.Members {
		l := Lead{Member: m, State: "Follower"}
		if m.Leader || (st.Leader != "" && m.ID == st.Leader) {
			l.State = "Leader"
			l.Leader = true
		}
		if m.Suffrage != "" && m.Suffrage != "Voter" {
			l.State = m.Suffrage
		}
		if m.Reachable != nil && !*m.Reachable {
			l.State = "Unreachable"
		}
		out = append(out, l)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Leader != out[j].Leader {
			return out[i].Leader
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Reachable formats the leader's view of a member.
func Reachable(r *bool) string {
	switch {
	case r == nil:
		return "unknown"
	case *r:
		return "yes"
	}
	return "no"
}

// OrDash returns s, or "-" when it is empty.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Join joins names with commas, "-" when there are none.
func Join(names []string) string { return OrDash(strings.Join(names, ",")) }
