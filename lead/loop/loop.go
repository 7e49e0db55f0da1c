// Package loop is the scheduling loop. It runs on the Raft leader only: it
// places pending components, fails over components whose cluster went
// silent or that failed, migrates components make-before-break when the
// scheduler finds a better home, and records every verdict in the KB.
//
// It runs when the KB changes (a new spec, a status, new node facts), when
// a cluster's heartbeat deadline passes, and on a slow resync; never on a
// fixed short tick. Each pass first confirms leadership with a quorum, so
// a lead cut off from the majority never schedules.
package loop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/liveness"
	"qonnect.io/qonnect/lead/raftstore"
)

// Store is what the loop needs of the Raft store.
type Store interface {
	KB() *kb.KB
	IsLeader() bool
	VerifyLeader() error
	Apply(ctx context.Context, typ kb.Type, payload any) (*kb.Result, error)
}

// errScheduler marks a scheduler failure for one application.
var errScheduler = errors.New("scheduler failed")

// Defaults.
const (
	DefaultClusterTimeout = 12 * time.Second
	DefaultStuckTimeout   = 5 * time.Minute
	DefaultResync         = 2 * time.Minute
	DefaultDebounce       = 25 * time.Millisecond
	DefaultMinFull        = 5 * time.Second
)

// Config configures a Loop.
type Config struct {
	Store    Store
	Liveness *liveness.Tracker
	Schedule ScheduleFunc
	// Prepare, when set (scheduler.Prepare), indexes the fleet once per
	// pass for every application of the pass.
	Prepare PrepareFunc
	// Scheduler are the scheduler's knobs (Backoff is also the exclusion
	// time the loop records when the scheduler names none).
	Scheduler scheduler.Config
	// ClusterTimeout: a cluster silent for longer is down and what runs
	// there fails over.
	ClusterTimeout time.Duration
	// StuckTimeout: a component placed but not Healthy for longer (or never
	// reported) counts as failed where it is.
	StuckTimeout time.Duration
	Resync       time.Duration
	Debounce     time.Duration
	// MinFullInterval spaces out full passes caused by changing node facts
	// (requested resources move all the time on a large fleet): at most one
	// per interval; changed applications and liveness verdicts are handled
	// at once regardless. Default 5s; negative: no spacing.
	MinFullInterval time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
}

// Loop is the scheduling loop.
type Loop struct {
	cfg Config
	log *slog.Logger

	// lastApps and lastClusters are the objects seen by the last pass;
	// thanks to the KB's copy-on-write, a pointer that changed means the
	// object changed. Only the loop's goroutine touches them.
	lastApps     map[string]*kb.App
	lastClusters map[string]*fleet.Cluster
	lastDown     map[string]bool
	full         bool
	lastFull     time.Time
	// fullDue is set when a full pass was put off by MinFullInterval.
	fullDue bool

	passes    prometheus.Counter
	decisions *prometheus.CounterVec
	errs      prometheus.Counter
	duration  prometheus.Histogram
}

// New returns a loop with defaults filled in.
func New(cfg Config) *Loop {
	if cfg.ClusterTimeout == 0 {
		cfg.ClusterTimeout = DefaultClusterTimeout
	}
	if cfg.StuckTimeout == 0 {
		cfg.StuckTimeout = DefaultStuckTimeout
	}
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.MinFullInterval == 0 {
		cfg.MinFullInterval = DefaultMinFull
	}
	if cfg.Scheduler.Backoff == 0 {
		cfg.Scheduler.Backoff = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Liveness == nil {
		cfg.Liveness = liveness.New(cfg.Now())
	}
	l := &Loop{
		cfg: cfg, log: cfg.Logger, full: true,
		passes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "qonnect_loop_passes_total", Help: "Scheduling passes run."}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qonnect_loop_decisions_total", Help: "Placement changes stored, by action."}, []string{"action"}),
		errs:      prometheus.NewCounter(prometheus.CounterOpts{Name: "qonnect_loop_errors_total", Help: "Scheduling passes or applications that failed."}),
		duration:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "qonnect_loop_pass_seconds", Help: "Duration of a scheduling pass.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{l.passes, l.decisions, l.errs, l.duration} {
			if err := cfg.Registerer.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					l.log.Warn("register loop metric", "err", err)
				}
			}
		}
	}
	return l
}

