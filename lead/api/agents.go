package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/lead/kb"
)

// Limits on what one report may carry.
const (
	maxNodesPerReport    = 10000
	maxStatusesPerReport = 4096
	maxLabels            = 64
	maxMessageLen        = 2048
	maxEndpointLen       = 512
)

// nodeRefresh is how old a node's replicated report time may grow before
// an unchanged report is replicated anyway, so every lead (and a dry run
// on a follower) sees nodes as fresh. The leader's loop uses its own
// in-memory times regardless.
const nodeRefresh = 30 * time.Second

func validateLabels(field string, labels map[string]string) error {
	if len(labels) > maxLabels {
		return badRequest(field, "at most %d labels, got %d", maxLabels, len(labels))
	}
	for k, v := range labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return badRequest(field, "label key %q: %s", k, errs[0])
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return badRequest(field, "label %q value %q: %s", k, v, errs[0])
		}
	}
	return nil
}

func validateCluster(c *fleet.Cluster) error {
	if err := checkLabel("cluster.name", c.Name); err != nil {
		return err
	}
	if _, err := fleet.ParseTier(string(c.Tier)); err != nil {
		return badRequest("cluster.tier", "%v", err)
	}
	switch c.Role {
	case "":
		c.Role = fleet.RoleMember
	case fleet.RoleLead, fleet.RoleMember:
	default:
		return badRequest("cluster.role", "unknown role %q (want lead or member)", c.Role)
	}
	if len(c.Endpoint) > maxEndpointLen {
		return badRequest("cluster.endpoint", "longer than %d characters", maxEndpointLen)
	}
	return validateLabels("cluster.labels", c.Labels)
}

// leads is the lead list agents are given.
func (s *Server) leads(st *kb.State) []string {
	if l := st.LeadAPIs(); len(l) > 0 {
		return l
	}
	if s.cfg.APIAddr != "" {
		return []string{s.cfg.APIAddr}
	}
	return []string{}
}

func (s *Server) heartbeatInterval() time.Duration { return s.cfg.ClusterTimeout / 4 }

