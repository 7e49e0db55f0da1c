package kb

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

// MaxEvents bounds the events kept per application; older ones are dropped.
const MaxEvents = 32

// State is the knowledge base.
//
// Copy-on-write: everything reachable from State except its top-level maps
// is immutable once stored; the applier replaces objects and inner maps
// instead of changing them. A shallow copy of the top-level maps is
// therefore a consistent snapshot that readers may use without a lock.
// Callers must never modify what they read.
type State struct {
	Clusters map[string]*fleet.Cluster `json:"clusters"`
	// Nodes by cluster, then by node name.
	Nodes map[string]map[string]*fleet.Node `json:"nodes"`
	Apps  map[string]*App                   `json:"apps"`
	// Down maps each cluster the leader declared down to when it did.
	Down    map[string]time.Time `json:"down"`
	Members map[string]*Member   `json:"members"`
	// ClusterIndex is the log index at which each cluster's assignments
	// last changed; MembersIndex the one at which the lead list did.
	// Together they drive the agents' blocking queries.
	ClusterIndex map[string]uint64 `json:"clusterIndex"`
	MembersIndex uint64            `json:"membersIndex"`
}

// App is an application as stored.
type App struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Components are the spec's component names, in the spec's order.
	Components []string `json:"components"`
	// SpecJSON is the spec in canonical JSON (as json.Marshal writes it).
	// Decoded, specs with their manifests (maps of maps) were most of a
	// large KB's memory; encoded they take a tenth, and are decoded when
	// used (Spec): by the loop for the applications it schedules, by the
	// API for the ones it shows.
	SpecJSON   json.RawMessage `json:"spec"`
	Generation int64           `json:"generation"`
	Created    time.Time       `json:"created"`
	Updated    time.Time       `json:"updated"`
	// Placements by component.
	Placements map[string]*scheduler.Placement `json:"placements"`
	// PlacementRev is the log index of the last placement write, the guard
	// of SetPlacements.
	PlacementRev uint64 `json:"placementRev"`
	// Statuses by StatusKey(component, cluster).
	Statuses map[string]*fleet.ComponentStatus `json:"statuses"`
	// Exclusions: component → cluster → end of the back-off.
	Exclusions map[string]map[string]time.Time `json:"exclusions"`
	Events     []apiv1.Event                   `json:"events"`
	// Explanations by component: compressed (see CompressExplanation).
	Explanations map[string][]byte `json:"explanations"`
}

// Member is one lead's addresses.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddress"`
	APIAddr  string `json:"apiAddress"`
}

// StatusKey is the key of App.Statuses.
func StatusKey(component, cluster string) string { return component + "/" + cluster }

func newState() *State {
	return &State{
		Clusters:     map[string]*fleet.Cluster{},
		Nodes:        map[string]map[string]*fleet.Node{},
		Apps:         map[string]*App{},
		Down:         map[string]time.Time{},
		Members:      map[string]*Member{},
		ClusterIndex: map[string]uint64{},
	}
}

// shallowCopy copies the top-level maps; see State.
func (s *State) shallowCopy() *State {
	return &State{
		Clusters:     maps.Clone(s.Clusters),
		Nodes:        maps.Clone(s.Nodes),
		Apps:         maps.Clone(s.Apps),
		Down:         maps.Clone(s.Down),
		Members:      maps.Clone(s.Members),
		ClusterIndex: maps.Clone(s.ClusterIndex),
		MembersIndex: s.MembersIndex,
	}
}

// normalize replaces nil maps (as JSON decoding leaves them) with empty ones.
func (s *State) normalize() {
	if s.Clusters == nil {
		s.Clusters = map[string]*fleet.Cluster{}
	}
	if s.Nodes == nil {
		s.Nodes = map[string]map[string]*fleet.Node{}
	}
	if s.Apps == nil {
		s.Apps = map[string]*App{}
	}
	if s.Down == nil {
		s.Down = map[string]time.Time{}
	}
	if s.Members == nil {
		s.Members = map[string]*Member{}
	}
	if s.ClusterIndex == nil {
		s.ClusterIndex = map[string]uint64{}
	}
	for _, a := range s.Apps {
		if a.Placements == nil {
			a.Placements = map[string]*scheduler.Placement{}
		}
		if a.Statuses == nil {
			a.Statuses = map[string]*fleet.ComponentStatus{}
		}
		if a.Exclusions == nil {
			a.Exclusions = map[string]map[string]time.Time{}
		}
		if a.Explanations == nil {
			a.Explanations = map[string][]byte{}
		}
	}
}

// clone copies an App for modification: the struct and its inner maps; the
// objects they point to stay shared (they are replaced, never changed).
func (a *App) clone() *App {
	c := *a
	c.Placements = maps.Clone(a.Placements)
	c.Statuses = maps.Clone(a.Statuses)
	c.Exclusions = maps.Clone(a.Exclusions)
	c.Events = slices.Clone(a.Events)
	c.Explanations = maps.Clone(a.Explanations)
	if c.Explanations == nil {
		c.Explanations = map[string][]byte{}
	}
	return &c
}

