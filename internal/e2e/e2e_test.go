// Package e2e runs the paper's evaluation, and more, on the sandbox: 9 real
// control planes, 3 leads, 9 agents, real processes, real faults.
//
// The scenarios share one federation and run in order: each leaves it as
// it found it (every lead running, every cluster up, no partition).
package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
	"qonnect.io/qonnect/internal/scenario"
	"qonnect.io/qonnect/internal/spec"
)

const app = "bookinfo"

type env struct {
	f      *sandbox.Federation
	c      *leadclient.Client
	bookFn string
}

func TestPaper(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: brings up 9 control planes; not in -short")
	}
	f := sandboxtest.Start(t, sandbox.PaperProfile(), sandboxtest.WithQonnect(nil, nil))
	c, err := scenario.Client(f)
	if err != nil {
		t.Fatal(err)
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{f: f, c: c, bookFn: filepath.Join(root, "examples", "bookinfo", "bookinfo.yaml")}
	ctx := context.Background()
	if _, err := scenario.Leader(ctx, f, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := scenario.Until(ctx, time.Minute, "9 clusters alive", func(ctx context.Context) (bool, string, error) {
		l, err := c.ListClusters(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		n := 0
		for _, cl := range l.Items {
			if cl.Alive && cl.ReadyNodes == 3 {
				n++
			}
		}
		return n == 9, fmt.Sprintf("%d alive", n), nil
	}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"1 QoS-driven placement and 2 make-before-break rescheduling", testPlacementAndMigration},
		{"3 failover", testFailover},
		{"4 leader re-election", testReelection},
		{"5 partition", testPartition},
		{"6 restart of all leads", testRestartAll},
		{"7 agent cut off from every lead", testAgentCutOff},
		{"the kubectl plugin end to end", testPlugin},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, e) }) {
			return // later scenarios assume the federation is whole
		}
	}
}

// expected placements of Bookinfo per weighting, from the paper's profile:
// each flavour wins its own goal in every tier; balanced weights pick the
// energy-flavoured clusters (see internal/scheduler's tests for the ranks).
var weightings = []struct {
	name string
	qos  spec.QoS
	want scenario.Placement
}{
	{"energy", spec.QoS{Energy: 1}, flavour("energy")},
	{"cost", spec.QoS{Cost: 1}, flavour("cost")},
	{"performance", spec.QoS{Performance: 1}, flavour("perf")},
	{"balanced", spec.QoS{}, flavour("energy")},
}

func flavour(f string) scenario.Placement {
	return scenario.Placement{"productpage": "cloud-" + f, "details": "fog-" + f, "reviews": "fog-" + f, "ratings": "edge-" + f}
}

func testPlacementAndMigration(t *testing.T, e *env) {
	ctx := context.Background()
	var prev scenario.Placement
	for _, w := range weightings {
		t.Run(w.name, func(t *testing.T) {
			a, err := scenario.LoadApp(e.bookFn, w.qos)
			if err != nil {
				t.Fatal(err)
			}
			// While components move, sample every source and target: some
			// replica of each component must be available at every moment.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var gaps []string
			if prev != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					gaps = sampleAvailability(e, prev, w.want, stop)
				}()
			}
			t0 := time.Now()
			if _, err := e.c.ApplyApp(ctx, a, false); err != nil {
				close(stop)
				t.Fatal(err)
			}
			got, err := scenario.WaitHealthy(ctx, e.c, app, w.want, 3*time.Minute)
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s healthy after %s", w.name, scenario.PlacementOf(got), time.Since(t0).Round(time.Millisecond))
			for _, g := range gaps {
				t.Errorf("make-before-break broken: %s", g)
			}
			checkPodsOnNodes(t, e, got)
			prev = w.want
		})
	}
}

// sampleAvailability polls the clusters a move involves until stop is
// closed, and returns every moment at which a component had no available
// replica on any of them.
func sampleAvailability(e *env, from, to scenario.Placement, stop chan struct{}) []string {
	var gaps []string
	ctx := context.Background()
	for {
		select {
		case <-stop:
			return gaps
		case <-time.After(200 * time.Millisecond):
		}
		for comp := range from {
			total := int32(0)
			for _, cl := range slices.Compact([]string{from[comp], to[comp]}) {
				w, err := scenario.WorkloadOn(ctx, e.f, cl, app, app, comp)
				if err == nil {
					total += w.Available
				}
			}
			if total == 0 {
				gaps = append(gaps, fmt.Sprintf("%s: no available replica on %s or %s at %s", comp, from[comp], to[comp], time.Now().Format("15:04:05.000")))
			}
		}
	}
}

func checkPodsOnNodes(t *testing.T, e *env, a *apiv1.App) {
	t.Helper()
	for _, p := range a.Placements {
		w, err := scenario.WorkloadOn(context.Background(), e.f, p.Cluster, a.Spec.NamespaceOf(), app, p.Component)
		if err != nil {
			t.Errorf("%s on %s: %v", p.Component, p.Cluster, err)
			continue
		}
		if err := w.RunningOn(p.Nodes); err != nil {
			t.Errorf("%s on %s: %v", p.Component, p.Cluster, err)
		}
	}
}
