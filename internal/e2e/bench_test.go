package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
	"qonnect.io/qonnect/internal/scenario"
	"qonnect.io/qonnect/internal/spec"
)

// BenchmarkPaper measures, over repeated rounds on the paper's sandbox,
// what the paper measured, and prints one table beside the prototype's
// by-design times: apply → Healthy, migration, failover, election.
func BenchmarkPaper(b *testing.B) {
	f := sandboxtest.Start(b, sandbox.PaperProfile(), sandboxtest.WithQonnect(nil, nil))
	c, err := scenario.Client(f)
	if err != nil {
		b.Fatal(err)
	}
	root, _ := sandbox.RepoRoot()
	bookFn := filepath.Join(root, "examples", "bookinfo", "bookinfo.yaml")
	ctx := context.Background()
	if _, err := scenario.Leader(ctx, f, time.Minute); err != nil {
		b.Fatal(err)
	}
	time.Sleep(3 * time.Second) // let every agent register and report
	b.ResetTimer()
	for range b.N {
		var apply, migrate, failover, election []time.Duration

		// Apply → every component Healthy, for fresh copies of Bookinfo.
		for i := range 6 {
			a, err := scenario.LoadApp(bookFn, spec.QoS{Energy: 1})
			if err != nil {
				b.Fatal(err)
			}
			a.Metadata.Name = fmt.Sprintf("book-%d", i)
			t0 := time.Now()
			if _, err := c.ApplyApp(ctx, a, false); err != nil {
				b.Fatal(err)
			}
			if _, err := scenario.WaitHealthy(ctx, c, a.Metadata.Name, nil, 2*time.Minute); err != nil {
				b.Fatal(err)
			}
			apply = append(apply, time.Since(t0))
		}
		// Migration: flip book-0's goal between cost and energy.
		for i, q := range []spec.QoS{{Cost: 1}, {Energy: 1}, {Cost: 1}, {Energy: 1}} {
			a, _ := scenario.LoadApp(bookFn, q)
			a.Metadata.Name = "book-0"
			want := flavour([]string{"cost", "energy"}[i%2])
			t0 := time.Now()
			if _, err := c.ApplyApp(ctx, a, false); err != nil {
				b.Fatal(err)
			}
			if _, err := scenario.WaitHealthy(ctx, c, "book-0", want, 2*time.Minute); err != nil {
				b.Fatal(err)
			}
			migrate = append(migrate, time.Since(t0))
		}
		// Failover: stop the cluster of one component per tier.
		for _, comp := range []string{"ratings", "details", "productpage"} {
			got, err := c.GetApp(ctx, "book-0")
			if err != nil {
				b.Fatal(err)
			}
			victim := scenario.PlacementOf(got)[comp]
			t0 := time.Now()
			if err := f.StopCluster(ctx, victim); err != nil {
				b.Fatal(err)
			}
			if _, err := scenario.WaitAway(ctx, c, "book-0", comp, victim, 2*time.Minute); err != nil {
				b.Fatal(err)
			}
			failover = append(failover, time.Since(t0))
			b.Logf("failover of %s from %s: %s", comp, victim, time.Since(t0).Round(time.Millisecond))
			if err := f.StartCluster(ctx, victim); err != nil {
				b.Fatal(err)
			}
		}
		// Election after SIGKILL of the leader.
		for range 5 {
			leader, err := scenario.Leader(ctx, f, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := f.KillLead(leader); err != nil {
				b.Fatal(err)
			}
			if _, err := scenario.NewLeader(ctx, f, leader, time.Minute); err != nil {
				b.Fatal(err)
			}
			election = append(election, time.Since(t0))
			if err := f.StartLead(leader); err != nil {
				b.Fatal(err)
			}
			time.Sleep(2 * time.Second) // let it rejoin before the next round
		}
		b.ReportMetric(pct(apply, 50).Seconds(), "apply-p50-s")
		b.ReportMetric(pct(failover, 50).Seconds(), "failover-p50-s")
		b.ReportMetric(pct(election, 50).Seconds(), "election-p50-s")
		printTable([]row{
			{"apply → all components Healthy", apply, 20 * time.Second, "10 s scheduler tick + 10 s agent poll"},
			{"QoS change → migrated, Healthy", migrate, 20 * time.Second, "tick + poll; every update resets every placement"},
			{"cluster stopped → Healthy elsewhere", failover, 50 * time.Second, "30 s heartbeat timeout + 2 × 10 s ticks"},
			{"leader SIGKILLed → new leader", election, 0, "Raft elects only; KB in one PostgreSQL"},
		})
	}
}

type row struct {
	what      string
	samples   []time.Duration
	prototype time.Duration
	why       string
}

func printTable(rows []row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "\nMEASURE (paper sandbox)\tN\tP50\tP95\tMAX\tPROTOTYPE BY DESIGN\tRATIO")
	for _, r := range rows {
		p50 := pct(r.samples, 50)
		ratio := "-"
		proto := "-"
		if r.prototype > 0 {
			proto = r.prototype.String()
			ratio = fmt.Sprintf("%.0f× faster", r.prototype.Seconds()/p50.Seconds())
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s (%s)\t%s\n", r.what, len(r.samples),
			p50.Round(time.Millisecond), pct(r.samples, 95).Round(time.Millisecond), slices.Max(r.samples).Round(time.Millisecond), proto, r.why, ratio)
	}
	w.Flush()
}

// pct is the p-th percentile (nearest rank).
func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}
