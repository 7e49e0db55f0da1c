package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/raftstore"
)

// GET /v1/clusters
func (s *Server) listClusters(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "list clusters", isUserOrLead); !ok {
		return
	}
	if err := s.catchUp(r); err != nil {
		s.fail(w, r, err)
		return
	}
	st, idx := s.kb.View()
	leader := s.store.IsLeader()
	now := s.cfg.Now()
	out := apiv1.ClusterList{Index: idx, Items: []apiv1.ClusterInfo{}}
	for _, name := range slices.Sorted(maps.Keys(st.Clusters)) {
		ci := apiv1.ClusterInfo{Cluster: *st.Clusters[name]}
		for _, n := range st.Nodes[name] {
			ci.Nodes++
			if n.Ready {
				ci.ReadyNodes++
			}
		}
		if leader {
			ci.Alive = s.cfg.Liveness.Alive(name, now, s.cfg.ClusterTimeout)
			ci.LastSeen = s.cfg.Liveness.LastSeen(name)
		} else {
			// The leader's last replicated verdict.
			_, down := st.Down[name]
			ci.Alive = !down
		}
		out.Items = append(out.Items, ci)
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /v1/nodes[?cluster=NAME]
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "list nodes", isUserOrLead); !ok {
		return
	}
	cluster := r.URL.Query().Get("cluster")
	var err error
	if cluster != "" {
		err = checkLabel("cluster", cluster)
	}
	if err == nil {
		err = s.catchUp(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, idx := s.kb.View()
	out := apiv1.NodeList{Index: idx, Items: st.NodeList(cluster)}
	if out.Items == nil {
		out.Items = []fleet.Node{}
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /v1/raft[?consistent=true]. Agents may read it too: it is how they
// find the lead group.
func (s *Server) raftStatus(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "read raft status", func(id pki.Identity) bool {
		return isUserOrLead(id) || id.Role == pki.RoleAgent
	}); !ok {
		return
	}
	if err := s.catchUp(r); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Status())
}

// POST /v1/raft/members
func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authorize(w, r, "manage raft members", isUserOrLead)
	if !ok {
		return
	}
	var req apiv1.MemberRequest
	body, err := readJSON(w, r, &req)
	if err == nil {
		err = checkSubdomain("id", req.ID)
	}
	if err == nil {
		err = checkAddr("raftAddress", req.RaftAddr)
	}
	if err == nil {
		err = checkAddr("apiAddress", req.APIAddr)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	voter := req.Voter == nil || *req.Voter
	s.onLeader(w, r, id, body, func() (any, error) {
		if err := s.store.AddMember(r.Context(), raftstore.Peer{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}, voter); err != nil {
			return nil, fmt.Errorf("add member %q: %w", req.ID, err)
		}
		s.log.Info("raft member added", "id", req.ID, "raft", req.RaftAddr, "api", req.APIAddr, "voter", voter, "by", id.String())
		return apiv1.Ack{Index: s.kb.Index()}, nil
	})
}

// DELETE /v1/raft/members/{id}
func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authorize(w, r, "manage raft members", isUserOrLead)
	if !ok {
		return
	}
	member := r.PathValue("id")
	if err := checkSubdomain("id", member); err != nil {
		s.fail(w, r, err)
		return
	}
	s.onLeader(w, r, id, nil, func() (any, error) {
		if err := s.store.RemoveMember(r.Context(), member); err != nil {
			if errors.Is(err, kb.ErrNotFound) {
				return nil, errorf(http.StatusNotFound, apiv1.CodeNotFound, "no raft member %q", member)
			}
			return nil, fmt.Errorf("remove member %q: %w", member, err)
		}
		s.log.Info("raft member removed", "id", member, "by", id.String())
		return apiv1.Ack{Index: s.kb.Index()}, nil
	})
}

// GET /v1/watch?index=N&wait=D — answers when the KB's index passes N (at
// once for N=0), or after wait with the same index.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "watch the knowledge base", isUserOrLead); !ok {
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
	idx := s.kb.Index()
	if index > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		idx, err = s.kb.WaitIndex(ctx, index)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return // the caller went away
		}
	}
	writeJSON(w, http.StatusOK, apiv1.WatchResult{Index: idx})
}
