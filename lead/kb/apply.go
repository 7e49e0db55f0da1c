package kb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
)

// apply is the applier: it decodes cmd's payload and changes st. A returned
// error means the entry cannot be applied at all (the FSM stops); a command
// that is applied but rejected (not found, conflict) returns its reason in
// Result.Err and leaves st unchanged.
func apply(st *State, index uint64, cmd *Command) (*Result, error) {
	newPayload, ok := payloadTypes[cmd.Type]
	if !ok {
		return nil, fmt.Errorf("unknown command type %q", cmd.Type)
	}
	p := newPayload()
	dec := json.NewDecoder(bytes.NewReader(cmd.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", cmd.Type, err)
	}
	res := &Result{Index: index}
	a := &applier{st: st, index: index, now: cmd.Time.UTC(), res: res}
	var err error
	switch p := p.(type) {
	case *RegisterCluster:
		err = a.registerCluster(p)
	case *ReportNodes:
		err = a.reportNodes(p)
	case *ReportStatus:
		err = a.reportStatus(p)
	case *SetLiveness:
		err = a.setLiveness(p)
	case *PutApp:
		err = a.putApp(p, res)
	case *DeleteApp:
		err = a.deleteApp(p)
	case *SetPlacements:
		err = a.setPlacements(p)
	case *SetMember:
		err = a.setMember(p)
	case *RemoveMember:
		err = a.removeMember(p)
	default:
		return nil, fmt.Errorf("no applier for command type %q", cmd.Type)
	}
	res.Err = err
	return res, nil
}

type applier struct {
	st    *State
	index uint64
	now   time.Time
	res   *Result
}

// touch marks clusters' assignments as changed at this index.
func (a *applier) touch(clusters ...string) {
	for _, c := range clusters {
		if c != "" {
			a.st.ClusterIndex[c] = a.index
			a.res.touched = append(a.res.touched, c)
		}
	}
}

func (a *applier) registerCluster(p *RegisterCluster) error {
	in := p.Cluster
	if in.Name == "" {
		return fmt.Errorf("register cluster: %w: empty name", ErrInvalid)
	}
	old := a.st.Clusters[in.Name]
	c := &fleet.Cluster{
		Name:       in.Name,
		Tier:       in.Tier,
		Role:       in.Role,
		Endpoint:   in.Endpoint,
		Labels:     maps.Clone(in.Labels),
		Registered: a.now,
		LastReport: a.now,
	}
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if old != nil {
		c.Registered = old.Registered
		if sameClusterFacts(old, c) {
			return nil // idempotent: nothing changed
		}
		if old.Endpoint != c.Endpoint {
			// Every cluster that runs a component of an application that
			// has a component here sees a new address.
			for _, app := range a.st.Apps {
				cl := app.Clusters()
				if slices.Contains(cl, c.Name) {
					a.touch(cl...)
				}
			}
		}
	}
	a.st.Clusters[c.Name] = c
	return nil
}

func sameClusterFacts(a, b *fleet.Cluster) bool {
	return a.Tier == b.Tier && a.Role == b.Role && a.Endpoint == b.Endpoint && maps.Equal(a.Labels, b.Labels)
}

func (a *applier) reportNodes(p *ReportNodes) error {
	cl := a.st.Clusters[p.Cluster]
	if cl == nil {
		return fmt.Errorf("report nodes: cluster %q: %w", p.Cluster, ErrNotFound)
	}
	var nodes map[string]*fleet.Node
	if p.Full {
		nodes = make(map[string]*fleet.Node, len(p.Nodes))
	} else {
		nodes = maps.Clone(a.st.Nodes[p.Cluster])
		if nodes == nil {
			nodes = map[string]*fleet.Node{}
		}
		for _, name := range p.Deleted {
			delete(nodes, name)
		}
	}
	factsChanged := len(nodes) != len(a.st.Nodes[p.Cluster])
	for i := range p.Nodes {
		n := p.Nodes[i]
		if n.Name == "" {
			return fmt.Errorf("report nodes: cluster %q: node %d: %w: empty name", p.Cluster, i, ErrInvalid)
		}
		n.Cluster = p.Cluster
		n.Labels = maps.Clone(n.Labels)
		if len(n.Labels) == 0 {
			n.Labels = nil
		}
		n.Reported = a.now
		old := a.st.Nodes[p.Cluster][n.Name]
		factsChanged = factsChanged || old == nil || !SameNodeFacts(old, &n)
		nodes[n.Name] = &n
	}
	a.st.Nodes[p.Cluster] = nodes
	// LastReport moves only when facts changed, not when a report merely
	// refreshed the nodes' Reported times: the scheduling loop watches it.
	if factsChanged {
		c := *cl
		c.LastReport = a.now
		a.st.Clusters[p.Cluster] = &c
	}
	return nil
}

// SameNodeFacts reports whether two reports of a node agree on everything
// but the time they were sent.
func SameNodeFacts(a, b *fleet.Node) bool {
	x, y := *a, *b
	x.Reported, y.Reported = time.Time{}, time.Time{}
	if len(x.Labels) == 0 && len(y.Labels) == 0 {
		x.Labels, y.Labels = nil, nil
	}
	return reflect.DeepEqual(x, y)
}

func (a *applier) reportStatus(p *ReportStatus) error {
	if a.st.Clusters[p.Cluster] == nil {
		return fmt.Errorf("report status: cluster %q: %w", p.Cluster, ErrNotFound)
	}
	changed := map[string]*App{}
	for _, s := range p.Statuses {
		app := changed[s.App]
		if app == nil {
			app = a.st.Apps[s.App]
		}
		if app == nil {
			continue // deleted meanwhile: the agent will learn it from its assignments
		}
		pl := app.Placements[s.Component]
		if pl == nil || (pl.Cluster != p.Cluster && pl.From != p.Cluster) {
			continue // no longer placed here: a late report, nothing to keep
		}
		key := StatusKey(s.Component, p.Cluster)
		old := app.Statuses[key]
		if old != nil && s.Generation < old.Generation {
			continue // out of order: never roll a component back
		}
		ns := s
		ns.Cluster = p.Cluster
		ns.Heartbeat = a.now
		ns.Since = a.now
		if old != nil && old.Phase == ns.Phase && old.Generation == ns.Generation {
			ns.Since = old.Since
		}
		if changed[s.App] == nil {
			app = app.clone()
			changed[s.App] = app
		}
		app.Statuses[key] = &ns
	}
	for name, app := range changed {
		a.st.Apps[name] = app
	}
	return nil
}

func (a *applier) setLiveness(p *SetLiveness) error {
	if a.st.Clusters[p.Cluster] == nil {
		return fmt.Errorf("set liveness: cluster %q: %w", p.Cluster, ErrNotFound)
	}
	if p.Alive {
		delete(a.st.Down, p.Cluster)
	} else if _, down := a.st.Down[p.Cluster]; !down {
		a.st.Down[p.Cluster] = a.now
	}
	return nil
}

func (a *applier) putApp(p *PutApp, res *Result) error {
	name := p.Spec.Metadata.Name
	if name == "" {
		return fmt.Errorf("put application: %w: empty name", ErrInvalid)
	}
	old := a.st.Apps[name]
	var gen int64
	if old != nil {
		gen = old.Generation
	}
	if p.ExpectGeneration != nil && *p.ExpectGeneration != gen {
		return fmt.Errorf("put application %q: stored generation is %d, not %d: %w", name, gen, *p.ExpectGeneration, ErrConflict)
	}
	sp := p.Spec
	// json.Marshal writes maps with sorted keys: equal specs, equal bytes.
	canon, err := json.Marshal(&sp)
	if err != nil {
		return fmt.Errorf("put application %q: %w: %v", name, ErrInvalid, err)
	}
	if old != nil && bytes.Equal(old.SpecJSON, canon) {
		res.Outcome, res.Generation = "unchanged", gen
		return nil
	}
	var app *App
	if old == nil {
		app = &App{
			Created:      a.now,
			Placements:   map[string]*scheduler.Placement{},
			Statuses:     map[string]*fleet.ComponentStatus{},
			Exclusions:   map[string]map[string]time.Time{},
			Explanations: map[string][]byte{},
		}
		res.Outcome = "created"
	} else {
		app = old.clone()
		res.Outcome = "configured"
		a.touch(old.Clusters()...) // what those clusters run changed
	}
	app.Name, app.Namespace, app.SpecJSON = name, sp.NamespaceOf(), canon
	app.Components = make([]string, 0, len(sp.Spec.Components))
	for _, c := range sp.Spec.Components {
		app.Components = append(app.Components, c.Name)
	}
	app.Generation = gen + 1
	app.Updated = a.now
	// Components that left the spec leave their clusters too.
	for comp := range app.Placements {
		if !app.HasComponent(comp) {
			delete(app.Placements, comp)
			delete(app.Exclusions, comp)
			delete(app.Explanations, comp)
			for key, s := range app.Statuses {
				if s.Component == comp {
					delete(app.Statuses, key)
				}
			}
		}
	}
	reason := "Created"
	if old != nil {
		reason = "Updated"
	}
	app.Events = addEvents(app.Events, apiv1.Event{Time: a.now, Reason: reason,
		Message: fmt.Sprintf("generation %d", app.Generation)})
	a.st.Apps[name] = app
	res.Generation = app.Generation
	return nil
}

func (a *applier) deleteApp(p *DeleteApp) error {
	old := a.st.Apps[p.Name]
	if old == nil {
		return fmt.Errorf("delete application %q: %w", p.Name, ErrNotFound)
	}
	if p.ExpectGeneration != nil && *p.ExpectGeneration != old.Generation {
		return fmt.Errorf("delete application %q: stored generation is %d, not %d: %w", p.Name, old.Generation, *p.ExpectGeneration, ErrConflict)
	}
	a.touch(old.Clusters()...)
	delete(a.st.Apps, p.Name)
	return nil
}

func (a *applier) setPlacements(p *SetPlacements) error {
	old := a.st.Apps[p.App]
	if old == nil {
		return fmt.Errorf("set placements of %q: %w", p.App, ErrNotFound)
	}
	if p.Generation != old.Generation {
		return fmt.Errorf("set placements of %q: decided for generation %d, application is at %d: %w", p.App, p.Generation, old.Generation, ErrConflict)
	}
	if p.ExpectRev != old.PlacementRev {
		return fmt.Errorf("set placements of %q: read revision %d, stored is %d: %w", p.App, p.ExpectRev, old.PlacementRev, ErrConflict)
	}
	for _, pl := range p.Placements {
		if !old.HasComponent(pl.Component) {
			return fmt.Errorf("set placements of %q: %w: no component %q", p.App, ErrInvalid, pl.Component)
		}
	}
	app := old.clone()
	a.touch(old.Clusters()...)
	for _, pl := range p.Placements {
		pl.App = p.App
		app.Placements[pl.Component] = &pl
		// A new decision's old explanation no longer applies.
		if z := p.Explanations[pl.Component]; len(z) > 0 {
			app.Explanations[pl.Component] = z
		} else {
			delete(app.Explanations, pl.Component)
		}
	}
	// A status is kept only where its component is placed or leaving.
	for key, s := range app.Statuses {
		pl := app.Placements[s.Component]
		if pl == nil || (pl.Cluster != s.Cluster && pl.From != s.Cluster) {
			delete(app.Statuses, key)
		}
	}
	// Exclusions: drop the expired ones, add the new ones.
	excl := map[string]map[string]time.Time{}
	for comp, m := range app.Exclusions {
		for cl, until := range m {
			if until.After(a.now) {
				if excl[comp] == nil {
					excl[comp] = map[string]time.Time{}
				}
				excl[comp][cl] = until
			}
		}
	}
	for _, e := range p.Exclude {
		if e.Until.After(a.now) && e.Component != "" && e.Cluster != "" {
			if excl[e.Component] == nil {
				excl[e.Component] = map[string]time.Time{}
			}
			excl[e.Component][e.Cluster] = e.Until.UTC()
		}
	}
	app.Exclusions = excl
	app.Events = addEvents(app.Events, p.Events...)
	app.PlacementRev = a.index
	a.st.Apps[p.App] = app
	a.touch(app.Clusters()...)
	return nil
}

func (a *applier) setMember(p *SetMember) error {
	m := p.Member
	if m.ID == "" {
		return fmt.Errorf("set member: %w: empty id", ErrInvalid)
	}
	if old := a.st.Members[m.ID]; old != nil && *old == m {
		return nil
	}
	a.st.Members[m.ID] = &m
	a.st.MembersIndex = a.index
	a.res.allTouched = true
	return nil
}

func (a *applier) removeMember(p *RemoveMember) error {
	if a.st.Members[p.ID] == nil {
		return fmt.Errorf("remove member %q: %w", p.ID, ErrNotFound)
	}
	delete(a.st.Members, p.ID)
	a.st.MembersIndex = a.index
	a.res.allTouched = true
	return nil
}

// addEvents appends events, keeping the newest MaxEvents.
func addEvents(events []apiv1.Event, add ...apiv1.Event) []apiv1.Event {
	for _, e := range add {
		e.Time = e.Time.UTC()
		events = append(events, e)
	}
	if len(events) > MaxEvents {
		events = slices.Clone(events[len(events)-MaxEvents:])
	}
	return events
}
