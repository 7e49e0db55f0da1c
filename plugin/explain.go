package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/plugin/fleetview"
)

// ExplainOptions are `explain`'s flags.
type ExplainOptions struct {
	root   *RootOptions
	Output *OutputFlags

	name      string
	component string
	connector Connector
}

// NewExplainOptions returns explain's defaults.
func NewExplainOptions(root *RootOptions) *ExplainOptions {
	return &ExplainOptions{root: root, Output: NewOutputFlags(false)}
}

// AddFlags binds explain's flags.
func (o *ExplainOptions) AddFlags(cmd *cobra.Command) { o.Output.AddFlags(cmd) }

// NewCmdExplain is `explain`.
func NewCmdExplain(root *RootOptions) *cobra.Command {
	o := NewExplainOptions(root)
	cmd := &cobra.Command{
		Use:   "explain app NAME [COMPONENT]",
		Short: "Show why each component was placed where it is",
		Long: `Explain shows the placement decision of each component (or one): the QoS weights, every
candidate node's value and Borda rank per criterion with its weighted score, each cluster's score
and why it won, lost or was filtered out.`,
		Example: "  kubectl qonnect explain app bookinfo\n  kubectl qonnect explain app bookinfo reviews -o yaml",
		RunE:    runE(o),
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete resolves the names and the connector.
func (o *ExplainOptions) Complete(_ *cobra.Command, args []string) error {
	name, extra, err := appArgs(args, 1)
	if err != nil {
		return err
	}
	o.name = name
	if len(extra) == 1 {
		o.component = extra[0]
	}
	if err := o.Output.Check(); err != nil {
		return err
	}
	o.connector, err = o.root.Connector()
	return err
}

// Validate has nothing left to check.
func (o *ExplainOptions) Validate() error { return nil }

// Run prints the explanations.
func (o *ExplainOptions) Run(ctx context.Context) error {
	s, err := o.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	app, err := s.Client.GetApp(ctx, o.name)
	if err != nil {
		return err
	}
	byComp := map[string]scheduler.Placement{}
	for _, p := range app.Placements {
		byComp[p.Component] = p
	}
	var chosen []scheduler.Placement
	for _, c := range fleetview.Components(app) {
		if o.component != "" && c.Component != o.component {
			continue
		}
		p, ok := byComp[c.Component]
		if !ok {
			p = scheduler.Placement{App: o.name, Component: c.Component, Tier: c.Tier, Reason: "not scheduled yet"}
		}
		chosen = append(chosen, p)
	}
	if o.component != "" && len(chosen) == 0 {
		return fmt.Errorf("application %q has no component %q", o.name, o.component)
	}
	if !o.Output.Human() {
		p, err := o.Output.Printer()
		if err != nil {
			return err
		}
		objs := make([]*unstructured.Unstructured, len(chosen))
		for i, pl := range chosen {
			objs[i] = ExplanationObject(o.name, pl)
		}
		return printObjects(p, o.root.Out, objs, o.component != "")
	}
	for i, p := range chosen {
		if i > 0 {
			fmt.Fprintln(o.root.Out)
		}
		if err := writeExplain(o.root.Out, o.name, p); err != nil {
			return err
		}
	}
	return nil
}

func writeExplain(w interface{ Write([]byte) (int, error) }, app string, p scheduler.Placement) error {
	ew := &fleetview.ErrWriter{W: w}
	where := p.Cluster
	if where == "" {
		where = "pending"
	}
	ew.Printf("=== %s/%s: %s", app, p.Component, where)
	if len(p.Nodes) > 0 {
		ew.Printf(" (nodes %s)", fleetview.Join(p.Nodes))
	}
	ew.Printf("\n")
	if p.Reason != "" {
		ew.Printf("Reason:       %s\n", p.Reason)
	}
	if ew.Err != nil {
		return ew.Err
	}
	if p.Explanation == nil {
		_, err := fmt.Fprintln(w, "No explanation recorded.")
		return err
	}
	return fleetview.WriteExplanation(w, p.Explanation)
}
