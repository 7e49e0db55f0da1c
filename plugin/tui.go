package plugin

import "github.com/spf13/cobra"

func NewCmdTUI(root *RootOptions) *cobra.Command { return &cobra.Command{Use: "tui"} }