// Run runs passes until ctx is done. Call it while this lead is leader
// (see Supervise); it starts with a full pass.
func (l *Loop) Run(ctx context.Context) error {
	l.full = true
	resync := time.NewTicker(l.cfg.Resync)
	defer resync.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	for {
		changed := l.cfg.Store.KB().Changed()
		if err := l.RunOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.errs.Inc()
			l.log.Warn("scheduling pass failed", "err", err)
			// Retry soon: a conflict or a lost quorum is usually brief.
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		// Wake when the next cluster would go silent past its timeout.
		if !expiry.Stop() {
			select {
			case <-expiry.C:
			default:
			}
		}
		var clusters []string
		l.cfg.Store.KB().Read(func(st *kb.State, _ uint64) { clusters = slices.Collect(maps.Keys(st.Clusters)) })
		next := l.cfg.Liveness.NextExpiry(clusters, l.cfg.Now(), l.cfg.ClusterTimeout)
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next) + 10*time.Millisecond
		}
		if l.fullDue {
			wait = min(wait, l.lastFull.Add(l.cfg.MinFullInterval).Sub(l.cfg.Now())+10*time.Millisecond)
		}
		expiry.Reset(max(wait, 0))

		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			// Let a burst of changes settle into one pass.
			select {
			case <-time.After(l.cfg.Debounce):
			case <-ctx.Done():
				return nil
			}
		case <-expiry.C:
		case <-resync.C:
			l.full = true
		}
	}
}

// RunOnce runs one scheduling pass. Tests call it directly.
func (l *Loop) RunOnce(ctx context.Context) error {
	start := time.Now()
	defer func() { l.duration.Observe(time.Since(start).Seconds()) }()
	l.passes.Inc()
	s := l.cfg.Store
	if !s.IsLeader() {
		return fmt.Errorf("scheduling pass: %w", raftstore.ErrNotLeader)
	}
	// A leader cut off from the majority still believes it leads until its
	// lease runs out; a quorum round trip settles it before any decision.
	if err := s.VerifyLeader(); err != nil {
		return fmt.Errorf("scheduling pass: %w", err)
	}
	now := l.cfg.Now()
	st, _ := s.KB().View()

	down, err := l.updateLiveness(ctx, st, now)
	if err != nil {
		return err
	}
	fleetChanged := !samePointers(st.Clusters, l.lastClusters)
	// A cluster that went down concerns only what runs there: those
	// applications are rescheduled at once, without a full pass, so a
	// failover does not wait behind thousands of other applications. One
	// that came back may take pending components: a full pass.
	wentDown := map[string]bool{}
	cameBack := false
	for c := range down {
		if !l.lastDown[c] {
			wentDown[c] = true
		}
	}
	for c := range l.lastDown {
		cameBack = cameBack || !down[c]
	}
	full := l.full || cameBack ||
		(fleetChanged && (l.cfg.MinFullInterval < 0 || now.Sub(l.lastFull) >= l.cfg.MinFullInterval))
	l.fullDue = fleetChanged && !full

	seen := make(map[string]*kb.App, len(st.Apps))
	var fl *Fleet // built on the first application that needs it
	for _, name := range slices.Sorted(maps.Keys(st.Apps)) {
		app := st.Apps[name]
		if !full && l.lastApps[name] == app && !runsOn(app, wentDown) {
			seen[name] = app // nothing about it or the fleet changed
			continue
		}
		if fl == nil {
			fl = NewFleet(st, l.cfg.Liveness)
			if l.cfg.Prepare != nil {
				fl.Prepared = l.cfg.Prepare(l.cfg.Scheduler, now, fl.Clusters, fl.Nodes)
			}
		}
		err := l.scheduleApp(ctx, st, fl, app, down, now)
		switch {
		case err == nil:
			seen[name] = app
		case errors.Is(err, errScheduler):
			// Left out of seen: retried on the next pass, without holding
			// up the other applications.
			l.errs.Inc()
			l.log.Error("cannot schedule application", "app", name, "err", err)
		default:
			return err
		}
	}
	// Pointers from before the pass: what this pass wrote changes them, so
	// the next pass looks at those applications once more (a no-op when the
	// scheduler is stable, as it must be).
	l.lastApps = seen
	if full {
		// Only a full pass has looked at every application with these facts.
		l.lastClusters = maps.Clone(st.Clusters)
		l.lastFull = now
	}
	l.lastDown = down
	l.full = false
	return nil
}

