// Package plugin is kubectl-qonnect: the commands people use to apply,
// inspect and explain qonnect applications, and the TUI.
//
// # Reaching the leads
//
// Directly, when --lead (repeatable, or a comma list) or QONNECT_LEAD names
// lead API addresses: mutual TLS with --lead-ca/--lead-cert/--lead-key or
// QONNECT_LEAD_CA/_CERT/_KEY. The next lead is tried when one is down.
//
// Otherwise through the current kube context (--kubeconfig, --context and
// the other kubectl flags work as in kubectl): the plugin reads the user's
// certificate from the Secret qonnect-user-NAME in the leads' namespace
// (qonnect-system, or -n), with keys ca.crt, tls.crt and tls.key, then
// port-forwards to the lead pods (label app.kubernetes.io/name=qonnect-lead)
// and speaks mutual TLS through them. NAME is --lead-user (or QONNECT_USER)
// when given; otherwise the kube user's name as the API server reports it
// (a SelfSubjectReview), made a DNS label ("system:serviceaccount:ci:bot"
// becomes "system-serviceaccount-ci-bot"), and when that Secret does not
// exist, "default". So an operator hands out per-person certificates by
// creating one Secret per person and granting each person get on theirs,
// or one shared qonnect-user-default; RBAC on the Secret and on
// pods/portforward decides who may use qonnect at all.
package plugin

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/go-logr/logr"

	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/plugin/install"
)

// Env is what the commands take from the world besides their flags.
// Tests and the end-to-end run replace parts of it.
type Env struct {
	// Getenv reads the QONNECT_* variables.
	Getenv func(string) string
	// Now is the clock for ages.
	Now func() time.Time
	// Connector, when set, is used instead of the one the flags describe.
	Connector Connector
	// Interrupt returns a context cancelled on Ctrl-C, for the commands
	// that block (watch, wait, tui).
	Interrupt func(context.Context) (context.Context, context.CancelFunc)
}

// DefaultEnv is the real world: the process environment, the wall clock,
// and SIGINT.
func DefaultEnv() Env {
	return Env{
		Getenv: os.Getenv,
		Now:    time.Now,
		Interrupt: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return signal.NotifyContext(ctx, os.Interrupt)
		},
	}
}

// RootOptions are the flags every command shares: how to reach the leads.
type RootOptions struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	Leads    []string
	LeadCA   string
	LeadCert string
	LeadKey  string
	LeadUser string
	// Timeout bounds one call to a lead (not a watch).
	Timeout time.Duration

	Env Env

	namespaceSet func() bool
}

// NewRootOptions returns the shared options with their defaults.
func NewRootOptions(streams genericiooptions.IOStreams, env Env) *RootOptions {
	d := DefaultEnv()
	if env.Getenv == nil {
		env.Getenv = d.Getenv
	}
	if env.Now == nil {
		env.Now = d.Now
	}
	if env.Interrupt == nil {
		env.Interrupt = d.Interrupt
	}
	return &RootOptions{
		IOStreams:   streams,
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		Timeout:     10 * time.Second,
		Env:         env,
	}
}

// AddFlags binds the shared flags.
func (o *RootOptions) AddFlags(fs *pflag.FlagSet) {
	o.ConfigFlags.AddFlags(fs)
	fs.StringSliceVar(&o.Leads, "lead", o.Leads, "Lead API address (https://HOST:PORT); repeat or comma-separate for several. Default: $"+EnvLead+", else through the kube context.")
	fs.StringVar(&o.LeadCA, "lead-ca", o.LeadCA, "CA certificate of the lead group (default $"+EnvLeadCA+").")
	fs.StringVar(&o.LeadCert, "lead-cert", o.LeadCert, "Your qonnect user certificate (default $"+EnvLeadCert+").")
	fs.StringVar(&o.LeadKey, "lead-key", o.LeadKey, "The key of --lead-cert (default $"+EnvLeadKey+").")
	fs.StringVar(&o.LeadUser, "lead-user", o.LeadUser, "Through the kube context: use the certificate in Secret qonnect-user-NAME (default $"+EnvLeadUser+", else your kube user name, else default).")
	fs.DurationVar(&o.Timeout, "lead-timeout", o.Timeout, "Time limit of one call to a lead.")
	o.namespaceSet = func() bool {
		f := fs.Lookup("namespace")
		return f != nil && f.Changed
	}
}

