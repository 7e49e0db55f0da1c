package install

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/version"
)

// kubeOptions say which clusters install talks to: the current kube
// context (kubectl's flags) and the one holding the federation CA.
type kubeOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	// CAContext is the kube context of the cluster with the federation CA
	// (the first lead's); empty means the current one.
	CAContext string
}

func newKubeOptions() *kubeOptions {
	return &kubeOptions{ConfigFlags: genericclioptions.NewConfigFlags(true)}
}

// addFlags binds kubectl's flags as persistent flags of cmd. When the
// plugin's root command has the same flags, these, being nearer, win, so
// the command behaves the same wired in or on its own.
func (k *kubeOptions) addFlags(fs *pflag.FlagSet) { k.ConfigFlags.AddFlags(fs) }

func (k *kubeOptions) addCAFlag(fs *pflag.FlagSet) {
	fs.StringVar(&k.CAContext, "ca-context", k.CAContext, "Kube context of the cluster whose namespace holds the federation CA (the first lead's). Default: the current context.")
}

// namespace is -n when given, else qonnect-system: the kube context's own
// namespace is where the person works, not where qonnect lives.
func (k *kubeOptions) namespace() string {
	if ns := k.ConfigFlags.Namespace; ns != nil && *ns != "" {
		return *ns
	}
	return DefaultNamespace
}

// contextName is the kube context in use, for messages.
func (k *kubeOptions) contextName() string {
	if c := k.ConfigFlags.Context; c != nil && *c != "" {
		return *c
	}
	raw, err := k.ConfigFlags.ToRawKubeConfigLoader().RawConfig()
	if err != nil || raw.CurrentContext == "" {
		return "(current)"
	}
	return raw.CurrentContext
}

func (k *kubeOptions) target() (*Target, error) {
	cfg, err := k.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kube context: %w", err)
	}
	return NewTarget(cfg)
}

// installer connects to the target and the CA's cluster.
func (k *kubeOptions) installer(dry DryRun) (*Installer, error) {
	in := &Installer{DryRun: dry}
	if dry == DryRunClient {
		return in, nil
	}
	t, err := k.target()
	if err != nil {
		return nil, err
	}
	in.Target, in.CA, in.CAName, in.CASame = t, t.Kube, k.contextName(), true
	if k.CAContext != "" && k.CAContext != in.CAName {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if p := k.ConfigFlags.KubeConfig; p != nil && *p != "" {
			rules.ExplicitPath = *p
		}
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.CAContext})
		cfg, err := cc.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("--ca-context %s: %w", k.CAContext, err)
		}
		ca, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("--ca-context %s: %w", k.CAContext, err)
		}
		in.CA, in.CAName, in.CASame = ca, k.CAContext, false
	}
	return in, nil
}

// commonOptions are the flags install lead and install agent share.
type commonOptions struct {
	genericiooptions.IOStreams
	kube *kubeOptions

	Registry string
	Tag      string
	DryRun   string
	Output   string
	Wait     bool
	Timeout  time.Duration

	dry DryRun
}

func (o *commonOptions) addFlags(fs *pflag.FlagSet) {
	o.kube.addCAFlag(fs)
	fs.StringVar(&o.Registry, "registry", o.Registry, "Registry the images were pushed to (REGISTRY/qonnect-lead:TAG). Empty: the bare names, for images loaded into the nodes.")
	fs.StringVar(&o.Tag, "image-tag", o.Tag, "Tag of the qonnect-lead and qonnect-agent images.")
	fs.StringVar(&o.DryRun, "dry-run", o.DryRun, `"client" prints what would be applied without contacting the cluster; "server" has the API server check it and store nothing.`)
	fs.Lookup("dry-run").NoOptDefVal = string(DryRunClient)
	fs.StringVarP(&o.Output, "output", "o", o.Output, "Output format: yaml, json or name. Secrets are never printed.")
	fs.BoolVar(&o.Wait, "wait", o.Wait, "Wait until the Deployment is available.")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long --wait waits.")
}