// POST /v1/clusters
func (s *Server) registerCluster(w http.ResponseWriter, r *http.Request) {
	var req apiv1.RegisterRequest
	body, err := readJSON(w, r, &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, ok := s.authorize(w, r, fmt.Sprintf("register cluster %q", req.Cluster.Name), func(id pki.Identity) bool {
		return isAgentOf(id, req.Cluster.Name)
	})
	if !ok {
		return
	}
	if err := validateCluster(&req.Cluster); err != nil {
		s.fail(w, r, err)
		return
	}
	s.onLeader(w, r, id, body, func() (any, error) {
		c := req.Cluster
		s.cfg.Liveness.Seen(c.Name, s.cfg.Now())
		var same bool
		s.kb.Read(func(st *kb.State, _ uint64) {
			old := st.Clusters[c.Name]
			same = old != nil && old.Tier == c.Tier && old.Role == c.Role && old.Endpoint == c.Endpoint && mapsEqual(old.Labels, c.Labels)
		})
		if !same {
			if _, err := s.store.Apply(r.Context(), kb.TypeRegisterCluster, kb.RegisterCluster{Cluster: c}); err != nil {
				return nil, fmt.Errorf("register cluster %q: %w", c.Name, err)
			}
			s.log.Info("cluster registered", "cluster", c.Name, "tier", c.Tier, "agentVersion", req.AgentVersion)
		}
		resp := apiv1.RegisterResponse{HeartbeatInterval: s.heartbeatInterval()}
		s.kb.Read(func(st *kb.State, idx uint64) { resp.Index, resp.Leads = idx, s.leads(st) })
		return resp, nil
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// clusterPath reads and checks {name} and that the caller is its agent.
func (s *Server) clusterPath(w http.ResponseWriter, r *http.Request, what string, allowed func(pki.Identity, string) bool) (string, pki.Identity, bool) {
	name := r.PathValue("name")
	if err := checkLabel("name", name); err != nil {
		s.fail(w, r, err)
		return "", pki.Identity{}, false
	}
	id, ok := s.authorize(w, r, fmt.Sprintf("%s for cluster %q", what, name), func(id pki.Identity) bool { return allowed(id, name) })
	return name, id, ok
}

// registered fails with 404 when the cluster is unknown.
func (s *Server) registered(name string) error {
	var ok bool
	s.kb.Read(func(st *kb.State, _ uint64) { ok = st.Clusters[name] != nil })
	if !ok {
		return errorf(http.StatusNotFound, apiv1.CodeNotFound, "cluster %q is not registered; register it first", name)
	}
	return nil
}

// PUT /v1/clusters/{name}/nodes
func (s *Server) reportNodes(w http.ResponseWriter, r *http.Request) {
	name, id, ok := s.clusterPath(w, r, "report nodes", isAgentOf)
	if !ok {
		return
	}
	var rep apiv1.NodeReport
	body, err := readJSON(w, r, &rep)
	if err == nil {
		err = validateNodeReport(name, &rep)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.onLeader(w, r, id, body, func() (any, error) {
		now := s.cfg.Now()
		s.cfg.Liveness.SeenNodes(name, now)
		if err := s.registered(name); err != nil {
			return nil, err
		}
		cmd := kb.ReportNodes{Cluster: name}
		s.kb.Read(func(st *kb.State, _ uint64) {
			stored := st.Nodes[name]
			listed := map[string]bool{}
			for i := range rep.Nodes {
				n := &rep.Nodes[i]
				listed[n.Name] = true
				old := stored[n.Name]
				if old == nil || !kb.SameNodeFacts(old, n) || now.Sub(old.Reported) > nodeRefresh {
					cmd.Nodes = append(cmd.Nodes, *n)
				}
			}
			if rep.Full {
				for n := range stored {
					if !listed[n] {
						cmd.Deleted = append(cmd.Deleted, n)
					}
				}
			} else {
				for _, n := range rep.Deleted {
					if stored[n] != nil {
						cmd.Deleted = append(cmd.Deleted, n)
					}
				}
			}
		})
		// Only what changed is replicated; an unchanged report was a heartbeat.
		if len(cmd.Nodes) > 0 || len(cmd.Deleted) > 0 {
			slices.Sort(cmd.Deleted)
			res, err := s.store.Apply(r.Context(), kb.TypeReportNodes, cmd)
			if err != nil {
				return nil, fmt.Errorf("report nodes of %q: %w", name, err)
			}
			return apiv1.Ack{Index: res.Index}, nil
		}
		return apiv1.Ack{Index: s.kb.Index()}, nil
	})
}

func validateNodeReport(cluster string, rep *apiv1.NodeReport) error {
	if len(rep.Nodes) > maxNodesPerReport {
		return badRequest("nodes", "at most %d nodes per report, got %d", maxNodesPerReport, len(rep.Nodes))
	}
	seen := map[string]bool{}
	for i := range rep.Nodes {
		n := &rep.Nodes[i]
		field := fmt.Sprintf("nodes[%d]", i)
		if err := checkSubdomain(field+".name", n.Name); err != nil {
			return err
		}
		if seen[n.Name] {
			return badRequest(field+".name", "node %q listed twice", n.Name)
		}
		seen[n.Name] = true
		if n.Cluster != "" && n.Cluster != cluster {
			return badRequest(field+".cluster", "node %q claims cluster %q in a report for %q", n.Name, n.Cluster, cluster)
		}
		n.Cluster = cluster
		for _, res := range []struct {
			f string
			r fleet.Resources
		}{{"allocatable", n.Allocatable}, {"requested", n.Requested}} {
			if res.r.MilliCPU < 0 || res.r.MemoryBytes < 0 || res.r.EphemeralStorage < 0 || res.r.Pods < 0 {
				return badRequest(field+"."+res.f, "resources may not be negative")
			}
		}
		if err := validateLabels(field+".labels", n.Labels); err != nil {
			return err
		}
		n.Reported = time.Time{} // the lead's clock decides
	}
	if len(rep.Deleted) > maxNodesPerReport {
		return badRequest("deleted", "at most %d names", maxNodesPerReport)
	}
	for i, d := range rep.Deleted {
		if err := checkSubdomain(fmt.Sprintf("deleted[%d]", i), d); err != nil {
			return err
		}
	}
	return nil
}

var phases = []fleet.Phase{fleet.PhasePending, fleet.PhaseProgressing, fleet.PhaseHealthy, fleet.PhaseFailed, fleet.PhaseRemoving}

func validateStatusReport(cluster string, rep *apiv1.StatusReport) error {
	if len(rep.Statuses) > maxStatusesPerReport {
		return badRequest("statuses", "at most %d statuses per report, got %d", maxStatusesPerReport, len(rep.Statuses))
	}
	for i := range rep.Statuses {
		st := &rep.Statuses[i]
		field := fmt.Sprintf("statuses[%d]", i)
		if err := checkLabel(field+".app", st.App); err != nil {
			return err
		}
		if err := checkLabel(field+".component", st.Component); err != nil {
			return err
		}
		if st.Cluster != "" && st.Cluster != cluster {
			return badRequest(field+".cluster", "status for cluster %q in a report for %q", st.Cluster, cluster)
		}
		st.Cluster = cluster
		if !slices.Contains(phases, st.Phase) {
			return badRequest(field+".phase", "unknown phase %q", st.Phase)
		}
		if len(st.Message) > maxMessageLen {
			st.Message = st.Message[:maxMessageLen]
		}
		if st.Generation < 0 || st.Ready < 0 || st.Desired < 0 {
			return badRequest(field, "generation and replica counts may not be negative")
		}
		st.Since, st.Heartbeat = time.Time{}, time.Time{} // the lead's clock decides
	}
	return nil
}

// PUT /v1/clusters/{name}/status — also the heartbeat.
func (s *Server) reportStatus(w http.ResponseWriter, r *http.Request) {
	name, id, ok := s.clusterPath(w, r, "report status", isAgentOf)
	if !ok {
		return
	}
	var rep apiv1.StatusReport
	body, err := readJSON(w, r, &rep)
	if err == nil {
		err = validateStatusReport(name, &rep)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.onLeader(w, r, id, body, func() (any, error) {
		s.cfg.Liveness.Seen(name, s.cfg.Now())
		if err := s.registered(name); err != nil {
			return nil, err
		}
		var changed []fleet.ComponentStatus
		s.kb.Read(func(st *kb.State, _ uint64) {
			for _, cs := range rep.Statuses {
				app := st.Apps[cs.App]
				if app == nil {
					continue
				}
				p := app.Placements[cs.Component]
				if p == nil || (p.Cluster != name && p.From != name) {
					continue
				}
				old := app.Status(cs.Component, name)
				if old == nil || old.Phase != cs.Phase || old.Message != cs.Message || old.Generation != cs.Generation ||
					old.Ready != cs.Ready || old.Desired != cs.Desired {
					changed = append(changed, cs)
				}
			}
		})
		if len(changed) == 0 {
			return apiv1.Ack{Index: s.kb.Index()}, nil
		}
		res, err := s.store.Apply(r.Context(), kb.TypeReportStatus, kb.ReportStatus{Cluster: name, Statuses: changed})
		if err != nil {
			return nil, fmt.Errorf("report status of %q: %w", name, err)
		}
		return apiv1.Ack{Index: res.Index}, nil
	})
}

// GET /v1/clusters/{name}/assignments?index=N&wait=D — a blocking query:
// with index 0 it answers at once; otherwise when the cluster's assignment
// index passes N, or after wait with the same index.
func (s *Server) assignments(w http.ResponseWriter, r *http.Request) {
	name, _, ok := s.clusterPath(w, r, "read assignments", func(id pki.Identity, c string) bool {
		return isAgentOf(id, c) || isUserOrLead(id)
	})
	if !ok {
		return
	}
	index, wait, err := blockingParams(r)
	if err == nil {
		err = s.catchUp(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// A lead cut off from the leader would hand out stale assignments and
	// hold the agent's long-poll forever: it sends the agent elsewhere.
	if err := s.leaderKnown(); err != nil {
		s.fail(w, r, err)
		return
	}
	if index > 0 {
		deadline := time.Now().Add(wait)
		for {
			step := min(time.Until(deadline), leaderCheckEvery)
			ctx, cancel := context.WithTimeout(r.Context(), step)
			_, err := s.kb.WaitCluster(ctx, name, index)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return // the caller went away
			}
			if err := s.leaderKnown(); err != nil {
				s.fail(w, r, err)
				return
			}
			if !time.Now().Before(deadline) {
				break
			}
		}
	}
	// Under the read lock, not on a copy: only this cluster's applications
	// are decoded, and copying the whole KB per poll would cost more.
	var out apiv1.Assignments
	s.kb.Read(func(st *kb.State, _ uint64) {
		out = apiv1.Assignments{Index: st.AssignmentIndex(name), Items: st.Assignments(name), Leads: s.leads(st)}
	})
	if out.Items == nil {
		out.Items = []apiv1.Assignment{}
	}
	writeJSON(w, http.StatusOK, out)
}

// leaderCheckEvery is how often a waiting blocking query checks that this
// lead is still in touch with a leader.
const leaderCheckEvery = time.Second

// leaderKnown fails with 503 when this lead neither leads nor knows a
// leader: it is cut off from the majority, and what it holds may be stale.
func (s *Server) leaderKnown() error {
	if s.store.IsLeader() || s.store.LeaderAPI() != "" {
		return nil
	}
	return errorf(http.StatusServiceUnavailable, apiv1.CodeUnavailable, "lead %s is cut off from the leader; ask another lead", s.store.ID())
}

// checkAddr validates a host:port address.
func checkAddr(field, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || port == "" {
		return badRequest(field, "%q is not a host:port address", v)
	}
	return nil
}