// runsOn reports whether any component of app runs on (or is leaving) one
// of clusters.
func runsOn(app *kb.App, clusters map[string]bool) bool {
	if len(clusters) == 0 {
		return false
	}
	for _, p := range app.Placements {
		if clusters[p.Cluster] || clusters[p.From] {
			return true
		}
	}
	return false
}

func samePointers[V any](a, b map[string]*V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// updateLiveness decides which clusters are down and replicates changed
// verdicts (only the verdicts, never the heartbeats behind them).
func (l *Loop) updateLiveness(ctx context.Context, st *kb.State, now time.Time) (map[string]bool, error) {
	down := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(st.Clusters)) {
		alive := l.cfg.Liveness.Alive(name, now, l.cfg.ClusterTimeout)
		if !alive {
			down[name] = true
		}
		if _, recorded := st.Down[name]; recorded == !alive {
			continue
		}
		if _, err := l.cfg.Store.Apply(ctx, kb.TypeSetLiveness, kb.SetLiveness{Cluster: name, Alive: alive}); err != nil {
			return nil, fmt.Errorf("record liveness of %q: %w", name, err)
		}
		if alive {
			l.log.Info("cluster is back", "cluster", name)
		} else {
			l.log.Warn("cluster is down: no heartbeat", "cluster", name,
				"lastSeen", l.cfg.Liveness.LastSeen(name), "timeout", l.cfg.ClusterTimeout)
		}
	}
	return down, nil
}

// failedComponents are those whose status where they are placed is Failed,
// or that stayed short of Healthy (or silent) past the stuck timeout.
func (l *Loop) failedComponents(app *kb.App, now time.Time) map[string]bool {
	failed := map[string]bool{}
	for comp, p := range app.Placements {
		if p.Cluster == "" {
			continue
		}
		s := app.Status(comp, p.Cluster)
		switch {
		case s != nil && s.Phase == fleet.PhaseFailed && s.Generation >= p.Generation:
			failed[comp] = true
		case s != nil && s.Phase != fleet.PhaseHealthy && now.Sub(s.Since) > l.cfg.StuckTimeout:
			failed[comp] = true
		case s == nil && !p.Decided.IsZero() && now.Sub(p.Decided) > l.cfg.StuckTimeout:
			failed[comp] = true
		}
	}
	return failed
}