// Connector returns how to reach the leads, from the flags, then the
// environment, then the kube context.
func (o *RootOptions) Connector() (Connector, error) {
	if o.Env.Connector != nil {
		return o.Env.Connector, nil
	}
	leads := o.Leads
	if len(leads) == 0 {
		leads = splitList(o.Env.Getenv(EnvLead))
	}
	if len(leads) > 0 {
		files := pki.Files{
			CA:   firstSet(o.LeadCA, o.Env.Getenv(EnvLeadCA)),
			Cert: firstSet(o.LeadCert, o.Env.Getenv(EnvLeadCert)),
			Key:  firstSet(o.LeadKey, o.Env.Getenv(EnvLeadKey)),
		}
		if err := validateDirect(leads, files); err != nil {
			return nil, err
		}
		return DirectConnector{Addresses: leads, TLS: files, Timeout: o.Timeout}, nil
	}
	return o.kubeConnector()
}

// kubeConnector is built lazily: a command given --lead never needs a
// kubeconfig.
func (o *RootOptions) kubeConnector() (Connector, error) {
	ns := DefaultLeadNamespace
	if o.namespaceSet != nil && o.namespaceSet() && o.ConfigFlags.Namespace != nil && *o.ConfigFlags.Namespace != "" {
		ns = *o.ConfigFlags.Namespace
	}
	user := firstSet(o.LeadUser, o.Env.Getenv(EnvLeadUser))
	return ConnectorFunc(func(ctx context.Context) (*Session, error) {
		noContext := &userError{msg: "no lead given (--lead or " + EnvLead + ") and no kube context to reach one"}
		// Without any kubeconfig, client-go would quietly try
		// localhost:8080; say what is missing instead.
		if raw, err := o.ConfigFlags.ToRawKubeConfigLoader().RawConfig(); err == nil && raw.CurrentContext == "" &&
			flagEmpty(o.ConfigFlags.Context) && flagEmpty(o.ConfigFlags.APIServer) {
			return nil, noContext
		}
		cfg, err := o.ConfigFlags.ToRESTConfig()
		if err != nil {
			noContext.msg += ": " + oneLine(err)
			noContext.cause = err
			return nil, noContext
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		k := &KubeConnector{
			Client:    cs,
			Forwarder: &SPDYForwarder{Config: cfg, Client: cs, Logger: logr.Discard()},
			Namespace: ns,
			User:      user,
			Timeout:   o.Timeout,
		}
		return k.Connect(ctx)
	}), nil
}

func flagEmpty(p *string) bool { return p == nil || *p == "" }

func firstSet(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// command is the life of every subcommand's options.
type command interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// runE runs Complete, Validate and Run, and makes any error one line.
func runE(c command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := c.Complete(cmd, args); err != nil {
			return toUserError(err)
		}
		if err := c.Validate(); err != nil {
			return toUserError(err)
		}
		return toUserError(c.Run(cmd.Context()))
	}
}

// NewCmdRoot returns the kubectl-qonnect command.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	return NewCmdRootWithEnv(streams, DefaultEnv())
}

// NewCmdRootWithEnv is NewCmdRoot with parts of the world replaced.
func NewCmdRootWithEnv(streams genericiooptions.IOStreams, env Env) *cobra.Command {
	o := NewRootOptions(streams, env)
	cmd := &cobra.Command{
		Use:   "kubectl-qonnect",
		Short: "Place applications on a fleet of clusters by energy, cost and performance",
		Long: `kubectl qonnect applies qonnect applications and shows where their components run and why.

It reaches the lead group directly (--lead, or QONNECT_LEAD) or through the current kube context
(a port-forward to a lead pod, with your user certificate from a Secret in qonnect-system).`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl qonnect",
		},
		SilenceUsage: true,
		// Suggestions would add lines to the one-line error.
		DisableSuggestions: true,
		// With Args set, cobra leaves an unknown command to RunE instead of
		// printing its own two-line message.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &userError{msg: fmt.Sprintf("unknown command %q for %q (see kubectl qonnect --help)", args[0], "kubectl qonnect")}
			}
			return cmd.Help()
		},
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SetErrPrefix("error:")
	o.AddFlags(cmd.PersistentFlags())

	cmd.AddCommand(
		NewCmdApply(o),
		NewCmdGet(o),
		NewCmdDescribe(o),
		NewCmdExplain(o),
		NewCmdDelete(o),
		NewCmdStatus(o),
		NewCmdLeads(o),
		NewCmdTUI(o),
		NewCmdVersion(o),
		NewCmdCompletion(o),
	)
	cmd.AddCommand(install.NewCmdInstall(streams), install.NewCmdUninstall(streams))
	return cmd
}
