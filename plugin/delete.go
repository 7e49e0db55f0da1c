package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// DeleteOptions are `delete`'s flags.
type DeleteOptions struct {
	root *RootOptions
	// IgnoreNotFound makes deleting a missing application a success.
	IgnoreNotFound bool

	name      string
	connector Connector
}

// NewDeleteOptions returns delete's defaults.
func NewDeleteOptions(root *RootOptions) *DeleteOptions { return &DeleteOptions{root: root} }

// AddFlags binds delete's flags.
func (o *DeleteOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.IgnoreNotFound, "ignore-not-found", o.IgnoreNotFound, "Succeed when the application does not exist.")
}

// NewCmdDelete is `delete`.
func NewCmdDelete(root *RootOptions) *cobra.Command {
	o := NewDeleteOptions(root)
	cmd := &cobra.Command{
		Use:     "delete app NAME",
		Short:   "Delete an application; the agents remove its objects from every cluster",
		Example: "  kubectl qonnect delete app bookinfo",
		RunE:    runE(o),
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete resolves the name and the connector.
func (o *DeleteOptions) Complete(_ *cobra.Command, args []string) error {
	var err error
	if o.name, _, err = appArgs(args, 0); err != nil {
		return err
	}
	o.connector, err = o.root.Connector()
	return err
}

// Validate has nothing left to check.
func (o *DeleteOptions) Validate() error { return nil }

// Run deletes.
func (o *DeleteOptions) Run(ctx context.Context) error {
	s, err := o.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Client.DeleteApp(ctx, o.name); err != nil {
		if o.IgnoreNotFound && isNotFound(err) {
			return nil
		}
		return err
	}
	_, err = fmt.Fprintf(o.root.Out, "application.qonnect.io/%s deleted\n", o.name)
	return err
}