// scheduleApp runs the scheduler for one application and stores what changed.
func (l *Loop) scheduleApp(ctx context.Context, st *kb.State, fl *Fleet, app *kb.App, down map[string]bool, now time.Time) error {
	name := app.Name
	sp, err := app.Spec()
	if err != nil {
		return fmt.Errorf("%w: %v", errScheduler, err)
	}
	in := BuildInput(st, app, sp, InputOptions{Now: now, Down: down, Failed: l.failedComponents(app, now), Fleet: fl})
	decisions, err := SafeSchedule(l.cfg.Schedule, l.cfg.Scheduler, in)
	if err != nil {
		return fmt.Errorf("%w: %v", errScheduler, err)
	}
	if fl.Prepared != nil {
		for _, d := range decisions {
			fl.Prepared.Reserve(d)
		}
	}
	plan := l.plan(app, sp, decisions, down, now)
	if len(plan.Placements) == 0 && len(plan.Exclude) == 0 {
		return nil
	}
	plan.App, plan.Generation, plan.ExpectRev = name, app.Generation, app.PlacementRev
	if _, err := l.cfg.Store.Apply(ctx, kb.TypeSetPlacements, plan); err != nil {
		if errors.Is(err, kb.ErrConflict) {
			// The spec or placements moved under us; the change wakes the
			// loop again and the next pass decides on fresh state.
			l.log.Debug("placements changed under the loop", "app", name, "err", err)
			return nil
		}
		return fmt.Errorf("store placements of %q: %w", name, err)
	}
	for _, e := range plan.Events {
		l.log.Info("placement", "app", name, "appComponent", e.Component, "reason", e.Reason, "message", e.Message)
	}
	return nil
}

