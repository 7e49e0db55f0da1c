package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/plugin/fleetview"
)

// Dry-run modes, as kubectl names them.
const (
	DryRunNone   = "none"
	DryRunClient = "client"
	DryRunServer = "server"
)

// ApplyOptions are `apply`'s flags.
type ApplyOptions struct {
	root       *RootOptions
	Output     *OutputFlags
	Filenames  []string
	DryRun     string
	Wait       bool
	Timeout    time.Duration
	AllowKinds []string

	apps      []*spec.Application
	connector Connector
}

// NewApplyOptions returns apply's defaults.
func NewApplyOptions(root *RootOptions) *ApplyOptions {
	return &ApplyOptions{root: root, Output: NewOutputFlags(false), DryRun: DryRunNone, Timeout: 5 * time.Minute}
}

// AddFlags binds apply's flags.
func (o *ApplyOptions) AddFlags(cmd *cobra.Command) {
	o.Output.AddFlags(cmd)
	fs := cmd.Flags()
	fs.StringSliceVarP(&o.Filenames, "filename", "f", o.Filenames, "Application spec file, a directory of them, or - for stdin (manifest paths then resolve against the current directory).")
	fs.StringVar(&o.DryRun, "dry-run", o.DryRun, `"none", "client" (validate only) or "server" (show where it would be placed and why, storing nothing).`)
	fs.BoolVar(&o.Wait, "wait", o.Wait, "Wait until every component is Healthy, showing each one's progress.")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "With --wait: how long to wait.")
	fs.StringSliceVar(&o.AllowKinds, "allow-kinds", o.AllowKinds, "Kinds the lead's operator allows beyond the default (validated locally as the lead would).")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
}

// NewCmdApply is `apply`.
func NewCmdApply(root *RootOptions) *cobra.Command {
	o := NewApplyOptions(root)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update applications from their spec",
		Long: `Apply reads Application specs and the manifest files they name (relative to the spec), validates
everything locally, then submits it. Nothing is sent when any spec is invalid.`,
		Example: `  kubectl qonnect apply -f bookinfo/app.yaml
  kubectl qonnect apply -f bookinfo/ --dry-run=server
  kubectl qonnect apply -f app.yaml --wait --timeout 3m`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete checks the flags' values.
func (o *ApplyOptions) Complete(*cobra.Command, []string) error {
	o.DryRun = strings.ToLower(o.DryRun)
	if err := o.Output.Check(); err != nil {
		return err
	}
	return nil
}

// Validate reads and validates every spec; any problem stops everything
// before a lead is contacted.
func (o *ApplyOptions) Validate() error {
	switch o.DryRun {
	case DryRunNone, DryRunClient, DryRunServer:
	default:
		return fmt.Errorf("--dry-run must be none, client or server, got %q", o.DryRun)
	}
	if len(o.Filenames) == 0 {
		return errors.New("give the spec with -f FILE, -f DIR or -f -")
	}
	if o.Wait && o.DryRun != DryRunNone {
		return errors.New("--wait cannot be used with --dry-run")
	}
	if o.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	opts := spec.ValidateOptions{AllowKinds: o.AllowKinds}
	seen := map[string]string{}
	for _, f := range o.Filenames {
		apps, err := o.load(f, opts)
		if err != nil {
			return err
		}
		for _, a := range apps {
			if prev, dup := seen[a.Metadata.Name]; dup {
				return fmt.Errorf("application %q is given twice (%s and %s)", a.Metadata.Name, prev, f)
			}
			seen[a.Metadata.Name] = f
			o.apps = append(o.apps, a)
		}
	}
	return nil
}

// load reads one -f argument.
func (o *ApplyOptions) load(f string, opts spec.ValidateOptions) ([]*spec.Application, error) {
	if f == "-" {
		data, err := io.ReadAll(io.LimitReader(o.root.In, spec.MaxSpecBytes+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		cwd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("current directory: %w", err)
		}
		a, err := spec.LoadBytes(data, "stdin", cwd, opts)
		if err != nil {
			return nil, err
		}
		return []*spec.Application{a}, nil
	}
	st, err := os.Stat(f)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &spec.FieldError{File: f, Msg: "file not found"}
		}
		return nil, &spec.FieldError{File: f, Msg: "cannot read: " + errors.Unwrap(err).Error()}
	}
	if !st.IsDir() {
		a, err := spec.Load(f, opts)
		if err != nil {
			return nil, err
		}
		return []*spec.Application{a}, nil
	}
	specs, err := specsIn(f)
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, &spec.FieldError{File: f, Msg: "no Application spec in this directory"}
	}
	var apps []*spec.Application
	for _, p := range specs {
		a, err := spec.Load(p, opts)
		if err != nil {
			return nil, err
		}
		apps = append(apps, a)
	}
	return apps, nil
}

