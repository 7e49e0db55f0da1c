package plugin

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/plugin/fleetview"
)

func isNotFound(err error) bool { return leadclient.IsCode(err, apiv1.CodeNotFound) }

// StatusOptions are `status`'s flags.
type StatusOptions struct {
	root   *RootOptions
	Output *OutputFlags

	connector Connector
}

// NewStatusOptions returns status's defaults.
func NewStatusOptions(root *RootOptions) *StatusOptions {
	return &StatusOptions{root: root, Output: NewOutputFlags(false)}
}

// AddFlags binds status's flags.
func (o *StatusOptions) AddFlags(cmd *cobra.Command) { o.Output.AddFlags(cmd) }

// NewCmdStatus is `status`.
func NewCmdStatus(root *RootOptions) *cobra.Command {
	o := NewStatusOptions(root)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the lead group: leader, term, members and their state, last index",
		Args:  cobra.NoArgs,
		RunE:  runE(o),
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete resolves the connector.
func (o *StatusOptions) Complete(*cobra.Command, []string) error {
	if err := o.Output.Check(); err != nil {
		return err
	}
	var err error
	o.connector, err = o.root.Connector()
	return err
}

// Validate has nothing left to check.
func (o *StatusOptions) Validate() error { return nil }

// Run prints the lead group.
func (o *StatusOptions) Run(ctx context.Context) error {
	s, err := o.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Client.RaftStatus(ctx)
	if err != nil {
		return err
	}
	if !o.Output.Human() {
		p, err := o.Output.Printer()
		if err != nil {
			return err
		}
		return p.PrintObj(RaftStatusObject(st), o.root.Out)
	}
	ew := &fleetview.ErrWriter{W: o.root.Out}
	tw := tabwriter.NewWriter(ew, 0, 8, 1, ' ', 0)
	leader := fleetview.OrDash(st.Leader)
	if st.Leader == "" {
		leader = "none (no leader elected)"
	} else if st.LeaderAPI != "" {
		leader += " (" + st.LeaderAPI + ")"
	}
	fmt.Fprintf(tw, "Answered by:\t%s (%s)\n", st.ID, st.State)
	fmt.Fprintf(tw, "Leader:\t%s\n", leader)
	fmt.Fprintf(tw, "Term:\t%d\n", st.Term)
	fmt.Fprintf(tw, "Last index:\t%d\n", st.LastIndex)
	fmt.Fprintf(tw, "Commit index:\t%d\n", st.CommitIndex)
	fmt.Fprintf(tw, "Applied index:\t%d\n", st.AppliedIndex)
	fmt.Fprintf(tw, "KB hash:\t%s\n", fleetview.OrDash(st.KBHash))
	_ = tw.Flush()
	ew.Printf("Members:\n")
	tw = tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  ID\tSTATE\tSUFFRAGE\tREACHABLE\tRAFT ADDRESS\tAPI ADDRESS\n")
	for _, l := range fleetview.LeadsOf(st) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.State, fleetview.OrDash(l.Suffrage),
			fleetview.Reachable(l.Reachable), fleetview.OrDash(l.RaftAddr), fleetview.OrDash(l.APIAddr))
	}
	_ = tw.Flush()
	return ew.Err
}

// LeadsAddOptions are `leads add`'s flags.
type LeadsAddOptions struct {
	root        *RootOptions
	RaftAddress string
	APIAddress  string
	Voter       bool

	id        string
	connector Connector
}

// NewLeadsAddOptions returns leads add's defaults: a voting member.
func NewLeadsAddOptions(root *RootOptions) *LeadsAddOptions {
	return &LeadsAddOptions{root: root, Voter: true}
}

// AddFlags binds leads add's flags.
func (o *LeadsAddOptions) AddFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&o.RaftAddress, "raft-address", o.RaftAddress, "HOST:PORT the new lead's Raft transport listens on (required).")
	fs.StringVar(&o.APIAddress, "api-address", o.APIAddress, "The new lead's API address, https://HOST:PORT (required).")
	fs.BoolVar(&o.Voter, "voter", o.Voter, "Add as a voting member; --voter=false adds a non-voter that only replicates.")
}

// Complete reads the ID and the connector.
func (o *LeadsAddOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return errors.New("give the new lead's ID: leads add ID --raft-address HOST:PORT --api-address URL")
	}
	o.id = args[0]
	var err error
	o.connector, err = o.root.Connector()
	return err
}

// Validate checks the addresses are given.
func (o *LeadsAddOptions) Validate() error {
	switch {
	case o.id == "":
		return errors.New("empty lead ID")
	case o.RaftAddress == "":
		return errors.New("--raft-address is required")
	case o.APIAddress == "":
		return errors.New("--api-address is required")
	}
	return nil
}

// Run adds the member.
func (o *LeadsAddOptions) Run(ctx context.Context) error {
	s, err := o.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	voter := o.Voter
	if _, err := s.Client.AddMember(ctx, apiv1.MemberRequest{ID: o.id, RaftAddr: o.RaftAddress, APIAddr: o.APIAddress, Voter: &voter}); err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.root.Out, "lead.qonnect.io/%s added\n", o.id)
	return err
}

// LeadsRemoveOptions are `leads remove`'s flags.
type LeadsRemoveOptions struct {
	root *RootOptions

	id        string
	connector Connector
}

// NewLeadsRemoveOptions returns leads remove's defaults.
func NewLeadsRemoveOptions(root *RootOptions) *LeadsRemoveOptions {
	return &LeadsRemoveOptions{root: root}
}

// Complete reads the ID and the connector.
func (o *LeadsRemoveOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return errors.New("give the ID of the lead to remove: leads remove ID")
	}
	o.id = args[0]
	var err error
	o.connector, err = o.root.Connector()
	return err
}

// Validate has nothing left to check.
func (o *LeadsRemoveOptions) Validate() error { return nil }

// Run removes the member.
func (o *LeadsRemoveOptions) Run(ctx context.Context) error {
	s, err := o.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Client.RemoveMember(ctx, o.id); err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.root.Out, "lead.qonnect.io/%s removed\n", o.id)
	return err
}

// NewCmdLeads is `leads add|remove`.
func NewCmdLeads(root *RootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "leads (add|remove)",
		Short: "Change the lead group's membership",
		Long:  "Change the lead group's membership. To list the leads: kubectl qonnect get leads, or status.",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return &userError{msg: "say what to do: leads add ID ... or leads remove ID"}
		},
	}
	add := NewLeadsAddOptions(root)
	addCmd := &cobra.Command{
		Use:     "add ID --raft-address HOST:PORT --api-address URL",
		Short:   "Add a lead to the group",
		Example: "  kubectl qonnect leads add lead-4 --raft-address 10.0.0.4:7000 --api-address https://10.0.0.4:7443",
		RunE:    runE(add),
	}
	add.AddFlags(addCmd)
	rm := NewLeadsRemoveOptions(root)
	rmCmd := &cobra.Command{
		Use:     "remove ID",
		Aliases: []string{"rm"},
		Short:   "Remove a lead from the group",
		RunE:    runE(rm),
	}
	cmd.AddCommand(addCmd, rmCmd)
	return cmd
}
