package loop

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/liveness"
)

// ScheduleFunc decides an application's components: scheduler.Schedule,
// or a fake in tests. Keeping the loop's dependency this small lets the
// scheduler and the loop change independently.
type ScheduleFunc func(scheduler.Config, scheduler.Input) []scheduler.Decision

// SafeSchedule calls fn and turns a panic into an error, so one bad
// application (or a scheduler bug) cannot take the lead down.
func SafeSchedule(fn ScheduleFunc, cfg scheduler.Config, in scheduler.Input) (ds []scheduler.Decision, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("scheduler panicked on %q: %v", in.App.Metadata.Name, r)
		}
	}()
	return fn(cfg, in), nil
}

// PrepareFunc indexes the fleet once for a round over many applications
// (scheduler.Prepare).
type PrepareFunc func(cfg scheduler.Config, now time.Time, clusters []fleet.Cluster, nodes []fleet.Node) *scheduler.Prepared

// Fleet is the clusters and nodes of one scheduling round, built once and
// shared by every application's input (copying 20,000 nodes per
// application would dominate a round).
type Fleet struct {
	Clusters []fleet.Cluster
	Nodes    []fleet.Node
	// Prepared, when set, is the fleet indexed by the scheduler; Reserve
	// each decision on it so later applications see the room taken.
	Prepared *scheduler.Prepared
}

// NewFleet collects the fleet from the KB. With live, node report times
// are the leader's in-memory ones when newer (reports that changed no
// fact are not replicated), and at least the start of its grace period.
func NewFleet(st *kb.State, live *liveness.Tracker) *Fleet {
	f := &Fleet{Clusters: make([]fleet.Cluster, 0, len(st.Clusters))}
	for _, name := range slices.Sorted(maps.Keys(st.Clusters)) {
		f.Clusters = append(f.Clusters, *st.Clusters[name])
	}
	n := 0
	for _, nodes := range st.Nodes {
		n += len(nodes)
	}
	f.Nodes = make([]fleet.Node, 0, n)
	var grace time.Time
	if live != nil {
		grace = live.GraceStart()
	}
	for _, cn := range slices.Sorted(maps.Keys(st.Nodes)) {
		var seen time.Time
		if live != nil {
			seen = live.NodesSeen(cn)
		}
		// Like clusters, nodes get the grace of a new leader: before it,
		// their reports went to another lead (or to none, while every lead
		// was down), and facts that are merely late must not make a
		// running component look homeless.
		if grace.After(seen) {
			seen = grace
		}
		nodes := st.Nodes[cn]
		for _, name := range slices.Sorted(maps.Keys(nodes)) {
			node := *nodes[name]
			if seen.After(node.Reported) {
				node.Reported = seen
			}
			f.Nodes = append(f.Nodes, node)
		}
	}
	return f
}

// InputOptions are the lead's view beyond the KB: which clusters are down,
// which components failed, and the round's fleet.
type InputOptions struct {
	Now    time.Time
	Down   map[string]bool
	Failed map[string]bool
	// Fleet is the round's fleet; nil builds one from st (with Liveness).
	Fleet    *Fleet
	Liveness *liveness.Tracker
}

// BuildInput assembles the scheduler's input for app, whose decoded spec
// is sp, from the KB state.
func BuildInput(st *kb.State, app *kb.App, sp *spec.Application, opts InputOptions) scheduler.Input {
	f := opts.Fleet
	if f == nil {
		f = NewFleet(st, opts.Liveness)
	}
	in := scheduler.Input{
		Now:        opts.Now,
		App:        sp,
		Generation: app.Generation,
		Clusters:   f.Clusters,
		Nodes:      f.Nodes,
		Prepared:   f.Prepared,
		Down:       opts.Down,
		Failed:     opts.Failed,
		Excluded:   map[string]map[string]time.Time{},
	}
	for _, comp := range slices.Sorted(maps.Keys(app.Placements)) {
		in.Current = append(in.Current, *app.Placements[comp])
	}
	for comp, m := range app.Exclusions {
		for cl, until := range m {
			if until.After(opts.Now) {
				if in.Excluded[comp] == nil {
					in.Excluded[comp] = map[string]time.Time{}
				}
				in.Excluded[comp][cl] = until
			}
		}
	}
	if in.Down == nil {
		in.Down = map[string]bool{}
	}
	if in.Failed == nil {
		in.Failed = map[string]bool{}
	}
	return in
}

// DownClusters lists the clusters the KB records as down (the leader's
// last verdict), for leads that do not track liveness themselves.
func DownClusters(st *kb.State) map[string]bool {
	down := map[string]bool{}
	for c := range st.Down {
		down[c] = true
	}
	return down
}

// samePlacement compares what an agent acts on, ignoring when and why the
// decision was made.
func samePlacement(a, b *scheduler.Placement) bool {
	return a.Cluster == b.Cluster && slices.Equal(a.Nodes, b.Nodes) &&
		a.From == b.From && slices.Equal(a.FromNodes, b.FromNodes) &&
		a.Generation == b.Generation && a.Tier == b.Tier &&
		(a.Cluster != "" || a.Reason == b.Reason)
}

func healthyAt(s *fleet.ComponentStatus, gen int64) bool {
	return s != nil && s.Phase == fleet.PhaseHealthy && s.Generation >= gen
}