// specsIn lists the files of dir (not its subdirectories) that hold an
// Application, sorted; the others are the manifests the specs name.
func specsIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &spec.FieldError{File: dir, Msg: "cannot read directory: " + err.Error()}
	}
	var out []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		ok, err := isApplication(p)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// isApplication peeks at a file's first document.
func isApplication(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, &spec.FieldError{File: path, Msg: "cannot read: " + err.Error()}
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	if err := dec.Decode(&head); err != nil && !errors.Is(err, io.EOF) {
		return false, &spec.FieldError{File: path, Msg: "not valid YAML or JSON: " + err.Error()}
	}
	return head.Kind == spec.Kind && strings.HasPrefix(head.APIVersion, "qonnect.io/"), nil
}

// Run submits each application and reports what changed.
func (o *ApplyOptions) Run(ctx context.Context) error {
	if o.DryRun == DryRunClient {
		for _, a := range o.apps {
			if err := o.report(&apiv1.ApplyResult{Result: "valid", App: apiv1.App{Spec: *a}}, " (client dry run)"); err != nil {
				return err
			}
		}
		return nil
	}
	conn, err := o.root.Connector()
	if err != nil {
		return err
	}
	s, err := conn.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	type applied struct {
		name  string
		gen   int64
		index uint64
	}
	var done []applied
	for _, a := range o.apps {
		res, err := s.Client.ApplyApp(ctx, a, o.DryRun == DryRunServer)
		if err != nil {
			return err
		}
		suffix := ""
		if o.DryRun == DryRunServer {
			suffix = " (server dry run)"
		}
		if err := o.report(res, suffix); err != nil {
			return err
		}
		done = append(done, applied{a.Metadata.Name, res.App.Generation, res.Index})
	}
	if !o.Wait {
		return nil
	}
	ctx, cancel := o.root.Env.Interrupt(ctx)
	defer cancel()
	for _, d := range done {
		if err := o.wait(ctx, s.Client, d.name, d.gen, d.index); err != nil {
			return err
		}
	}
	return nil
}

// report prints one result: the kubectl-style line, and for a server dry
// run where each component would go and why.
func (o *ApplyOptions) report(res *apiv1.ApplyResult, suffix string) error {
	if !o.Output.Human() {
		p, err := o.Output.Printer()
		if err != nil {
			return err
		}
		return p.PrintObj(AppObject(&res.App), o.root.Out)
	}
	fmt.Fprintf(o.root.Out, "application.qonnect.io/%s %s%s\n", res.App.Spec.Metadata.Name, res.Result, suffix)
	if !res.DryRun {
		return nil
	}
	rows := [][]any{}
	for _, c := range fleetview.Components(&res.App) {
		score, reason := "-", c.Reason
		if e := c.Explanation; e != nil {
			for _, cs := range e.Clusters {
				if cs.Cluster == c.Cluster {
					score = fleetview.Score(cs.Score)
				}
			}
			if e.Summary != "" {
				reason = e.Summary
			}
		}
		cluster := c.Cluster
		if cluster == "" {
			cluster = "<pending>"
		}
		rows = append(rows, []any{c.Component, string(c.Tier), cluster, fleetview.Join(c.Nodes), score, fleetview.OrDash(reason)})
	}
	return printTable(o.Output.TablePrinter(), o.root.Out, placementColumns, rows)
}

