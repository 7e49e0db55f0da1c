package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/pki"
)

// Version is the agent's version, set at build time.
var Version = "dev"

// Options are the command line of qonnect-agent.
type Options struct {
	Cluster  string
	Tier     string
	Role     string
	Endpoint string
	Leads    string

	TLSCA, TLSCert, TLSKey string
	InsecureDevPlaintext   bool

	Kubeconfig string
	Context    string
	KubeQPS    float64
	KubeBurst  int

	HeartbeatInterval time.Duration
	Resync            time.Duration
	Wait              time.Duration

	AllowClusterScoped string

	MetricsAddr string

	LeaderElect bool
	Namespace   string
	LeaseName   string

	LogLevel  string
	LogFormat string
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		Role:              string(fleet.RoleMember),
		KubeQPS:           50,
		KubeBurst:         100,
		HeartbeatInterval: 2 * time.Second,
		Resync:            time.Minute,
		Wait:              30 * time.Second,
		LeaderElect:       true,
		LeaseName:         "qonnect-agent",
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// AddFlags binds the flags to the options.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Cluster, "cluster", o.Cluster, "name of this cluster (must match the CN of --tls-cert)")
	fs.StringVar(&o.Tier, "tier", o.Tier, "tier of this cluster: cloud, fog or edge")
	fs.StringVar(&o.Role, "role", o.Role, "lead if this cluster hosts a lead, else member")
	fs.StringVar(&o.Endpoint, "endpoint", o.Endpoint, "address other components use to reach what runs here (ingress or load balancer)")
	fs.StringVar(&o.Leads, "leads", o.Leads, "comma-separated lead API addresses (host:port or https://host:port); more are learned from the leads")
	fs.StringVar(&o.TLSCA, "tls-ca", o.TLSCA, "federation CA certificate file")
	fs.StringVar(&o.TLSCert, "tls-cert", o.TLSCert, "this agent's certificate file")
	fs.StringVar(&o.TLSKey, "tls-key", o.TLSKey, "this agent's key file")
	fs.BoolVar(&o.InsecureDevPlaintext, "insecure-dev-plaintext", o.InsecureDevPlaintext, "talk to leads over plain HTTP without TLS (development only)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster, to run outside it (default: in-cluster)")
	fs.StringVar(&o.Context, "context", o.Context, "kubeconfig context to use")
	fs.Float64Var(&o.KubeQPS, "kube-qps", o.KubeQPS, "queries per second to the cluster's API server")
	fs.IntVar(&o.KubeBurst, "kube-burst", o.KubeBurst, "burst of queries to the cluster's API server")
	fs.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", o.HeartbeatInterval, "how often to report status (a lead may ask for another interval)")
	fs.DurationVar(&o.Resync, "resync", o.Resync, "how often to send every fact and re-apply every assignment")
	fs.DurationVar(&o.Wait, "long-poll-wait", o.Wait, "how long one assignments long-poll waits at a lead")
	fs.StringVar(&o.AllowClusterScoped, "allow-cluster-scoped", o.AllowClusterScoped, "comma-separated cluster-scoped kinds (Kind or Kind.group, * for all) components may carry")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", o.MetricsAddr, "address to serve /metrics and /healthz on (empty: do not serve)")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "with several replicas, let one act (Lease election)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace of the election Lease (default: the pod's, else default)")
	fs.StringVar(&o.LeaseName, "lease-name", o.LeaseName, "name of the election Lease")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", o.LogFormat, "text or json")
}

// Validate checks the options before anything starts.
func (o *Options) Validate() error {
	switch {
	case o.Cluster == "":
		return errors.New("--cluster is required")
	case o.Leads == "":
		return errors.New("--leads is required")
	case o.Role != string(fleet.RoleLead) && o.Role != string(fleet.RoleMember):
		return fmt.Errorf("--role %q: want lead or member", o.Role)
	case o.HeartbeatInterval <= 0 || o.Resync <= 0 || o.Wait <= 0:
		return errors.New("--heartbeat-interval, --resync and --long-poll-wait must be positive")
	}
	if _, err := fleet.ParseTier(o.Tier); err != nil {
		return fmt.Errorf("--tier: %w", err)
	}
	tlsGiven := o.TLSCA != "" || o.TLSCert != "" || o.TLSKey != ""
	switch {
	case o.InsecureDevPlaintext && tlsGiven:
		return errors.New("--insecure-dev-plaintext and --tls-* exclude each other")
	case !o.InsecureDevPlaintext && (o.TLSCA == "" || o.TLSCert == "" || o.TLSKey == ""):
		return errors.New("--tls-ca, --tls-cert and --tls-key are required (or --insecure-dev-plaintext for development)")
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// Logger builds the logger the options ask for, writing to w.
func (o *Options) Logger(w io.Writer) *slog.Logger {
	lvl, _ := parseLevel(o.LogLevel)
	ho := &slog.HandlerOptions{Level: lvl}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// restConfig is the cluster's: from --kubeconfig/--context when given,
// else in-cluster, else the usual kubeconfig (KUBECONFIG, ~/.kube/config).
func (o *Options) restConfig() (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if o.Kubeconfig == "" && o.Context == "" {
		cfg, err = rest.InClusterConfig()
	}
	if cfg == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = o.Kubeconfig
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context})
		var kerr error
		if cfg, kerr = cc.ClientConfig(); kerr != nil {
			if err != nil {
				return nil, fmt.Errorf("not running in a cluster (%v) and no usable kubeconfig: %w", err, kerr)
			}
			return nil, fmt.Errorf("kubeconfig: %w", kerr)
		}
	}
	cfg.QPS, cfg.Burst = float32(o.KubeQPS), o.KubeBurst
	cfg.UserAgent = "qonnect-agent/" + Version
	return cfg, nil
}

// leaseNamespace is where the election Lease lives.
func (o *Options) leaseNamespace() string {
	if o.Namespace != "" {
		return o.Namespace
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if data, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(data) > 0 {
		return strings.TrimSpace(string(data))
	}
	return corev1.NamespaceDefault
}

// Run builds the agent from the options and runs it until ctx ends.
func (o *Options) Run(ctx context.Context, log *slog.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	// client-go logs through klog; send it where everything else goes.
	klog.SetSlogLogger(log.With("source", "client-go"))

	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)

	tc, err := o.tlsConfig()
	if err != nil {
		return err
	}
	addrs := splitList(o.Leads)
	lead, err := leadclient.New(leadclient.Config{
		Addresses: addrs,
		TLS:       tc,
		Timeout:   5 * time.Second,
		Transport: leadTransport(tc),
	})
	if err != nil {
		return fmt.Errorf("lead client: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := NewMetrics(reg)

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "qonnect-agent", Host: o.Cluster})

	a, err := New(Config{
		Cluster: fleet.Cluster{
			Name:     o.Cluster,
			Tier:     fleet.Tier(o.Tier),
			Role:     fleet.Role(o.Role),
			Endpoint: o.Endpoint,
		},
		Seeds:              addrs,
		HeartbeatInterval:  o.HeartbeatInterval,
		Resync:             o.Resync,
		Wait:               o.Wait,
		AllowClusterScoped: splitList(o.AllowClusterScoped),
		Version:            Version,
	}, Deps{
		Lead: lead, Kube: kube, Dynamic: dyn, Mapper: mapper, Discovery: cached,
		Recorder: recorder, Metrics: metrics, Logger: log,
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	if o.MetricsAddr != "" {
		ln, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		log.Info("serving metrics", "addr", ln.Addr().String())
		srv := metricsServer(reg)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	g.Go(func() error {
		defer cancel() // the agent stopped: stop serving metrics too
		if !o.LeaderElect {
			metrics.Leader.Set(1)
			return a.Run(ctx)
		}
		host, _ := os.Hostname()
		return RunElected(ctx, kube, Election{
			Namespace: o.leaseNamespace(),
			Name:      o.LeaseName,
			Identity:  host + "_" + randomSuffix(),
		}, log, metrics, a.Run)
	})
	return g.Wait()
}

// tlsConfig is mutual TLS with the leads, nil with --insecure-dev-plaintext.
func (o *Options) tlsConfig() (*tls.Config, error) {
	if o.InsecureDevPlaintext {
		return nil, nil
	}
	tc, err := pki.ClientConfig(pki.Files{CA: o.TLSCA, Cert: o.TLSCert, Key: o.TLSKey})
	if err != nil {
		return nil, fmt.Errorf("lead TLS: %w", err)
	}
	return tc, nil
}

// leadTransport is the HTTP transport to the leads. Beyond the lead
// client's default it pings idle HTTP/2 connections: a long-poll held on a
// lead that vanished without closing its connections (a cut network, a
// frozen host) is noticed in seconds, not when the poll times out.
func leadTransport(tc *tls.Config) http.RoundTripper {
	return &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 5 * time.Second,
			PingTimeout:     3 * time.Second,
		},
	}
}

// metricsServer serves /metrics, and /healthz for liveness probes.
func metricsServer(reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
