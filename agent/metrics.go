package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the agent's Prometheus metrics.
type Metrics struct {
	// LeadRequests counts calls to the leads by call and result (ok,
	// error: a lead refused it, unreachable: no lead answered).
	LeadRequests *prometheus.CounterVec
	// LeadUp is 1 while the last call reached a lead.
	LeadUp prometheus.Gauge
	// AssignmentIndex is the index of the last assignments received.
	AssignmentIndex prometheus.Gauge
	// Components counts assigned components by phase.
	Components *prometheus.GaugeVec
	// Applies counts component applies by result (applied, failed) and
	// objects refused.
	Applies *prometheus.CounterVec
	// ApplyDuration is how long applying one component takes.
	ApplyDuration prometheus.Histogram
	// Removed counts objects removed because no longer assigned.
	Removed prometheus.Counter
	// Nodes is the number of nodes of the cluster.
	Nodes prometheus.Gauge
	// NodeReports counts node reports sent, full or changes.
	NodeReports *prometheus.CounterVec
	// Leader is 1 in the replica that holds the leader election lease.
	Leader prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (unless nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "qonnect_agent"
	m := &Metrics{
		LeadRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "lead_requests_total",
			Help: "Calls to the leads by call and result."}, []string{"call", "result"}),
		LeadUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "lead_up",
			Help: "1 while the last call reached a lead."}),
		AssignmentIndex: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "assignment_index",
			Help: "Index of the last assignments received from a lead."}),
		Components: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "components",
			Help: "Components assigned to this cluster by phase."}, []string{"phase"}),
		Applies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "applies_total",
			Help: "Component applies by result; refused counts objects refused."}, []string{"result"}),
		ApplyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "apply_duration_seconds",
			Help: "Time to apply one component.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		Removed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "removed_objects_total",
			Help: "Objects removed because the leads no longer assign them here."}),
		Nodes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "nodes",
			Help: "Nodes of the cluster."}),
		NodeReports: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "node_reports_total",
			Help: "Node reports sent, full or changes."}, []string{"kind"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "leader",
			Help: "1 in the replica that is active."}),
	}
	if reg != nil {
		reg.MustRegister(m.LeadRequests, m.LeadUp, m.AssignmentIndex, m.Components, m.Applies,
			m.ApplyDuration, m.Removed, m.Nodes, m.NodeReports, m.Leader)
	}
	return m
}
