package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"qonnect.io/qonnect/plugin/tui"
)

// TUIOptions are `tui`'s flags.
type TUIOptions struct {
	root *RootOptions
	// LogFile receives the TUI's log; the screen never does.
	LogFile   string
	WatchWait time.Duration

	connector Connector
}

// NewTUIOptions returns tui's defaults.
func NewTUIOptions(root *RootOptions) *TUIOptions {
	return &TUIOptions{root: root, LogFile: filepath.Join(os.TempDir(), "kubectl-qonnect-tui.log"), WatchWait: 30 * time.Second}
}

// AddFlags binds tui's flags.
func (o *TUIOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.LogFile, "log-file", o.LogFile, "Where the TUI logs (never to the screen).")
	cmd.Flags().DurationVar(&o.WatchWait, "watch-wait", o.WatchWait, "How long one watch long-poll waits before the views refresh anyway.")
}

// NewCmdTUI is `tui`.
func NewCmdTUI(root *RootOptions) *cobra.Command {
	o := NewTUIOptions(root)
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Watch placements, clusters and the lead group live in the terminal",
		Long: `The TUI shows where every component runs, the clusters and the lead group, updated from the
lead's watch. Keys: tab switches views, arrows or j/k move, enter shows a component's placement
explanation, / filters, ? shows all keys, q quits.`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete resolves the connector.
func (o *TUIOptions) Complete(*cobra.Command, []string) error {
	var err error
	o.connector, err = o.root.Connector()
	return err
}

// Validate checks the flags.
func (o *TUIOptions) Validate() error {
	if o.WatchWait <= 0 {
		return errors.New("--watch-wait must be positive")
	}
	return nil
}

// Run starts the TUI until q.
func (o *TUIOptions) Run(ctx context.Context) error {
	logf, err := os.OpenFile(o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the TUI log: %w", err)
	}
	defer logf.Close()
	logger := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// client-go (port-forward, the kube client) logs through klog, which
	// writes to stderr: over the TUI. Send it to the log file too.
	klog.LogToStderr(false)
	klog.SetOutput(logf)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := tui.New(ctx, tui.Options{
		Connect: func(ctx context.Context) (*tui.Conn, error) {
			s, err := o.connector.Connect(ctx)
			if err != nil {
				return nil, err
			}
			return &tui.Conn{Client: s.Client, Via: s.Via, Close: s.Close}, nil
		},
		Now:       o.root.Env.Now,
		Logger:    logger,
		WatchWait: o.WatchWait,
	})
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithInput(o.root.In), tea.WithOutput(o.root.Out), tea.WithContext(ctx))
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return fmt.Errorf("tui: %w", err)
	}
	return nil
}
