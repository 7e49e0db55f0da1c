package scenario

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/spec"
)

// DemoOptions control the demo.
type DemoOptions struct {
	Dir        string // the sandbox folder
	QonnectBin string // folder with qonnect-lead, qonnect-agent, kubectl-qonnect
	AppFile    string // the Bookinfo spec
	Keep       bool   // leave the sandbox running
	Out        io.Writer
	Progress   io.Writer
}

// Measure is one measured step of the demo.
type Measure struct {
	What      string
	Took      time.Duration
	Prototype string // the prototype's time by design, for comparison
}

// Demo is the main job on the sandbox: it brings up the paper's federation,
// applies Bookinfo with an energy goal, explains a decision, changes the
// goal to performance, stops a cluster, kills the leader, and reports the
// times it measured.
func Demo(ctx context.Context, o DemoOptions) (err error) {
	out := o.Out
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n== "+format+"\n", args...) }
	var report []Measure

	step("bringing up the paper's testbed: 9 clusters (3 cloud with leads, 3 fog, 3 edge), 27 nodes")
	t0 := time.Now()
	f, err := sandbox.Up(ctx, sandbox.PaperProfile(), sandbox.Options{Dir: o.Dir, QonnectBin: o.QonnectBin, Progress: o.Progress})
	if err != nil {
		return err
	}
	defer func() {
		if o.Keep {
			fmt.Fprintf(out, "\nsandbox left running: source %s; kubectl qonnect tui; qonnect-sandbox down --dir %s\n", f.EnvFile(), f.Dir())
			return
		}
		if derr := f.Down(context.Background()); derr != nil && err == nil {
			err = derr
		}
	}()
	report = append(report, Measure{What: "sandbox up (9 control planes, 3 leads, 9 agents)", Took: time.Since(t0)})
	c, err := Client(f)
	if err != nil {
		return err
	}
	leader, err := Leader(ctx, f, 30*time.Second)
	if err != nil {
		return err
	}
	if err := waitClusters(ctx, c, 9, 60*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(out, "leader: %s; all 9 clusters registered\n", leader)
	plugin := func(args ...string) { runPlugin(out, o.QonnectBin, f, args...) }
	plugin("get", "clusters")

	step("apply Bookinfo with an energy goal")
	app, err := LoadApp(o.AppFile, spec.QoS{Energy: 1})
	if err != nil {
		return err
	}
	t0 = time.Now()
	if _, err := c.ApplyApp(ctx, app, false); err != nil {
		return err
	}
	got, err := WaitHealthy(ctx, c, app.Metadata.Name, nil, 2*time.Minute)
	if err != nil {
		return err
	}
	report = append(report, Measure{What: "apply → every component Healthy", Took: time.Since(t0), Prototype: "10–20 s (10 s scheduler tick + 10 s agent poll)"})
	fmt.Fprintf(out, "placed: %s\n", PlacementOf(got))
	plugin("get", "apps", "-o", "wide")
	step("why is reviews where it is?")
	plugin("explain", "app", app.Metadata.Name, "reviews")

	step("change the goal to performance: components move make-before-break")
	before := PlacementOf(got)
	app.Spec.QoS = spec.QoS{Performance: 1}
	t0 = time.Now()
	if _, err := c.ApplyApp(ctx, app, false); err != nil {
		return err
	}
	got, err = waitMoved(ctx, c, app.Metadata.Name, before, 3*time.Minute)
	if err != nil {
		return err
	}
	report = append(report, Measure{What: "QoS change → migrated and Healthy", Took: time.Since(t0), Prototype: "every update resets every placement"})
	fmt.Fprintf(out, "before: %s\nafter:  %s\n", before, PlacementOf(got))

	victim := PlacementOf(got)["reviews"]
	step("stop cluster %s, which runs reviews: failover", victim)
	t0 = time.Now()
	if err := f.StopCluster(ctx, victim); err != nil {
		return err
	}
	got, err = WaitAway(ctx, c, app.Metadata.Name, "reviews", victim, 3*time.Minute)
	if err != nil {
		return err
	}
	report = append(report, Measure{What: "cluster stopped → component Healthy elsewhere", Took: time.Since(t0), Prototype: "≈50 s + pod start (30 s heartbeat timeout, 10 s ticks); failed cluster not excluded"})
	fmt.Fprintf(out, "reviews moved %s → %s\n", victim, PlacementOf(got)["reviews"])
	if err := f.StartCluster(ctx, victim); err != nil {
		return err
	}

	step("kill the leader lead %s (SIGKILL): re-election", leader)
	t0 = time.Now()
	if err := f.KillLead(leader); err != nil {
		return err
	}
	newLeader, err := NewLeader(ctx, f, leader, 30*time.Second)
	if err != nil {
		return err
	}
	report = append(report, Measure{What: "leader SIGKILLed → new leader elected", Took: time.Since(t0), Prototype: "knowledge base in one PostgreSQL; Raft only elects"})
	fmt.Fprintf(out, "new leader: %s\n", newLeader)
	if err := f.StartLead(leader); err != nil {
		return err
	}
	plugin("status")

	step("report")
	w := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "STEP\tMEASURED\tPROTOTYPE (BY DESIGN)")
	for _, m := range report {
		fmt.Fprintf(w, "%s\t%s\t%s\n", m.What, m.Took.Round(10*time.Millisecond), m.Prototype)
	}
	return w.Flush()
}

