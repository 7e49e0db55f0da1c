package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ErrLostLease is returned when another replica took over: the process
// should exit (and be restarted as a standby), since what it knew may be
// stale by the time it leads again.
var ErrLostLease = errors.New("lost the leader election lease")

// Election configures leader election among the agent's replicas.
type Election struct {
	Namespace string
	Name      string // of the Lease
	Identity  string // of this replica
	// Standard client-go timings; zero takes 15s / 10s / 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// RunElected runs run while this replica holds the Lease, so that with
// several replicas exactly one acts. It returns run's error, nil when ctx
// ended, or ErrLostLease.
func RunElected(ctx context.Context, kube kubernetes.Interface, e Election, log *slog.Logger, m *Metrics, run func(context.Context) error) error {
	if e.LeaseDuration == 0 {
		e.LeaseDuration, e.RenewDeadline, e.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	runReturned := false
	started := make(chan struct{})
	done := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            e.Name,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				close(started)
				defer close(done)
				m.Leader.Set(1)
				log.Info("leading: this replica is the active agent", "lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
				runErr = run(ctx)
				runReturned = ctx.Err() == nil
				cancel() // run ended by itself: give the lease up
			},
			OnStoppedLeading: func() {
				m.Leader.Set(0)
				cancel()
			},
			OnNewLeader: func(id string) {
				if id != e.Identity {
					log.Info("standing by: another replica is the active agent", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx)
	select {
	case <-started:
		<-done // run sees its context end when the lease is lost; wait for it
	default:
		return nil // never led, and ctx ended
	}
	switch {
	case runErr != nil:
		return runErr
	case outer.Err() != nil, runReturned:
		return nil
	}
	return ErrLostLease
}
