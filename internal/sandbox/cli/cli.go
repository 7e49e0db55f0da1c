// Package cli is the command line of qonnect-sandbox.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/scenario"
)

// EnvDir names the sandbox folder when --dir is not given.
const EnvDir = "QONNECT_SANDBOX_DIR"

type rootOptions struct {
	dir         string
	out, errOut io.Writer
}

// NewCmdRoot returns the qonnect-sandbox command.
func NewCmdRoot(out, errOut io.Writer) *cobra.Command {
	o := &rootOptions{out: out, errOut: errOut}
	defDir := os.Getenv(EnvDir)
	if defDir == "" {
		defDir = ".sandbox"
	}
	cmd := &cobra.Command{
		Use:           "qonnect-sandbox",
		Short:         "A local federation of real Kubernetes control planes running qonnect",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	cmd.PersistentFlags().StringVar(&o.dir, "dir", defDir, "folder that holds the sandbox (state, kubeconfigs, logs, certificates, env file); env "+EnvDir)
	cmd.AddCommand(newCmdUp(o), newCmdDown(o), newCmdStatus(o), newCmdFault(o), newCmdTestbed(o), newCmdDemo(o))
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	return cmd
}

// Execute runs the command line and returns the exit code: errors are one
// line on errOut, never cobra's usage dump.
func Execute(args []string, out, errOut io.Writer) int {
	cmd := NewCmdRoot(out, errOut)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(errOut, "error: %v\n", err)
		return 1
	}
	return 0
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newCmdUp(o *rootOptions) *cobra.Command {
	var profile, qonnectBin string
	var parallel int
	var leadArgs, agentArgs []string
	cmd := &cobra.Command{
		Use:   "up [--profile paper|FILE] [--dir DIR]",
		Short: "Start one control plane per cluster of the profile, with its nodes, leads and agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := sandbox.LoadProfile(profile)
			if err != nil {
				return err
			}
			if qonnectBin == "" {
				qonnectBin = selfDir()
			}
			ctx, cancel := signalContext()
			defer cancel()
			start := time.Now()
			f, err := sandbox.Up(ctx, p, sandbox.Options{
				Dir: o.dir, QonnectBin: qonnectBin, Progress: o.errOut, Parallel: parallel,
				LeadArgs: leadArgs, AgentArgs: agentArgs,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(o.out, "sandbox up in %s (%s): %d clusters, %d leads, %d agents\n",
				f.Dir(), time.Since(start).Round(100*time.Millisecond), len(f.ClusterNames()), len(f.State().Leads), len(f.State().Agents))
			fmt.Fprintf(o.out, "use it:  source %s\n", f.EnvFile())
			return nil
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "paper", "paper (9 clusters over cloud, fog, edge) or a profile YAML file")
	cmd.Flags().StringVar(&qonnectBin, "qonnect-bin", "", "folder with qonnect-lead and qonnect-agent (default: this program's folder)")
	cmd.Flags().IntVar(&parallel, "parallel", 2, "clusters started at once")
	cmd.Flags().StringArrayVar(&leadArgs, "lead-arg", nil, "extra flag for every lead (repeatable)")
	cmd.Flags().StringArrayVar(&agentArgs, "agent-arg", nil, "extra flag for every agent (repeatable)")
	return cmd
}

func newCmdDown(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop and remove everything the sandbox started",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := sandbox.Open(o.dir, o.errOut)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if err := f.Down(ctx); err != nil {
				return err
			}
			fmt.Fprintf(o.out, "sandbox in %s is down\n", f.Dir())
			return nil
		},
	}
}

