package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Build facts, set at link time:
//
//	go build -ldflags "-X qonnect.io/qonnect/plugin.Version=v0.1.0 -X qonnect.io/qonnect/plugin.GitCommit=$(git rev-parse HEAD) -X qonnect.io/qonnect/plugin.BuildDate=$(date -u +%FT%TZ)"
var (
	Version   = "dev"
	GitCommit = ""
	BuildDate = ""
)

// VersionInfo is what `version -o json|yaml` prints, under clientVersion
// as kubectl does.
type VersionInfo struct {
	Version   string `json:"version"`
	GitCommit string `json:"gitCommit,omitempty"`
	BuildDate string `json:"buildDate,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// CurrentVersion is this binary's version.
func CurrentVersion() VersionInfo {
	return VersionInfo{Version: Version, GitCommit: GitCommit, BuildDate: BuildDate, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

// VersionOptions are `version`'s flags.
type VersionOptions struct {
	root   *RootOptions
	Output string
}

// NewVersionOptions returns version's defaults.
func NewVersionOptions(root *RootOptions) *VersionOptions { return &VersionOptions{root: root} }

// AddFlags binds version's flags.
func (o *VersionOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Output format: json or yaml.")
}

// NewCmdVersion is `version`.
func NewCmdVersion(root *RootOptions) *cobra.Command {
	o := NewVersionOptions(root)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version",
		Args:  cobra.NoArgs,
		RunE:  runE(o),
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete has nothing to resolve: version never needs a lead.
func (o *VersionOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks -o.
func (o *VersionOptions) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
		return nil
	}
	return errors.New("--output must be json or yaml")
}

// Run prints the version.
func (o *VersionOptions) Run(context.Context) error {
	v := CurrentVersion()
	doc := map[string]VersionInfo{"clientVersion": v}
	switch o.Output {
	case "json":
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return fmt.Errorf("encode version: %w", err)
		}
		_, err = fmt.Fprintf(o.root.Out, "%s\n", data)
		return err
	case "yaml":
		data, err := yaml.Marshal(doc)
		if err != nil {
			return fmt.Errorf("encode version: %w", err)
		}
		_, err = o.root.Out.Write(data)
		return err
	}
	commit := ""
	if v.GitCommit != "" {
		commit = ", commit " + v.GitCommit
	}
	_, err := fmt.Fprintf(o.root.Out, "kubectl-qonnect %s%s (%s, %s)\n", v.Version, commit, v.GoVersion, v.Platform)
	return err
}

// CompletionOptions are `completion`'s arguments.
type CompletionOptions struct {
	root  *RootOptions
	shell string
	cmd   *cobra.Command
}

// NewCmdCompletion is `completion bash|zsh|fish`.
func NewCmdCompletion(root *RootOptions) *cobra.Command {
	o := &CompletionOptions{root: root}
	cmd := &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print a shell completion script",
		Long:      "Print a shell completion script. For kubectl to complete the plugin, also install a kubectl_complete-qonnect script that calls kubectl-qonnect __complete \"$@\".",
		Example:   "  source <(kubectl-qonnect completion bash)",
		ValidArgs: []cobra.Completion{"bash", "zsh", "fish"},
		RunE:      runE(o),
	}
	return cmd
}

// Complete remembers the shell and the root command.
func (o *CompletionOptions) Complete(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return errors.New("say which shell: completion bash, zsh or fish")
	}
	o.shell, o.cmd = args[0], cmd.Root()
	return nil
}

// Validate checks the shell.
func (o *CompletionOptions) Validate() error {
	switch o.shell {
	case "bash", "zsh", "fish":
		return nil
	}
	return fmt.Errorf("unknown shell %q: use bash, zsh or fish", o.shell)
}

// Run prints the script.
func (o *CompletionOptions) Run(context.Context) error {
	switch o.shell {
	case "bash":
		return o.cmd.GenBashCompletionV2(o.root.Out, true)
	case "zsh":
		return o.cmd.GenZshCompletion(o.root.Out)
	default:
		return o.cmd.GenFishCompletion(o.root.Out, true)
	}
}