// Clusters returns the clusters an application's placements refer to
// (where components run or are leaving), sorted.
func (a *App) Clusters() []string {
	set := map[string]bool{}
	for _, p := range a.Placements {
		if p.Cluster != "" {
			set[p.Cluster] = true
		}
		if p.From != "" {
			set[p.From] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Spec decodes the stored spec. It cannot fail on what the applier
// stored; an error means a corrupt KB.
func (a *App) Spec() (*spec.Application, error) {
	var sp spec.Application
	if err := json.Unmarshal(a.SpecJSON, &sp); err != nil {
		return nil, fmt.Errorf("decode stored spec of %q: %w", a.Name, err)
	}
	return &sp, nil
}

// HasComponent reports whether the spec has a component of that name.
func (a *App) HasComponent(name string) bool { return slices.Contains(a.Components, name) }

// Placement returns component's placement with its explanation
// decompressed, or nil.
func (a *App) Placement(component string) *scheduler.Placement {
	p := a.Placements[component]
	if p == nil {
		return nil
	}
	if z := a.Explanations[component]; z != nil && p.Explanation == nil {
		cp := *p
		if ex, err := DecompressExplanation(z); err == nil {
			cp.Explanation = ex
		}
		return &cp
	}
	return p
}

// gzipWriters are reused: a flate compressor allocates about a megabyte
// of state, and the loop compresses an explanation per decision.
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// CompressExplanation encodes an explanation for SetPlacements.Explanations.
func CompressExplanation(ex *scheduler.Explanation) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if err := json.NewEncoder(zw).Encode(ex); err != nil {
		return nil, fmt.Errorf("encode explanation: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var gzipReaders sync.Pool

// DecompressExplanation reverses CompressExplanation.
func DecompressExplanation(z []byte) (*scheduler.Explanation, error) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(z))
	} else {
		err = zr.Reset(bytes.NewReader(z))
	}
	if err != nil {
		return nil, fmt.Errorf("decompress explanation: %w", err)
	}
	defer gzipReaders.Put(zr)
	var ex scheduler.Explanation
	if err := json.NewDecoder(zr).Decode(&ex); err != nil {
		return nil, fmt.Errorf("decode explanation: %w", err)
	}
	return &ex, nil
}

// Status returns the status of component on cluster, or nil.
func (a *App) Status(component, cluster string) *fleet.ComponentStatus {
	return a.Statuses[StatusKey(component, cluster)]
}

// AssignmentIndex is the index at which the cluster's assignments last
// changed: its own placements, or the lead list every answer carries.
func (s *State) AssignmentIndex(cluster string) uint64 {
	return max(s.ClusterIndex[cluster], s.MembersIndex)
}

// Assignments computes what is assigned to cluster: every component placed
// there, and every component leaving it (Leaving). Addresses are computed
// here from the current placements and endpoints, so they are never stale.
// Only the specs of applications with a component there are decoded.
func (s *State) Assignments(cluster string) []apiv1.Assignment {
	var out []apiv1.Assignment
	for _, name := range slices.Sorted(maps.Keys(s.Apps)) {
		a := s.Apps[name]
		here := false
		for _, p := range a.Placements {
			here = here || p.Cluster == cluster || p.From == cluster
		}
		if !here {
			continue
		}
		sp, err := a.Spec()
		if err != nil {
			continue // cannot happen on a KB the applier wrote
		}
		addrs := s.addresses(a)
		for _, comp := range sp.Spec.Components {
			p := a.Placements[comp.Name]
			if p == nil || (p.Cluster != cluster && p.From != cluster) {
				continue
			}
			as := apiv1.Assignment{
				App:        name,
				Component:  comp.Name,
				Namespace:  a.Namespace,
				Generation: a.Generation,
				Resources:  comp.Resources,
				Addresses:  addrs,
			}
			if p.Cluster == cluster {
				as.Nodes = p.Nodes
			} else {
				as.Nodes = p.FromNodes
				as.Leaving = true
			}
			out = append(out, as)
		}
	}
	return out
}

// addresses maps each placed component of a to its cluster's endpoint.
func (s *State) addresses(a *App) map[string]string {
	m := map[string]string{}
	for comp, p := range a.Placements {
		if c := s.Clusters[p.Cluster]; c != nil && c.Endpoint != "" {
			m[comp] = c.Endpoint
		}
	}
	return m
}

// LeadAPIs are the members' API addresses, sorted.
func (s *State) LeadAPIs() []string {
	var out []string
	for _, m := range s.Members {
		if m.APIAddr != "" {
			out = append(out, m.APIAddr)
		}
	}
	slices.Sort(out)
	return out
}

// NodeList returns the nodes of cluster (every cluster if empty), sorted by
// cluster and name.
func (s *State) NodeList(cluster string) []fleet.Node {
	var out []fleet.Node
	for _, cn := range slices.Sorted(maps.Keys(s.Nodes)) {
		if cluster != "" && cn != cluster {
			continue
		}
		nodes := s.Nodes[cn]
		for _, n := range slices.Sorted(maps.Keys(nodes)) {
			out = append(out, *nodes[n])
		}
	}
	return out
}