func newCmdStatus(o *rootOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status [-o json]",
		Short: "List the sandbox's clusters and qonnect processes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "wide" {
				return fmt.Errorf("unknown output format %q (want json)", output)
			}
			f, err := sandbox.Open(o.dir, o.errOut)
			if err != nil {
				return err
			}
			st := f.Status()
			if output == "json" {
				enc := json.NewEncoder(o.out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(o.out, 0, 8, 2, ' ', 0)
			fmt.Fprintln(w, "CLUSTER\tTIER\tROLE\tSTATE\tAPI SERVER\tKUBECONFIG")
			for _, c := range st.Clusters {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Tier, c.Role, c.State, c.Server, c.Kubeconfig)
			}
			fmt.Fprintln(w)
			fmt.Fprintln(w, "KIND\tID\tPID\tSTATE\tADDRESSES\tLOG")
			for _, p := range st.Processes {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", p.Kind, p.ID, p.Pid, p.State, p.Addresses, p.Log)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func newCmdFault(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Inject a failure into the sandbox, or undo one",
	}
	one := func(use, short string, run func(context.Context, *sandbox.Federation, string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  exactlyOne(use),
			RunE: func(cmd *cobra.Command, args []string) error {
				f, err := sandbox.Open(o.dir, o.errOut)
				if err != nil {
					return err
				}
				ctx, cancel := signalContext()
				defer cancel()
				if err := run(ctx, f, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(o.out, "%s %s: done\n", use, args[0])
				return nil
			},
		}
	}
	cmd.AddCommand(
		one("stop-cluster", "Stop a cluster's control plane and its agent", func(ctx context.Context, f *sandbox.Federation, n string) error { return f.StopCluster(ctx, n) }),
		one("start-cluster", "Start a stopped cluster and its agent again", func(ctx context.Context, f *sandbox.Federation, n string) error { return f.StartCluster(ctx, n) }),
		one("kill-lead", "SIGKILL a lead", func(_ context.Context, f *sandbox.Federation, n string) error { return f.KillLead(n) }),
		one("start-lead", "Start a stopped lead from its data folder", func(_ context.Context, f *sandbox.Federation, n string) error { return f.StartLead(n) }),
		one("partition-lead", "Cut a lead off from the other leads (nftables)", func(_ context.Context, f *sandbox.Federation, n string) error { return f.PartitionLead(n) }),
		&cobra.Command{
			Use:   "heal",
			Short: "Undo every partition",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				f, err := sandbox.Open(o.dir, o.errOut)
				if err != nil {
					return err
				}
				if err := f.Heal(); err != nil {
					return err
				}
				fmt.Fprintln(o.out, "heal: done")
				return nil
			},
		},
	)
	return cmd
}

func newCmdTestbed(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "testbed",
		Short: "Build the Kubernetes testbed binaries if needed and print their folder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			dir, err := sandbox.TestbedBin(ctx, o.errOut)
			if err != nil {
				return err
			}
			fmt.Fprintln(o.out, dir)
			return nil
		},
	}
}

func exactlyOne(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s takes exactly one name, got %d", what, len(args))
		}
		return nil
	}
}

func selfDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}

func newCmdDemo(o *rootOptions) *cobra.Command {
	var keep bool
	var appFile, qonnectBin string
	cmd := &cobra.Command{
		Use:   "demo [--keep]",
		Short: "Run the main job: placement by QoS, migration, failover, re-election, with measured times",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if appFile == "" {
				root, err := sandbox.RepoRoot()
				if err != nil {
					return fmt.Errorf("--app not given and no source tree to find examples/bookinfo in: %w", err)
				}
				appFile = filepath.Join(root, "examples", "bookinfo", "bookinfo.yaml")
			}
			if qonnectBin == "" {
				qonnectBin = selfDir()
			}
			ctx, cancel := signalContext()
			defer cancel()
			return scenario.Demo(ctx, scenario.DemoOptions{
				Dir: o.dir, QonnectBin: qonnectBin, AppFile: appFile, Keep: keep, Out: o.out, Progress: o.errOut,
			})
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the sandbox running afterwards (for kubectl qonnect tui)")
	cmd.Flags().StringVar(&appFile, "app", "", "the Bookinfo spec (default: examples/bookinfo/bookinfo.yaml of the source tree)")
	cmd.Flags().StringVar(&qonnectBin, "qonnect-bin", "", "folder with qonnect-lead, qonnect-agent and kubectl-qonnect (default: this program's folder)")
	return cmd
}
