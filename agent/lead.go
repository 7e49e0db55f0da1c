package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/leadclient"
)

// session is the agent's registration with the lead group. Reports and
// long-polls wait until the cluster is registered; a lead that answers
// NotFound has forgotten the cluster, which ends the session and makes the
// agent register again (and then send everything in full). A lead that does
// not answer at all ends nothing: registration is not a connection.
type session struct {
	mu    sync.Mutex
	epoch uint64 // counts registrations
	ok    bool
	ready chan struct{} // closed while registered
	kick  chan struct{} // wakes the registration loop
}

func newSession() *session {
	return &session{ready: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// registered starts a new session and returns its epoch.
func (s *session) registered() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	s.ok = true
	close(s.ready)
	return s.epoch
}

// wait returns the current session's epoch once the cluster is registered.
func (s *session) wait(ctx context.Context) (uint64, error) {
	for {
		s.mu.Lock()
		if s.ok {
			e := s.epoch
			s.mu.Unlock()
			return e, nil
		}
		ch := s.ready
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		}
	}
}

// lost ends session epoch (if it is still the current one) and asks for a
// new registration.
func (s *session) lost(epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ok || s.epoch != epoch {
		return
	}
	s.ok = false
	s.ready = make(chan struct{})
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// backoff is capped exponential back-off with jitter, so agents of many
// clusters that lost the same lead do not come back in step.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d, or less if wake fires; false if ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// leadAnswered and leadFailed track whether any lead answers, to log the
// moments it changes (not every failed attempt) and to wake loops that are
// backing off as soon as one lead is back.
func (a *Agent) leadAnswered(call string) {
	a.metrics.LeadRequests.WithLabelValues(call, "ok").Inc()
	a.mu.Lock()
	wasDown := a.leadDown
	a.leadDown = false
	a.mu.Unlock()
	a.metrics.LeadUp.Set(1)
	if wasDown {
		a.log.Info("a lead answers again", "call", call)
		a.leadUp.Fire()
	}
}

func (a *Agent) leadFailed(call string, err error) {
	var result string
	switch {
	case errors.Is(err, leadclient.ErrNoLead):
		result = "unreachable"
	case errors.Is(err, context.Canceled):
		return
	default:
		result = "error"
	}
	a.metrics.LeadRequests.WithLabelValues(call, result).Inc()
	if result != "unreachable" {
		// A lead answered, with an error: the group is up.
		a.log.Warn("lead refused a call", "call", call, "err", err)
		return
	}
	a.mu.Lock()
	wasDown := a.leadDown
	a.leadDown = true
	a.mu.Unlock()
	a.metrics.LeadUp.Set(0)
	if !wasDown {
		a.log.Warn("no lead answers; keeping every workload as it is and retrying", "call", call, "err", err)
	} else {
		a.log.Debug("still no lead", "call", call, "err", err)
	}
}

// noLead says whether the last call found no lead answering.
func (a *Agent) noLead() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leadDown
}

// notFound says whether a lead answered that it does not know the cluster.
func notFound(err error) bool { return leadclient.IsCode(err, apiv1.CodeNotFound) }

// registerLoop registers the cluster, and again whenever a lead forgot it.
func (a *Agent) registerLoop(ctx context.Context) error {
	bo := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	for {
		req := apiv1.RegisterRequest{Cluster: a.cfg.Cluster, AgentVersion: a.cfg.Version}
		resp, err := a.lead.Register(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.leadFailed("register", err)
			if !sleep(ctx, bo.next(), a.leadUp.C()) {
				return nil
			}
			continue
		}
		a.leadAnswered("register")
		bo.reset()
		a.learnLeads(resp.Leads)
		if hb := resp.HeartbeatInterval; hb > 0 {
			hb = min(max(hb, 250*time.Millisecond), 30*time.Second)
			a.mu.Lock()
			a.heartbeat = hb
			a.mu.Unlock()
		}
		epoch := a.sess.registered()
		a.log.Info("cluster registered", "epoch", epoch, "leads", resp.Leads, "heartbeat", a.heartbeatInterval())
		a.nodes.requestFull()
		select {
		case <-ctx.Done():
			return nil
		case <-a.sess.kick:
			a.log.Warn("a lead does not know this cluster; registering again")
		}
	}
}