func (o *commonOptions) validate() error {
	switch DryRun(o.DryRun) {
	case DryRunNone, DryRunClient, DryRunServer:
		o.dry = DryRun(o.DryRun)
	default:
		return fmt.Errorf("--dry-run %q: want client, server or none", o.DryRun)
	}
	switch o.Output {
	case "", "yaml", "json", "name":
	default:
		return fmt.Errorf("--output %q: want yaml, json or name", o.Output)
	}
	if o.Wait && o.dry != DryRunNone {
		return errors.New("--wait and --dry-run exclude each other")
	}
	return nil
}

func newCommonOptions(streams genericiooptions.IOStreams, kube *kubeOptions) *commonOptions {
	return &commonOptions{IOStreams: streams, kube: kube, Tag: version.Version, DryRun: string(DryRunNone), Timeout: 5 * time.Minute}
}

func (o *commonOptions) image() Image { return Image{Registry: o.Registry, Tag: o.Tag} }

// finish prints what happened and, with --wait, waits for the Deployment.
func (o *commonOptions) finish(ctx context.Context, in *Installer, res *Result, deployment string) error {
	if err := printResult(o.IOStreams, o.Output, o.dry, res); err != nil {
		return err
	}
	if !o.Wait {
		return nil
	}
	return waitAvailable(ctx, in.Target.Kube, o.kube.namespace(), deployment, o.Timeout)
}

// LeadOptions are `install lead`'s flags.
type LeadOptions struct {
	*commonOptions

	ID           string
	Peers        string
	ServiceType  string
	StorageSize  string
	StorageClass string
	Hosts        []string
	Users        []string

	cfg LeadConfig
}

// NewLeadOptions returns install lead's defaults.
func NewLeadOptions(streams genericiooptions.IOStreams, kube *kubeOptions) *LeadOptions {
	return &LeadOptions{
		commonOptions: newCommonOptions(streams, kube),
		ServiceType:   string(corev1.ServiceTypeClusterIP),
		Users:         []string{"default"},
	}
}

// AddFlags binds install lead's flags.
func (o *LeadOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ID, "id", o.ID, "This lead's ID in the Raft group (required).")
	fs.StringVar(&o.Peers, "peers", o.Peers, "Every lead of the group, this one included: ID=RAFT_HOST:PORT=API_HOST:PORT,... The first one's install creates the federation CA. Default: this lead alone.")
	fs.StringVar(&o.ServiceType, "service-type", o.ServiceType, "Type of the lead's Service: ClusterIP, NodePort or LoadBalancer (leads and agents in other clusters must reach it).")
	fs.StringVar(&o.StorageSize, "storage-size", o.StorageSize, "Size of the lead's data volume (default 1Gi).")
	fs.StringVar(&o.StorageClass, "storage-class", o.StorageClass, "StorageClass of the lead's data volume (default: the cluster's).")
	fs.StringSliceVar(&o.Hosts, "host", o.Hosts, "More DNS names or IP addresses the lead's certificate answers for (repeatable).")
	fs.StringSliceVar(&o.Users, "users", o.Users, "Issue a user certificate into Secret qonnect-user-NAME for each NAME (repeatable); kubectl qonnect reads qonnect-user-default by default.")
	o.commonOptions.addFlags(fs)
}

// Complete turns the flags into the lead's configuration.
func (o *LeadOptions) Complete(*cobra.Command, []string) error {
	peers, err := ParsePeers(o.Peers)
	if err != nil {
		return err
	}
	o.cfg = LeadConfig{
		ID: o.ID, Peers: peers, Namespace: o.kube.namespace(), Image: o.image(),
		ServiceType: corev1.ServiceType(o.ServiceType), StorageSize: o.StorageSize, StorageClass: o.StorageClass,
		Hosts: o.Hosts, Users: o.Users,
	}
	return nil
}

// Validate checks the flags.
func (o *LeadOptions) Validate() error {
	if err := o.validate(); err != nil {
		return err
	}
	return o.cfg.Validate()
}

// Run installs the lead.
func (o *LeadOptions) Run(ctx context.Context) error {
	in, err := o.kube.installer(o.dry)
	if err != nil {
		return err
	}
	res, err := in.Lead(ctx, o.cfg)
	if err != nil {
		if res != nil {
			_ = printResult(o.IOStreams, o.Output, o.dry, res)
		}
		return err
	}
	return o.finish(ctx, in, res, LeadName)
}

