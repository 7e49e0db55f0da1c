package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/liggitt/tabwriter"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/printers"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/plugin/fleetview"
)

// row is one object as get shows it: a table row and the full object.
type row struct {
	name  string
	cells []any
	obj   *unstructured.Unstructured
}

// resource is a kind `get` knows.
type resource struct {
	plural   string
	singular string
	aliases  []string
	columns  []metav1.TableColumnDefinition
	// fetch lists every object of the kind, in display order, and the
	// knowledge base index the list is at (where a watch starts).
	fetch func(ctx context.Context, c leadclient.User, o *GetOptions) ([]row, uint64, error)
	// watchWait is how long one watch call waits; kinds whose changes do
	// not move the knowledge base index (the lead group) wait less.
	watchWait time.Duration
}

var resources = []*resource{
	{
		plural: "applications", singular: "application", aliases: []string{"app", "apps"},
		columns: []metav1.TableColumnDefinition{
			column("Name", false), column("Generation", false), column("Components", false),
			column("Healthy", false), column("Status", false), column("Age", false),
			column("Namespace", true), column("QoS", true), column("Clusters", true),
		},
		fetch: fetchApps, watchWait: 30 * time.Second,
	},
	{
		plural: "clusters", singular: "cluster",
		columns: []metav1.TableColumnDefinition{
			column("Name", false), column("Tier", false), column("Role", false), column("Nodes", false),
			column("Health", false), column("Age", false),
			column("Endpoint", true), column("Energy", true), column("Price", true),
			column("CPU Free", true), column("Memory Free", true), column("Last Seen", true),
		},
		fetch: fetchClusters, watchWait: 30 * time.Second,
	},
	{
		plural: "nodes", singular: "node", aliases: []string{"no"},
		columns: []metav1.TableColumnDefinition{
			column("Name", false), column("Cluster", false), column("Status", false),
			column("CPU", false), column("Memory", false), column("Energy", false), column("Price", false),
			column("Reported", false),
			column("Arch", true), column("Bandwidth", true), column("Pods", true), column("Location", true),
		},
		fetch: fetchNodes, watchWait: 30 * time.Second,
	},
	{
		plural: "leads", singular: "lead",
		columns: []metav1.TableColumnDefinition{
			column("Name", false), column("State", false), column("Suffrage", false),
			column("Reachable", false), column("API Address", false),
			column("Raft Address", true),
		},
		fetch: fetchLeads, watchWait: 5 * time.Second,
	},
}