// plan turns decisions into the placement changes to store.
func (l *Loop) plan(app *kb.App, sp *spec.Application, decisions []scheduler.Decision, down map[string]bool, now time.Time) kb.SetPlacements {
	var out kb.SetPlacements
	next := maps.Clone(app.Placements)
	changed := map[string]bool{}
	event := func(comp, reason, format string, args ...any) {
		out.Events = append(out.Events, apiv1.Event{Time: now, Component: comp, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	for _, d := range decisions {
		if sp.Component(d.Component) == nil {
			continue
		}
		cur := app.Placements[d.Component]
		np := d.Placement
		np.App, np.Component, np.Generation = app.Name, d.Component, app.Generation
		if np.Decided.IsZero() {
			np.Decided = now
		}
		if np.Tier == "" {
			np.Tier = sp.Component(d.Component).Tier
		}
		switch d.Action {
		case scheduler.ActionKeep:
			if cur == nil {
				continue
			}
			kept := *cur
			kept.Generation = app.Generation
			if np.Cluster == cur.Cluster && len(np.Nodes) > 0 {
				kept.Nodes = np.Nodes
			}
			if samePlacement(cur, &kept) {
				continue
			}
			if cur.Decided.IsZero() {
				kept.Decided = now
			}
			np = kept
		case scheduler.ActionPlace:
			np.From, np.FromNodes = "", nil
			if cur != nil && samePlacement(cur, &np) {
				continue
			}
			event(d.Component, "Placed", "on %s (%s)", np.Cluster, summary(np))
			l.decisions.WithLabelValues("place").Inc()
		case scheduler.ActionMigrate:
			if cur != nil && cur.Cluster != "" && cur.Cluster != np.Cluster && np.From == "" {
				// Keep whichever old home is known healthy until the new one is.
				np.From, np.FromNodes = cur.Cluster, cur.Nodes
				if cur.From != "" && !healthyAt(app.Status(d.Component, cur.Cluster), cur.Generation) {
					np.From, np.FromNodes = cur.From, cur.FromNodes
				}
			}
			if np.From == np.Cluster {
				np.From, np.FromNodes = "", nil
			}
			if cur != nil && samePlacement(cur, &np) {
				continue
			}
			event(d.Component, "Migrating", "from %s to %s (%s)", np.From, np.Cluster, summary(np))
			l.decisions.WithLabelValues("migrate").Inc()
		case scheduler.ActionFailover:
			np.From, np.FromNodes = "", nil // nothing where it failed is worth keeping…
			if cur != nil && cur.From != "" && !down[cur.From] && cur.From != np.Cluster {
				// …but a migration's old home, still healthy, keeps serving
				// until the new one is.
				np.From, np.FromNodes = cur.From, cur.FromNodes
			}
			left := d.ExcludeCluster
			if left == "" && cur != nil {
				left = cur.Cluster
			}
			until := d.ExcludeUntil
			if until.IsZero() {
				until = now.Add(l.cfg.Scheduler.Backoff)
			}
			if left != "" && left != np.Cluster {
				out.Exclude = append(out.Exclude, kb.Exclusion{Component: d.Component, Cluster: left, Until: until})
			}
			if np.Cluster == "" {
				event(d.Component, "Pending", "failed over from %s, nowhere to go: %s", left, np.Reason)
			} else {
				event(d.Component, "FailedOver", "from %s to %s", left, np.Cluster)
			}
			l.decisions.WithLabelValues("failover").Inc()
		case scheduler.ActionPending:
			np.Cluster, np.Nodes, np.From, np.FromNodes = "", nil, "", nil
			if cur != nil && samePlacement(cur, &np) {
				continue
			}
			event(d.Component, "Pending", "%s", np.Reason)
			l.decisions.WithLabelValues("pending").Inc()
		default:
			l.log.Warn("unknown scheduler action", "action", d.Action, "app", app.Name, "component", d.Component)
			continue
		}
		p := np
		next[d.Component] = &p
		changed[d.Component] = true
	}
	// Make-before-break: once the new home reports Healthy at the
	// placement's generation, the old one is released.
	for _, comp := range slices.Sorted(maps.Keys(next)) {
		p := next[comp]
		if p.From == "" {
			continue
		}
		reason := ""
		switch {
		case healthyAt(app.Status(comp, p.Cluster), p.Generation):
			reason = fmt.Sprintf("%s is healthy; released %s", p.Cluster, p.From)
		case down[p.From]:
			reason = fmt.Sprintf("%s went down during the move", p.From)
		case p.Cluster == "":
			continue
		}
		if reason == "" {
			continue
		}
		done := *p
		done.From, done.FromNodes = "", nil
		next[comp] = &done
		changed[comp] = true
		event(comp, "Migrated", "%s", reason)
	}
	for _, comp := range slices.Sorted(maps.Keys(changed)) {
		p := *next[comp]
		z := app.Explanations[comp]
		if p.Explanation != nil {
			var err error
			if z, err = kb.CompressExplanation(p.Explanation); err != nil {
				l.log.Warn("cannot keep explanation", "app", app.Name, "component", comp, "err", err)
				z = nil
			}
			p.Explanation = nil
		} else if cur := app.Placements[comp]; cur == nil || cur.Cluster != p.Cluster {
			z = nil // the old explanation was for another decision
		}
		if z != nil {
			if out.Explanations == nil {
				out.Explanations = map[string][]byte{}
			}
			out.Explanations[comp] = z
		}
		out.Placements = append(out.Placements, p)
	}
	return out
}

func summary(p scheduler.Placement) string {
	if p.Explanation != nil && p.Explanation.Summary != "" {
		return p.Explanation.Summary
	}
	if p.Reason != "" {
		return p.Reason
	}
	return "scheduler's choice"
}

// Supervise runs the loop while this lead is leader: it starts it on
// gaining leadership (after resetting liveness, so every cluster gets one
// full timeout to find the new leader) and stops it on losing leadership.
func Supervise(ctx context.Context, leaderCh <-chan bool, isLeader bool, l *Loop) {
	var cancel context.CancelFunc
	done := make(chan struct{})
	close(done)
	start := func() {
		l.cfg.Liveness.Reset(l.cfg.Now())
		var lctx context.Context
		lctx, cancel = context.WithCancel(ctx)
		done = make(chan struct{})
		go func(done chan struct{}) {
			defer close(done)
			l.log.Info("leader: scheduling loop started")
			_ = l.Run(lctx)
			l.log.Info("scheduling loop stopped")
		}(done)
	}
	stop := func() {
		if cancel != nil {
			cancel()
			cancel = nil
			<-done
		}
	}
	defer stop()
	if isLeader {
		start()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-leaderCh:
			if leader && cancel == nil {
				start()
			} else if !leader {
				stop()
			}
		}
	}
}