// AgentOptions are `install agent`'s flags.
type AgentOptions struct {
	*commonOptions

	Cluster  string
	Tier     string
	Role     string
	Endpoint string
	Leads    []string
	Guard    bool

	cfg AgentConfig
}

// NewAgentOptions returns install agent's defaults.
func NewAgentOptions(streams genericiooptions.IOStreams, kube *kubeOptions) *AgentOptions {
	return &AgentOptions{commonOptions: newCommonOptions(streams, kube), Role: string(fleet.RoleMember), Guard: true}
}

// AddFlags binds install agent's flags. --cluster here is qonnect's name
// for the cluster; it hides kubectl's --cluster, which picks a kubeconfig
// cluster and has no use in install.
func (o *AgentOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Cluster, "cluster", o.Cluster, "This cluster's name in qonnect (required); its agent certificate carries it.")
	fs.StringVar(&o.Tier, "tier", o.Tier, "This cluster's tier: cloud, fog or edge (required).")
	fs.StringVar(&o.Role, "role", o.Role, `"lead" when this cluster hosts a lead, else "member".`)
	fs.StringVar(&o.Endpoint, "endpoint", o.Endpoint, "Address other components reach what runs here at (its ingress or load balancer).")
	fs.StringSliceVar(&o.Leads, "leads", o.Leads, "Lead API addresses the agent starts from: HOST:PORT,... (it learns the others from them).")
	fs.BoolVar(&o.Guard, "namespace-guard", o.Guard, "Install the admission policy that keeps the agent's writes in namespaces labelled app.kubernetes.io/managed-by=qonnect (Kubernetes 1.30+).")
	o.commonOptions.addFlags(fs)
}

// Complete turns the flags into the agent's configuration.
func (o *AgentOptions) Complete(*cobra.Command, []string) error {
	o.cfg = AgentConfig{
		Cluster: o.Cluster, Tier: o.Tier, Role: o.Role, Endpoint: o.Endpoint, Leads: o.Leads,
		Namespace: o.kube.namespace(), Image: o.image(), Guard: o.Guard,
	}
	return nil
}

// Validate checks the flags.
func (o *AgentOptions) Validate() error {
	if err := o.validate(); err != nil {
		return err
	}
	return o.cfg.Validate()
}

// Run installs the agent.
func (o *AgentOptions) Run(ctx context.Context) error {
	in, err := o.kube.installer(o.dry)
	if err != nil {
		return err
	}
	res, err := in.Agent(ctx, o.cfg)
	if err != nil {
		if res != nil {
			_ = printResult(o.IOStreams, o.Output, o.dry, res)
		}
		return err
	}
	return o.finish(ctx, in, res, AgentName)
}

// UninstallOptions are `uninstall`'s flags.
type UninstallOptions struct {
	genericiooptions.IOStreams
	kube   *kubeOptions
	Purge  bool
	DryRun string
	dry    DryRun
}

// NewUninstallOptions returns uninstall's defaults.
func NewUninstallOptions(streams genericiooptions.IOStreams) *UninstallOptions {
	return &UninstallOptions{IOStreams: streams, kube: newKubeOptions(), DryRun: string(DryRunNone)}
}

// AddFlags binds uninstall's flags.
func (o *UninstallOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Purge, "purge", o.Purge, "Delete the lead's data volume, the federation CA and the namespace too.")
	fs.StringVar(&o.DryRun, "dry-run", o.DryRun, `"server" has the API server check the deletions and do none.`)
	fs.Lookup("dry-run").NoOptDefVal = string(DryRunServer)
}

// Complete has nothing to resolve.
func (o *UninstallOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks --dry-run: a client dry run of a deletion would have
// to look at the cluster anyway.
func (o *UninstallOptions) Validate() error {
	switch DryRun(o.DryRun) {
	case DryRunNone, DryRunServer:
		o.dry = DryRun(o.DryRun)
		return nil
	}
	return fmt.Errorf("--dry-run %q: want server or none", o.DryRun)
}

// Run uninstalls.
func (o *UninstallOptions) Run(ctx context.Context) error {
	in, err := o.kube.installer(o.dry)
	if err != nil {
		return err
	}
	res, err := in.Uninstall(ctx, UninstallConfig{Namespace: o.kube.namespace(), Purge: o.Purge})
	if res != nil {
		if perr := printResult(o.IOStreams, "", o.dry, res); err == nil {
			err = perr
		}
	}
	return err
}

// command is the life of every command's options.
type command interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// runE runs Complete, Validate and Run, and folds any error onto one line.
func runE(c command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := c.Complete(cmd, args)
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			err = c.Run(ctx)
		}
		return oneLine(err)
	}
}