var placementColumns = []metav1.TableColumnDefinition{
	column("Component", false), column("Tier", false), column("Cluster", false),
	column("Nodes", false), column("Score", false), column("Reason", false),
}

// wait follows one application until every component is Healthy at the
// applied generation, printing a line per component whenever its state
// changes (redrawn in place on a terminal).
func (o *ApplyOptions) wait(ctx context.Context, c leadclient.User, name string, gen int64, index uint64) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	lw := newLiveWriter(o.root.Out)
	var lastComps []fleetview.Component
	for {
		app, err := c.GetApp(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return o.waitErr(ctx, name, lastComps)
			}
			return err
		}
		comps := fleetview.Components(app)
		lastComps = comps
		lw.update(progressLines(comps))
		if allHealthy(comps, gen) {
			fmt.Fprintf(o.root.Out, "application.qonnect.io/%s healthy (%d/%d components)\n", name, len(comps), len(comps))
			return nil
		}
		deadline, _ := ctx.Deadline()
		wait := min(time.Until(deadline), apiv1.DefaultWait)
		if wait <= 0 {
			return o.waitErr(ctx, name, comps)
		}
		w, err := c.Watch(ctx, index, wait)
		if err != nil {
			if ctx.Err() != nil {
				return o.waitErr(ctx, name, comps)
			}
			return err
		}
		index = w.Index
	}
}

func (o *ApplyOptions) waitErr(ctx context.Context, name string, comps []fleetview.Component) error {
	// The deadline may be reached a moment before ctx reports it; only an
	// interrupt is not a timeout.
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("stopped waiting for %s", name)
	}
	healthy := 0
	var notes []string
	for _, c := range comps {
		if c.Healthy() {
			healthy++
			continue
		}
		n := c.Component + ": " + string(c.Phase)
		if c.Message != "" {
			n += " (" + c.Message + ")"
		}
		notes = append(notes, n)
	}
	return fmt.Errorf("timed out after %s waiting for %s: %d/%d components healthy; %s", o.Timeout, name, healthy, len(comps), strings.Join(notes, "; "))
}

func allHealthy(comps []fleetview.Component, gen int64) bool {
	if len(comps) == 0 {
		return false
	}
	for _, c := range comps {
		if !c.Healthy() || c.Generation < gen {
			return false
		}
	}
	return true
}

// progressLines is one aligned line per component.
func progressLines(comps []fleetview.Component) []string {
	width := 0
	for _, c := range comps {
		width = max(width, len(c.Component))
	}
	lines := make([]string, 0, len(comps))
	for _, c := range comps {
		where := c.Cluster
		if where == "" {
			where = "<pending>"
		}
		if c.From != "" {
			where = c.From + "->" + where
		}
		l := fmt.Sprintf("  %-*s  %-5s  %-20s  %-11s  %s", width, c.Component, c.Tier, where, c.Phase, c.ReadyString())
		if c.Message != "" && !c.Healthy() {
			l += "  " + c.Message
		}
		lines = append(lines, strings.TrimRight(l, " "))
	}
	return lines
}

// liveWriter prints a block of lines, redrawing it in place on a terminal
// and printing only the lines that changed elsewhere (logs, pipes).
type liveWriter struct {
	w     io.Writer
	tty   bool
	shown []string
}

func newLiveWriter(w io.Writer) *liveWriter {
	f, ok := w.(*os.File)
	return &liveWriter{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (l *liveWriter) update(lines []string) {
	if l.tty {
		if len(l.shown) > 0 {
			fmt.Fprintf(l.w, "\x1b[%dA", len(l.shown))
		}
		for _, s := range lines {
			fmt.Fprintf(l.w, "\x1b[2K%s\n", s)
		}
		l.shown = lines
		return
	}
	for i, s := range lines {
		if i >= len(l.shown) || l.shown[i] != s {
			fmt.Fprintln(l.w, s)
		}
	}
	l.shown = lines
}
