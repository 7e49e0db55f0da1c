package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/plugin/fleetview"
)

// maxEvents is how many recent events describe shows.
const maxEvents = 15

// appArgs resolves "app NAME" (or "app/NAME") for describe, explain and delete.
func appArgs(args []string, extraMax int) (name string, extra []string, err error) {
	if len(args) > 0 {
		if kind, n, ok := cutSlash(args[0]); ok {
			args = append([]string{kind, n}, args[1:]...)
		}
	}
	if len(args) < 2 {
		return "", nil, errors.New("say which application: app NAME")
	}
	r, err := findResource(args[0])
	if err != nil {
		return "", nil, err
	}
	if r.plural != "applications" {
		return "", nil, fmt.Errorf("only applications can be named here, not %s", r.plural)
	}
	if len(args)-2 > extraMax {
		return "", nil, fmt.Errorf("too many arguments: %v", args[2+extraMax:])
	}
	if args[1] == "" {
		return "", nil, errors.New("empty application name")
	}
	return args[1], args[2:], nil
}

func cutSlash(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// DescribeOptions are `describe`'s flags.
type DescribeOptions struct {
	root   *RootOptions
	Output *OutputFlags

	name      string
	connector Connector
}

// NewDescribeOptions returns describe's defaults.
func NewDescribeOptions(root *RootOptions) *DescribeOptions {
	return &DescribeOptions{root: root, Output: NewOutputFlags(false)}
}

// AddFlags binds describe's flags.
func (o *DescribeOptions) AddFlags(cmd *cobra.Command) { o.Output.AddFlags(cmd) }

// NewCmdDescribe is `describe`.
func NewCmdDescribe(root *RootOptions) *cobra.Command {
	o := NewDescribeOptions(root)
	cmd := &cobra.Command{
		Use:     "describe app NAME",
		Short:   "Show an application: its spec, where each component runs, status and recent events",
		Example: "  kubectl qonnect describe app bookinfo",
		RunE:    runE(o),
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete resolves the name and the connector.
func (o *DescribeOptions) Complete(_ *cobra.Command, args []string) error {
	var err error
	if o.name, _, err = appArgs(args, 0); err != nil {
		return err
	}
	if err := o.Output.Check(); err != nil {
		return err
	}
	o.connector, err = o.root.Connector()
	return err
}

// Validate has nothing left to check.
func (o *DescribeOptions) Validate() error { return nil }

// Run prints the application.
func (o *DescribeOptions) Run(ctx context.Context) error {
	s, err := o.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	app, err := s.Client.GetApp(ctx, o.name)
	if err != nil {
		return err
	}
	if !o.Output.Human() {
		p, err := o.Output.Printer()
		if err != nil {
			return err
		}
		return p.PrintObj(AppObject(app), o.root.Out)
	}
	return writeDescription(o.root.Out, app, o.root.Env.Now())
}

// writeDescription is kubectl describe's layout for an application.
func writeDescription(out io.Writer, app *apiv1.App, now time.Time) error {
	ew := &fleetview.ErrWriter{W: out}
	sum := fleetview.AppOf(app)
	tw := tabwriter.NewWriter(ew, 0, 8, 1, ' ', 0)
	when := func(t time.Time) string {
		if t.IsZero() {
			return "<unknown>"
		}
		return t.UTC().Format(time.RFC3339) + " (" + fleetview.Age(now, t) + " ago)"
	}
	fmt.Fprintf(tw, "Name:\t%s\n", sum.Name)
	fmt.Fprintf(tw, "Namespace:\t%s\n", sum.Namespace)
	fmt.Fprintf(tw, "Generation:\t%d\n", sum.Generation)
	fmt.Fprintf(tw, "Created:\t%s\n", when(sum.Created))
	fmt.Fprintf(tw, "Updated:\t%s\n", when(sum.Updated))
	fmt.Fprintf(tw, "QoS:\t%s\n", fleetview.QoS(sum.QoS))
	fmt.Fprintf(tw, "Status:\t%s (%d/%d components healthy)\n", sum.Status, sum.Healthy, sum.Components)
	_ = tw.Flush()

	ew.Printf("Components:\n")
	tw = tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  NAME\tTIER\tOBJECTS\tCLUSTER\tNODES\tPHASE\tREADY\tSINCE\n")
	comps := fleetview.Components(app)
	for _, c := range comps {
		objects := 0
		if sc := app.Spec.Component(c.Component); sc != nil {
			objects = len(sc.Resources)
		}
		cluster := c.Cluster
		if cluster == "" {
			cluster = "<pending>"
		}
		if c.From != "" {
			cluster = c.From + " -> " + cluster
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", c.Component, c.Tier, objects, cluster,
			fleetview.Join(c.Nodes), c.Phase, c.ReadyString(), fleetview.Age(now, c.Since))
	}
	_ = tw.Flush()

	ew.Printf("Placements:\n")
	for _, c := range comps {
		line := "  " + c.Component + ": "
		switch {
		case c.Cluster == "":
			line += "pending"
		default:
			line += "on " + c.Cluster
		}
		if !c.Decided.IsZero() {
			line += ", decided " + fleetview.Age(now, c.Decided) + " ago"
		}
		if c.Generation > 0 {
			line += fmt.Sprintf(" for generation %d", c.Generation)
		}
		why := c.Reason
		if c.Explanation != nil && c.Explanation.Summary != "" {
			why = c.Explanation.Summary
		}
		if why != "" {
			line += ": " + why
		}
		ew.Printf("%s\n", line)
		if c.Message != "" && c.Message != c.Reason {
			ew.Printf("    agent: %s\n", c.Message)
		}
	}

	ew.Printf("Events:")
	events := append([]apiv1.Event(nil), app.Events...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	if len(events) > maxEvents {
		events = events[len(events)-maxEvents:]
	}
	if len(events) == 0 {
		ew.Printf("\t<none>\n")
		return ew.Err
	}
	ew.Printf("\n")
	tw = tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  AGE\tCOMPONENT\tREASON\tMESSAGE\n")
	for _, e := range events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", fleetview.Age(now, e.Time), fleetview.OrDash(e.Component), e.Reason, e.Message)
	}
	_ = tw.Flush()
	return ew.Err
}