type lineError struct {
	msg   string
	cause error
}

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return e.cause }

func oneLine(err error) error {
	if err == nil {
		return nil
	}
	s := strings.TrimSpace(strings.ReplaceAll(err.Error(), "\r", ""))
	if !strings.Contains(s, "\n") {
		return err
	}
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return &lineError{msg: strings.Join(parts, "; "), cause: err}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q (see %s --help)", cmd.CommandPath(), args[0], cmd.CommandPath())
	}
	return nil
}

// NewCmdInstall is `install lead|agent`.
func NewCmdInstall(streams genericiooptions.IOStreams) *cobra.Command {
	kube := newKubeOptions()
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install a qonnect lead or agent into the current kube context's cluster",
		Long: `Install renders qonnect's manifests (the kustomize bases of manifests/) for the current kube
context and applies them with server-side apply, field manager "qonnect". Running it again with
the same flags changes nothing; with other flags, it changes what they change.

The first lead's install creates the federation CA and keeps it in the Secret qonnect-ca of its
namespace; every later install reads it from there (--ca-context) to issue the lead's, agent's and
users' certificates. The CA's key never leaves that cluster.`,
		SilenceUsage: true,
		Args:         noArgs,
		RunE:         func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	kube.addFlags(cmd.PersistentFlags())

	lo := NewLeadOptions(streams, kube)
	lead := &cobra.Command{
		Use:   "lead --id ID [--peers ID=RAFT=API,...]",
		Short: "Install a lead (one per Raft member cluster)",
		Example: `  # The first of three leads; its install creates the federation CA.
  kubectl qonnect install lead --context cloud-1 --id cloud-1 --service-type LoadBalancer \
    --peers cloud-1=10.0.1.10:7000=10.0.1.10:7443,cloud-2=10.0.2.10:7000=10.0.2.10:7443,cloud-3=10.0.3.10:7000=10.0.3.10:7443
  # The others, with the CA from the first one's cluster.
  kubectl qonnect install lead --context cloud-2 --ca-context cloud-1 --id cloud-2 --peers ...
  # See what would be applied.
  kubectl qonnect install lead --id cloud-1 --dry-run -o yaml`,
		SilenceUsage: true,
		Args:         noArgs,
		RunE:         runE(lo),
	}
	lo.AddFlags(lead.Flags())

	ao := NewAgentOptions(streams, kube)
	agent := &cobra.Command{
		Use:   "agent --cluster NAME --tier TIER --leads HOST:PORT,...",
		Short: "Install the agent of this cluster (one per cluster, lead clusters included)",
		Example: `  kubectl qonnect install agent --context edge-1 --ca-context cloud-1 \
    --cluster edge-1 --tier edge --leads 10.0.1.10:7443,10.0.2.10:7443,10.0.3.10:7443`,
		SilenceUsage: true,
		Args:         noArgs,
		RunE:         runE(ao),
	}
	ao.AddFlags(agent.Flags())

	cmd.AddCommand(lead, agent)
	return cmd
}

// NewCmdUninstall is `uninstall`.
func NewCmdUninstall(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewUninstallOptions(streams)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what install put into the current kube context's cluster",
		Long: `Uninstall deletes the lead's and the agent's objects that install made (those labelled
app.kubernetes.io/part-of=qonnect). It keeps the lead's data volume, the federation CA and the
namespace unless --purge is given. Applications the agent deployed are not touched.`,
		SilenceUsage: true,
		Args:         noArgs,
		RunE:         runE(o),
	}
	o.kube.addFlags(cmd.PersistentFlags())
	o.AddFlags(cmd.Flags())
	return cmd
}
