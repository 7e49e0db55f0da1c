package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
)

// compKey names a component across the fleet.
type compKey struct{ App, Component string }

func (k compKey) String() string { return k.App + "/" + k.Component }

// objRef is one object the agent applied.
type objRef struct {
	GVR       schema.GroupVersionResource
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

// identity names the object whatever API version it is read in.
func (r objRef) identity() string {
	return r.GVR.GroupResource().String() + "/" + r.Namespace + "/" + r.Name
}

func (r objRef) String() string { return r.GVK.Kind + "/" + r.Name }

// compState is what the agent knows of one component assigned to its
// cluster. Guarded by Agent.mu.
type compState struct {
	assignment apiv1.Assignment // the latest received
	// hash is of the assignment last applied without a failure; an
	// assignment with the same hash needs no apply until the next resync.
	hash string
	gen  int64 // the generation last applied (or attempted)
	// applied are the objects the last apply wrote; with no failure, the
	// whole component.
	applied []objRef
	failure string // why the last apply failed, "" if it did not
	leaving bool
	// retryAt is when a failed apply is tried again.
	retryAt        time.Time
	failedAttempts int

	phase fleet.Phase
	since time.Time              // when phase last changed
	sent  *fleet.ComponentStatus // what the lead last acknowledged
}

// componentHealth is how a component is doing in the cluster now.
func (a *Agent) componentHealth(st *compState, now time.Time) health {
	if st.gen == 0 {
		return health{Phase: fleet.PhasePending, Message: "not applied yet"}
	}
	hs := make([]health, 0, len(st.applied))
	for _, r := range st.applied {
		obj, ok := a.watch.workload(r.GVK.GroupKind(), r.Namespace, r.Name)
		switch {
		case !ok:
			hs = append(hs, health{Phase: fleet.PhaseProgressing, Message: r.String() + " is not in the cluster yet"})
		case obj == nil:
			hs = append(hs, health{Phase: fleet.PhaseHealthy})
		default:
			hs = append(hs, objectHealth(obj))
		}
	}
	h := combine(hs)
	if st.failure != "" {
		h.Phase, h.Message = fleet.PhaseFailed, st.failure
		return h
	}
	if h.Phase != fleet.PhaseHealthy {
		// The workload says "not available"; its pods usually say why.
		pods := a.watch.componentPods(st.assignment.Namespace, st.assignment.App, st.assignment.Component)
		if ph, msg, ok := podProblem(pods, now); ok {
			if severity(ph) > severity(h.Phase) {
				h.Phase = ph
			}
			h.Message = msg
		}
	}
	return h
}

// statusReport computes every component's status and returns those to
// send: all of them when full, else those that changed since the lead
// last acknowledged them.
func (a *Agent) statusReport(now time.Time, full bool) apiv1.StatusReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	rep := apiv1.StatusReport{Statuses: []fleet.ComponentStatus{}}
	counts := map[fleet.Phase]int{}
	for k, st := range a.components {
		h := a.componentHealth(st, now)
		counts[h.Phase]++
		if h.Phase != st.phase {
			if st.phase != "" {
				a.log.Info("component phase changed", "app", k.App, "component", k.Component,
					"from", st.phase, "to", h.Phase, "message", h.Message, "generation", st.gen)
			}
			st.phase, st.since = h.Phase, now
		}
		cs := fleet.ComponentStatus{
			App:        k.App,
			Component:  k.Component,
			Cluster:    a.cfg.Cluster.Name,
			Generation: st.gen,
			Phase:      h.Phase,
			Message:    truncate(h.Message, 1024),
			Ready:      h.Ready,
			Desired:    h.Desired,
			Since:      st.since,
		}
		if full || st.sent == nil || !sameStatus(*st.sent, cs) {
			rep.Statuses = append(rep.Statuses, cs)
		}
	}
	for _, p := range []fleet.Phase{fleet.PhasePending, fleet.PhaseProgressing, fleet.PhaseHealthy, fleet.PhaseFailed} {
		a.metrics.Components.WithLabelValues(string(p)).Set(float64(counts[p]))
	}
	slices.SortFunc(rep.Statuses, func(x, y fleet.ComponentStatus) int {
		return strings.Compare(x.App+"/"+x.Component, y.App+"/"+y.Component)
	})
	return rep
}

// statusSent records what the lead acknowledged.
func (a *Agent) statusSent(rep apiv1.StatusReport) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cs := range rep.Statuses {
		if st, ok := a.components[compKey{cs.App, cs.Component}]; ok {
			c := cs
			st.sent = &c
		}
	}
}

// sameStatus compares what the lead stores of a status.
func sameStatus(x, y fleet.ComponentStatus) bool {
	return x.Phase == y.Phase && x.Message == y.Message && x.Generation == y.Generation &&
		x.Ready == y.Ready && x.Desired == y.Desired
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s… (%d more bytes)", s[:n], len(s)-n)
}
