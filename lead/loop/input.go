package loop

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
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

// InputOptions are the lead's view beyond the KB: which clusters are down,
// which components failed, and (on the leader) fresher node report times.
type InputOptions struct {
	Now    time.Time
	Down   map[string]bool
	Failed map[string]bool
	// Liveness, when set, supplies node report times newer than the KB's
	// (reports that changed no fact are not replicated).
	Liveness *liveness.Tracker
}

// BuildInput assembles the scheduler's input for app from the KB state.
func BuildInput(st *kb.State, app *kb.App, opts InputOptions) scheduler.Input {
	in := scheduler.Input{
		Now:        opts.Now,
		App:        app.Spec,
		Generation: app.Generation,
		Down:       opts.Down,
		Failed:     opts.Failed,
		Excluded:   map[string]map[string]time.Time{},
	}
	for _, name := range slices.Sorted(maps.Keys(st.Clusters)) {
		in.Clusters = append(in.Clusters, *st.Clusters[name])
	}
	for _, cn := range slices.Sorted(maps.Keys(st.Nodes)) {
		var seen time.Time
		if opts.Liveness != nil {
			seen = opts.Liveness.NodesSeen(cn)
		}
		nodes := st.Nodes[cn]
		for _, n := range slices.Sorted(maps.Keys(nodes)) {
			node := *nodes[n]
			if seen.After(node.Reported) {
				node.Reported = seen
			}
			in.Nodes = append(in.Nodes, node)
		}
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
