package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/loop"
)

// toApp converts a stored application for the wire, with the placements'
// explanations when explain is set (they are most of an application's
// size, so lists leave them out unless asked).
func (s *Server) toApp(a *kb.App, explain bool) apiv1.App {
	out := apiv1.App{
		Generation: a.Generation,
		Created:    a.Created,
		Updated:    a.Updated,
		Placements: []scheduler.Placement{},
		Statuses:   []fleet.ComponentStatus{},
		Events:     slices.Clone(a.Events),
	}
	if sp, err := a.Spec(); err != nil {
		s.log.Error("stored spec does not decode", "app", a.Name, "err", err) // a corrupt KB
	} else {
		out.Spec = *sp
	}
	for _, c := range a.Components {
		p := a.Placements[c]
		if explain {
			p = a.Placement(c)
		}
		if p != nil {
			out.Placements = append(out.Placements, *p)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Statuses)) {
		out.Statuses = append(out.Statuses, *a.Statuses[k])
	}
	return out
}

// withHeartbeats shows, on the leader, the last time each status's cluster
// was heard from: status heartbeats are replicated only when the status
// changes, the leader's memory has the live time.
func (s *Server) withHeartbeats(a apiv1.App) apiv1.App {
	if !s.store.IsLeader() {
		return a
	}
	for i := range a.Statuses {
		if seen := s.cfg.Liveness.LastSeen(a.Statuses[i].Cluster); seen.After(a.Statuses[i].Heartbeat) {
			a.Statuses[i].Heartbeat = seen
		}
	}
	return a
}