// assignmentLoop long-polls the leads for the cluster's assignments and
// hands each new list to the reconciler. Only an answer from a lead ever
// reaches the reconciler, so an agent that lost every lead removes nothing.
func (a *Agent) assignmentLoop(ctx context.Context) error {
	bo := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	var index uint64
	got := false
	for {
		epoch, err := a.sess.wait(ctx)
		if err != nil {
			return nil
		}
		asked := time.Now()
		as, err := a.lead.Assignments(ctx, a.cfg.Cluster.Name, index, a.cfg.Wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.leadFailed("assignments", err)
			if notFound(err) {
				a.sess.lost(epoch)
			}
			if !sleep(ctx, bo.next(), a.leadUp.C()) {
				return nil
			}
			continue
		}
		a.leadAnswered("assignments")
		bo.reset()
		a.learnLeads(as.Leads)
		switch {
		case got && as.Index < index:
			// The lead's state is older than what was seen (a lead that is
			// behind, or a group rebuilt from scratch). Start over from 0:
			// the next answer comes at once and is what the group now says.
			a.log.Info("lead's assignments index went back; asking again from 0", "had", index, "got", as.Index)
			index = 0
			continue
		case got && as.Index == index:
			// Nothing changed. A lead that answers at once instead of
			// waiting must not make this loop spin.
			if time.Since(asked) < a.cfg.Wait/2 {
				if !sleep(ctx, time.Second, nil) {
					return nil
				}
			}
			continue
		}
		got, index = true, as.Index
		a.metrics.AssignmentIndex.Set(float64(as.Index))
		a.log.Debug("assignments received", "index", as.Index, "items", len(as.Items))
		a.offer(as)
	}
}

// offer hands the latest assignments to the reconciler; an older list it
// has not taken yet is dropped.
func (a *Agent) offer(as *apiv1.Assignments) {
	for {
		select {
		case a.pending <- as:
			return
		default:
			select {
			case <-a.pending:
			default:
			}
		}
	}
}

// statusLoop reports component statuses: what changed as soon as it
// changes, everything after (re)registration, after a failure and every
// resync, and an empty report as the heartbeat when nothing changed.
func (a *Agent) statusLoop(ctx context.Context) error {
	var fullEpoch uint64
	var lastFull time.Time
	failed := false
	hb := time.NewTimer(0)
	defer hb.Stop()
	due := time.Now()
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return nil
		case <-hb.C:
		case <-a.statusQ:
			kicked = true
			// Let a burst of informer events settle into one report.
			if !sleep(ctx, 100*time.Millisecond, nil) {
				return nil
			}
		}
		epoch, err := a.sess.wait(ctx)
		if err != nil {
			return nil
		}
		now := time.Now()
		full := failed || epoch != fullEpoch || now.Sub(lastFull) >= a.cfg.Resync
		rep := a.statusReport(now, full)
		if kicked && len(rep.Statuses) == 0 && now.Before(due) {
			continue // nothing to say before the next heartbeat is due
		}
		_, err = a.lead.ReportStatus(ctx, a.cfg.Cluster.Name, rep)
		interval := a.heartbeatInterval()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.leadFailed("status", err)
			if notFound(err) {
				a.sess.lost(epoch)
			}
			failed = true
		} else {
			a.leadAnswered("status")
			a.statusSent(rep)
			failed = false
			if full {
				fullEpoch, lastFull = epoch, now
			}
		}
		due = time.Now().Add(interval)
		hb.Reset(interval)
	}
}