func waitClusters(ctx context.Context, c *leadclient.Client, n int, timeout time.Duration) error {
	return Until(ctx, timeout, fmt.Sprintf("%d clusters registered", n), func(ctx context.Context) (bool, string, error) {
		l, err := c.ListClusters(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		alive := 0
		for _, cl := range l.Items {
			if cl.Alive && cl.ReadyNodes > 0 {
				alive++
			}
		}
		return alive >= n, fmt.Sprintf("%d alive", alive), nil
	})
}

// waitMoved waits until the application is healthy and at least one
// component is elsewhere than before.
func waitMoved(ctx context.Context, c *leadclient.Client, name string, before Placement, timeout time.Duration) (*apiv1.App, error) {
	var app *apiv1.App
	err := Until(ctx, timeout, name+" migrated", func(ctx context.Context) (bool, string, error) {
		a, err := c.GetApp(ctx, name)
		if err != nil {
			return false, err.Error(), nil
		}
		app = a
		if ok, why := Healthy(a, nil); !ok {
			return false, why, nil
		}
		if PlacementOf(a).String() == before.String() {
			return false, "nothing moved yet", nil
		}
		return true, "", nil
	})
	return app, err
}

// WaitAway waits until component is placed on a cluster other than from
// and the whole application is healthy.
func WaitAway(ctx context.Context, c *leadclient.Client, name, component, from string, timeout time.Duration) (*apiv1.App, error) {
	var app *apiv1.App
	err := Until(ctx, timeout, component+" away from "+from, func(ctx context.Context) (bool, string, error) {
		a, err := c.GetApp(ctx, name)
		if err != nil {
			return false, err.Error(), nil
		}
		app = a
		p := PlacementOf(a)
		if p[component] == from {
			return false, component + " still placed on " + from, nil
		}
		if ok, why := Healthy(a, nil); !ok {
			return false, why, nil
		}
		return true, "", nil
	})
	return app, err
}

// NewLeader waits until the leads agree on a leader other than old.
func NewLeader(ctx context.Context, f *sandbox.Federation, old string, timeout time.Duration) (string, error) {
	var leader string
	err := Until(ctx, timeout, "a new leader", func(ctx context.Context) (bool, string, error) {
		id, err := Leader(ctx, f, time.Second)
		if err != nil || id == old {
			return false, "no new leader yet", nil
		}
		leader = id
		return true, "", nil
	})
	return leader, err
}

// runPlugin shows what a user would see: kubectl-qonnect with the sandbox's
// env file applied. A missing plugin binary is said, not fatal.
func runPlugin(out io.Writer, binDir string, f *sandbox.Federation, args ...string) {
	bin := filepath.Join(binDir, "kubectl-qonnect")
	if _, err := os.Stat(bin); err != nil {
		fmt.Fprintf(out, "(kubectl-qonnect not built: skipping `kubectl qonnect %s`)\n", strings.Join(args, " "))
		return
	}
	fmt.Fprintf(out, "$ kubectl qonnect %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	u := f.UserTLS()
	cmd.Env = append(os.Environ(),
		"QONNECT_LEAD="+strings.Join(f.LeadAPIs(), ","),
		"QONNECT_LEAD_CA="+u.CA, "QONNECT_LEAD_CERT="+u.Cert, "QONNECT_LEAD_KEY="+u.Key)
	cmd.Stdout, cmd.Stderr = out, out
	_ = cmd.Run()
}