// GET /v1/apps[?explain=true] — without explanations unless asked.
func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "list applications", isUserOrLead); !ok {
		return
	}
	if err := s.catchUp(r); err != nil {
		s.fail(w, r, err)
		return
	}
	st, idx := s.kb.View()
	out := apiv1.AppList{Index: idx, Items: []apiv1.App{}}
	for _, name := range slices.Sorted(maps.Keys(st.Apps)) {
		out.Items = append(out.Items, s.withHeartbeats(s.toApp(st.Apps[name], r.URL.Query().Get("explain") == "true")))
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /v1/apps/{name}
func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "read applications", isUserOrLead); !ok {
		return
	}
	name := r.PathValue("name")
	err := checkLabel("name", name)
	if err == nil {
		err = s.catchUp(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	a := s.kb.App(name)
	if a == nil {
		s.fail(w, r, errorf(http.StatusNotFound, apiv1.CodeNotFound, "application %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, s.withHeartbeats(s.toApp(a, true)))
}

// POST /v1/apps[?dryRun=true]
func (s *Server) applyApp(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authorize(w, r, "manage applications", isUserOrLead)
	if !ok {
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	app, err := s.decodeSpec(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("dryRun") == "true" {
		// Answered here, by any lead: nothing is stored.
		out, err := s.dryRun(app)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	s.onLeader(w, r, id, body, func() (any, error) {
		res, err := s.store.Apply(r.Context(), kb.TypePutApp, kb.PutApp{Spec: *app})
		if err != nil {
			return nil, fmt.Errorf("apply application %q: %w", app.Metadata.Name, err)
		}
		stored := s.kb.App(app.Metadata.Name)
		if stored == nil {
			return nil, fmt.Errorf("apply application %q: deleted right after it was stored: %w", app.Metadata.Name, kb.ErrConflict)
		}
		out := apiv1.ApplyResult{Index: res.Index, Result: res.Outcome, App: s.toApp(stored, true)}
		s.log.Info("application applied", "app", app.Metadata.Name, "result", res.Outcome, "generation", res.Generation, "by", id.String())
		return out, nil
	})
}

// decodeSpec decodes and validates a spec; any problem is a 400 naming
// the field (or 413 when the spec is over its own limit).
func (s *Server) decodeSpec(body []byte) (*spec.Application, error) {
	if len(body) > spec.MaxSpecBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, apiv1.CodeTooLarge, "spec is %d bytes, larger than the limit of %d", len(body), spec.MaxSpecBytes)
	}
	app, err := spec.Decode(body, "")
	if err == nil {
		err = spec.Validate(app, s.cfg.Validate)
	}
	if err != nil {
		var fe *spec.FieldError
		if errors.As(err, &fe) {
			return nil, &httpError{status: http.StatusBadRequest, body: apiv1.Error{Code: apiv1.CodeBadRequest, Message: fe.Msg, Field: fe.Field, File: fe.File}}
		}
		return nil, badRequest("", "%v", err)
	}
	return app, nil
}

// dryRun schedules app on a copy of the state and reports where its
// components would go and why.
func (s *Server) dryRun(app *spec.Application) (apiv1.ApplyResult, error) {
	st, idx := s.kb.View()
	now := s.cfg.Now()
	cand := &kb.App{
		Name:       app.Metadata.Name,
		Generation: 1,
		Placements: map[string]*scheduler.Placement{},
		Statuses:   map[string]*fleet.ComponentStatus{},
		Exclusions: map[string]map[string]time.Time{},
	}
	result := "created"
	if old := st.Apps[app.Metadata.Name]; old != nil {
		cand.Placements, cand.Statuses, cand.Exclusions = old.Placements, old.Statuses, old.Exclusions
		cand.Created, cand.Updated = old.Created, old.Updated
		cand.Generation, result = old.Generation+1, "configured"
		if canon, err := json.Marshal(app); err == nil && bytes.Equal(canon, old.SpecJSON) {
			cand.Generation, result = old.Generation, "unchanged"
		}
	}
	opts := loop.InputOptions{Now: now}
	if s.store.IsLeader() {
		opts.Liveness = s.cfg.Liveness
		opts.Down = map[string]bool{}
		for c := range st.Clusters {
			if !s.cfg.Liveness.Alive(c, now, s.cfg.ClusterTimeout) {
				opts.Down[c] = true
			}
		}
	} else {
		opts.Down = loop.DownClusters(st)
	}
	decisions, err := loop.SafeSchedule(s.cfg.Schedule, s.cfg.Scheduler, loop.BuildInput(st, cand, app, opts))
	if err != nil {
		s.log.Error("dry run: scheduler failed", "app", app.Metadata.Name, "err", err)
		return apiv1.ApplyResult{}, errorf(http.StatusServiceUnavailable, apiv1.CodeUnavailable, "scheduler unavailable: %v", err)
	}
	out := apiv1.ApplyResult{Index: idx, Result: result, DryRun: true, App: apiv1.App{
		Spec: *app, Generation: cand.Generation, Created: cand.Created, Updated: cand.Updated,
		Placements: []scheduler.Placement{}, Statuses: []fleet.ComponentStatus{},
	}}
	for _, d := range decisions {
		p := d.Placement
		p.App, p.Component, p.Generation = app.Metadata.Name, d.Component, cand.Generation
		if p.Reason == "" && d.Action != scheduler.ActionKeep {
			p.Reason = string(d.Action)
		}
		out.App.Placements = append(out.App.Placements, p)
	}
	return out, nil
}

// DELETE /v1/apps/{name}
func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authorize(w, r, "manage applications", isUserOrLead)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := checkLabel("name", name); err != nil {
		s.fail(w, r, err)
		return
	}
	s.onLeader(w, r, id, nil, func() (any, error) {
		res, err := s.store.Apply(r.Context(), kb.TypeDeleteApp, kb.DeleteApp{Name: name})
		if err != nil {
			if errors.Is(err, kb.ErrNotFound) {
				return nil, errorf(http.StatusNotFound, apiv1.CodeNotFound, "application %q not found", name)
			}
			return nil, fmt.Errorf("delete application %q: %w", name, err)
		}
		s.log.Info("application deleted", "app", name, "by", id.String())
		return apiv1.Ack{Index: res.Index}, nil
	})
}