// findResource resolves what a user typed: plural, singular, alias, or
// the group-qualified name -o name prints (application.qonnect.io).
func findResource(s string) (*resource, error) {
	k := strings.ToLower(strings.TrimSuffix(s, ".qonnect.io"))
	for _, r := range resources {
		if k == r.plural || k == r.singular {
			return r, nil
		}
		for _, a := range r.aliases {
			if k == a {
				return r, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown resource type %q: use apps, clusters, nodes or leads", s)
}

// GetOptions are `get`'s flags and arguments.
type GetOptions struct {
	root   *RootOptions
	Output *OutputFlags
	Watch  bool
	// Cluster limits nodes to one cluster.
	Cluster string

	res       *resource
	names     []string
	connector Connector
	printer   printers.ResourcePrinter
}

// NewGetOptions returns get's defaults.
func NewGetOptions(root *RootOptions) *GetOptions {
	return &GetOptions{root: root, Output: NewOutputFlags(true)}
}

// AddFlags binds get's flags.
func (o *GetOptions) AddFlags(cmd *cobra.Command) {
	o.Output.AddFlags(cmd)
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", o.Watch, "After listing, watch for changes and print them.")
	cmd.Flags().StringVar(&o.Cluster, "cluster-name", o.Cluster, "With nodes: only the nodes of this cluster.")
}

// NewCmdGet is `get`.
func NewCmdGet(root *RootOptions) *cobra.Command {
	o := NewGetOptions(root)
	cmd := &cobra.Command{
		Use:   "get (apps|clusters|nodes|leads) [NAME...]",
		Short: "List applications, clusters, nodes or leads",
		Example: `  kubectl qonnect get apps
  kubectl qonnect get app bookinfo -o yaml
  kubectl qonnect get clusters -o wide
  kubectl qonnect get nodes --cluster-name edge-1
  kubectl qonnect get apps -w`,
		RunE: runE(o),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []cobra.Completion{"apps", "clusters", "nodes", "leads"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// Complete resolves the kind and names ("app/NAME" works too).
func (o *GetOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 0 {
		return errors.New("say what to get: apps, clusters, nodes or leads")
	}
	kind, names := args[0], args[1:]
	if i := strings.Index(kind, "/"); i >= 0 {
		kind, names = kind[:i], append([]string{kind[i+1:]}, names...)
	}
	var err error
	if o.res, err = findResource(kind); err != nil {
		return err
	}
	o.names = names
	if !o.Output.Human() {
		if o.printer, err = o.Output.Printer(); err != nil {
			return err
		}
	}
	o.connector, err = o.root.Connector()
	return err
}

// Validate checks the flags fit the kind.
func (o *GetOptions) Validate() error {
	for _, n := range o.names {
		if n == "" {
			return errors.New("empty name")
		}
	}
	if o.Cluster != "" && o.res.plural != "nodes" {
		return errors.New("--cluster-name applies to nodes only")
	}
	return nil
}

// Run lists, then watches when asked.
func (o *GetOptions) Run(ctx context.Context) error {
	s, err := o.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	rows, index, err := o.res.fetch(ctx, s.Client, o)
	if err != nil {
		return err
	}
	rows, missing := o.filter(rows)
	table := o.Output.TablePrinter()
	// One tabwriter for the whole run, as kubectl get -w does: it
	// remembers column widths, so rows printed later line up.
	tw := printers.GetNewTabWriter(o.root.Out)
	defer tw.Flush()
	if err := o.print(table, tw, rows, true); err != nil {
		return err
	}
	_ = tw.Flush()
	if len(rows) == 0 && len(missing) == 0 && o.Output.Human() && !o.Watch {
		fmt.Fprintf(o.root.ErrOut, "No %s found.\n", o.res.plural)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s %s not found", o.res.singular, quoteList(missing))
	}
	if !o.Watch {
		return nil
	}
	ctx, cancel := o.root.Env.Interrupt(ctx)
	defer cancel()
	return o.watch(ctx, s.Client, table, tw, rows, index)
}

// filter keeps the named objects, in the order named.
func (o *GetOptions) filter(rows []row) (kept []row, missing []string) {
	if len(o.names) == 0 {
		return rows, nil
	}
	by := map[string]row{}
	for _, r := range rows {
		if _, dup := by[r.name]; !dup {
			by[r.name] = r
		}
	}
	for _, n := range o.names {
		if r, ok := by[n]; ok {
			kept = append(kept, r)
		} else {
			missing = append(missing, n)
		}
	}
	return kept, missing
}

func (o *GetOptions) print(table printers.ResourcePrinter, out io.Writer, rows []row, first bool) error {
	if o.Output.Human() {
		cells := make([][]any, len(rows))
		for i, r := range rows {
			cells[i] = r.cells
		}
		return printTable(table, out, o.res.columns, cells)
	}
	objs := make([]*unstructured.Unstructured, len(rows))
	for i, r := range rows {
		objs[i] = r.obj
	}
	// While watching, each change is printed as the object itself, as
	// kubectl get -w -o json does.
	if !first {
		for _, obj := range objs {
			if err := o.printer.PrintObj(obj, out); err != nil {
				return err
			}
		}
		return nil
	}
	return printObjects(o.printer, out, objs, len(o.names) == 1)
}

// watch long-polls the lead for knowledge base changes and prints the rows
// that changed, until ctx ends (Ctrl-C), which is a normal end.
func (o *GetOptions) watch(ctx context.Context, c leadclient.User, table printers.ResourcePrinter, tw *tabwriter.Writer, last []row, index uint64) error {
	prev := map[string]*unstructured.Unstructured{}
	for _, r := range last {
		prev[r.name] = r.obj
	}
	for {
		w, err := c.Watch(ctx, index, o.res.watchWait)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		rows, listIndex, err := o.res.fetch(ctx, c, o)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		index = max(w.Index, listIndex)
		rows, _ = o.filter(rows)
		var changed []row
		for _, r := range rows {
			if p, ok := prev[r.name]; !ok || !reflect.DeepEqual(p.Object, r.obj.Object) {
				changed = append(changed, r)
			}
			prev[r.name] = r.obj
		}
		if len(changed) > 0 {
			if err := o.print(table, tw, changed, false); err != nil {
				return err
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

func fetchApps(ctx context.Context, c leadclient.User, o *GetOptions) ([]row, uint64, error) {
	list, err := c.ListApps(ctx)
	if err != nil {
		return nil, 0, err
	}
	fleetview.SortApps(list.Items)
	now := o.root.Env.Now()
	rows := make([]row, 0, len(list.Items))
	for i := range list.Items {
		a := &list.Items[i]
		s := fleetview.AppOf(a)
		rows = append(rows, row{
			name: s.Name,
			obj:  AppObject(a),
			cells: []any{
				s.Name, strconv.FormatInt(s.Generation, 10), strconv.Itoa(s.Components),
				fmt.Sprintf("%d/%d", s.Healthy, s.Components), s.Status, fleetview.Age(now, s.Created),
				s.Namespace, fleetview.QoS(s.QoS), fleetview.Join(s.Clusters),
			},
		})
	}
	return rows, list.Index, nil
}

func fetchClusters(ctx context.Context, c leadclient.User, o *GetOptions) ([]row, uint64, error) {
	list, err := c.ListClusters(ctx)
	if err != nil {
		return nil, 0, err
	}
	nodes, err := c.ListNodes(ctx, "")
	if err != nil {
		return nil, 0, err
	}
	now := o.root.Env.Now()
	var rows []row
	for _, cl := range fleetview.ClustersOf(list.Items, nodes.Items) {
		rows = append(rows, row{
			name: cl.Name,
			obj:  ClusterObject(cl),
			cells: []any{
				cl.Name, string(cl.Tier), string(cl.Role), fmt.Sprintf("%d/%d", cl.ReadyNodes, cl.Nodes),
				cl.Health(), fleetview.Age(now, cl.Registered),
				fleetview.OrDash(cl.Endpoint), fleetview.Number(cl.Energy), fleetview.Number(cl.Price),
				fleetview.MilliCPU(cl.Free.MilliCPU) + "/" + fleetview.MilliCPU(cl.Allocatable.MilliCPU),
				fleetview.Bytes(cl.Free.MemoryBytes) + "/" + fleetview.Bytes(cl.Allocatable.MemoryBytes),
				fleetview.Age(now, cl.LastSeen),
			},
		})
	}
	return rows, max(list.Index, nodes.Index), nil
}

func fetchNodes(ctx context.Context, c leadclient.User, o *GetOptions) ([]row, uint64, error) {
	list, err := c.ListNodes(ctx, o.Cluster)
	if err != nil {
		return nil, 0, err
	}
	fleetview.SortNodes(list.Items)
	now := o.root.Env.Now()
	rows := make([]row, 0, len(list.Items))
	for _, n := range list.Items {
		energy, price := "-", "-"
		if v, ok := fleetview.LabelFloat(n, fleet.LabelEnergy); ok {
			energy = fleetview.Number(v)
		}
		if v, ok := fleetview.LabelFloat(n, fleet.LabelPrice); ok {
			price = fleetview.Number(v)
		}
		bw := "-"
		if v, ok := fleetview.LabelFloat(n, fleet.LabelBandwidth); ok {
			bw = fleetview.Bandwidth(v)
		}
		free := n.Free()
		rows = append(rows, row{
			name: n.Name,
			obj:  NodeObject(n),
			cells: []any{
				n.Name, n.Cluster, fleetview.NodeConditions(n),
				fleetview.MilliCPU(free.MilliCPU) + "/" + fleetview.MilliCPU(n.Allocatable.MilliCPU),
				fleetview.Bytes(free.MemoryBytes) + "/" + fleetview.Bytes(n.Allocatable.MemoryBytes),
				energy, price, fleetview.Age(now, n.Reported),
				fleetview.OrDash(n.Architecture), bw,
				fmt.Sprintf("%d/%d", n.Requested.Pods, n.Allocatable.Pods),
				fleetview.OrDash(n.Labels[fleet.LabelLocation]),
			},
		})
	}
	return rows, list.Index, nil
}

func fetchLeads(ctx context.Context, c leadclient.User, _ *GetOptions) ([]row, uint64, error) {
	st, err := c.RaftStatus(ctx)
	if err != nil {
		return nil, 0, err
	}
	leads := fleetview.LeadsOf(st)
	rows := make([]row, 0, len(leads))
	for _, l := range leads {
		rows = append(rows, row{
			name: l.ID,
			obj:  LeadObject(l),
			cells: []any{
				l.ID, l.State, fleetview.OrDash(l.Suffrage), fleetview.Reachable(l.Reachable),
				fleetview.OrDash(l.APIAddr), fleetview.OrDash(l.RaftAddr),
			},
		})
	}
	return rows, st.AppliedIndex, nil
}
