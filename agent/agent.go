// Package agent is qonnect-agent: it runs in (or next to) one cluster,
// registers it with the leads, reports its nodes and the health of what it
// runs, waits on a long-poll for the components the leads assign to the
// cluster, applies them with server-side apply and removes what is no
// longer assigned.
//
// Two rules shape the code. The agent never touches an object it did not
// create: it applies only what an assignment lists and removes only
// objects that carry its labels and its field manager. And it removes
// nothing unless a lead has just said so: losing every lead keeps every
// workload as it is.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
)

// Lead is what the agent needs of the lead group; *leadclient.Client is one.
type Lead interface {
	Register(ctx context.Context, req apiv1.RegisterRequest) (*apiv1.RegisterResponse, error)
	ReportNodes(ctx context.Context, cluster string, r apiv1.NodeReport) (*apiv1.Ack, error)
	ReportStatus(ctx context.Context, cluster string, r apiv1.StatusReport) (*apiv1.Ack, error)
	Assignments(ctx context.Context, cluster string, index uint64, wait time.Duration) (*apiv1.Assignments, error)
	// SetAddresses replaces the lead addresses tried.
	SetAddresses(addrs []string)
}

// Config is what the agent does; zero durations take the defaults.
type Config struct {
	// Cluster is announced at registration: name, tier, role, endpoint.
	Cluster fleet.Cluster
	// Seeds are the lead addresses the agent started with. They stay at the
	// end of the list learned from the leads, so a lead group that lost
	// every member it advertised can still be found where it started.
	Seeds []string
	// HeartbeatInterval is how often the agent reports status (an empty
	// report when nothing changed). A lead that suggests an interval at
	// registration wins. Default 2s.
	HeartbeatInterval time.Duration
	// Resync is how often everything is sent and applied again even if
	// nothing seems to have changed: a full node report, every component's
	// status, every assignment re-applied (repairing hand edits). Default 1m.
	Resync time.Duration
	// Debounce groups node changes into one report. Default 500ms.
	Debounce time.Duration
	// Wait is how long one assignments long-poll waits. Default 30s.
	Wait time.Duration
	// AllowClusterScoped lists the cluster-scoped kinds ("Kind" for the
	// core group, "Kind.group" otherwise, "*" for all) components may
	// carry. By default none: an application lives in its namespace.
	AllowClusterScoped []string
	// Version is reported at registration.
	Version string
}

func (c *Config) defaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 2 * time.Second
	}
	if c.Resync <= 0 {
		c.Resync = time.Minute
	}
	if c.Debounce <= 0 {
		c.Debounce = 500 * time.Millisecond
	}
	if c.Wait <= 0 {
		c.Wait = 30 * time.Second
	}
}

// Deps are the clients the agent works through; tests give fakes.
type Deps struct {
	Lead    Lead
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Mapper maps kinds to resources; it is reset when an assignment names
	// a kind it does not know, so CRDs created later are found.
	Mapper meta.ResettableRESTMapper
	// Discovery lists the resource types to look for qonnect's objects in
	// when removing. Nil: removal looks only at types the agent applied.
	Discovery discovery.DiscoveryInterface
	// Recorder records Events on applied objects; nil records none.
	Recorder record.EventRecorder
	// Metrics; nil registers nowhere.
	Metrics *Metrics
	Logger  *slog.Logger
}

// Agent is one cluster's agent. Build it with New, then Run it.
type Agent struct {
	cfg      Config
	lead     Lead
	kube     kubernetes.Interface
	dyn      dynamic.Interface
	mapper   meta.ResettableRESTMapper
	disco    discovery.DiscoveryInterface
	recorder record.EventRecorder
	metrics  *Metrics
	log      *slog.Logger

	heartbeat time.Duration // the lead may change it at registration; guarded by mu

	watch   *watcher
	sess    *session
	leadUp  signal // fired when a lead answers after none did
	nodes   *nodeReporter
	statusQ chan struct{} // something a status depends on changed

	mu         sync.Mutex
	leadDown   bool // the last call found no lead
	components map[compKey]*compState
	// pruneTypes are the resource types that may hold qonnect's objects:
	// those found at the first scan and those applied since.
	pruneTypes map[schema.GroupVersionResource]bool
	scanned    bool      // every type was looked through once
	lastScan   time.Time // when they last were
	// mapperReset is when the RESTMapper last forgot what it knew.
	mapperReset time.Time

	pending chan *apiv1.Assignments // latest assignments, for the reconciler
}

// New checks the configuration and builds an agent.
func New(cfg Config, d Deps) (*Agent, error) {
	cfg.defaults()
	if cfg.Cluster.Name == "" {
		return nil, errors.New("agent: cluster name is empty")
	}
	if _, err := fleet.ParseTier(string(cfg.Cluster.Tier)); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if d.Lead == nil || d.Kube == nil || d.Dynamic == nil || d.Mapper == nil {
		return nil, errors.New("agent: lead, kube, dynamic and mapper clients are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	if d.Recorder == nil {
		d.Recorder = &record.FakeRecorder{} // a nil channel: drops every event
	}
	a := &Agent{
		cfg:        cfg,
		lead:       d.Lead,
		kube:       d.Kube,
		dyn:        d.Dynamic,
		mapper:     d.Mapper,
		disco:      d.Discovery,
		recorder:   d.Recorder,
		metrics:    d.Metrics,
		log:        d.Logger.With("cluster", cfg.Cluster.Name),
		heartbeat:  cfg.HeartbeatInterval,
		statusQ:    make(chan struct{}, 1),
		components: map[compKey]*compState{},
		pruneTypes: map[schema.GroupVersionResource]bool{},
		pending:    make(chan *apiv1.Assignments, 1),
	}
	a.sess = newSession()
	a.watch = newWatcher(d.Kube, a.log, a.kickStatus)
	a.nodes = newNodeReporter(a)
	return a, nil
}

// Run runs the agent until ctx ends. It returns nil then, or the error
// that stopped it (only the cluster's informers failing to sync does).
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("agent starting", "tier", a.cfg.Cluster.Tier, "role", a.cfg.Cluster.Role, "endpoint", a.cfg.Cluster.Endpoint)
	stopWatch, err := a.watch.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	defer stopWatch()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.registerLoop(ctx) })
	g.Go(func() error { return a.nodes.run(ctx) })
	g.Go(func() error { return a.statusLoop(ctx) })
	g.Go(func() error { return a.assignmentLoop(ctx) })
	g.Go(func() error { return a.reconcileLoop(ctx) })
	err = g.Wait()
	a.log.Info("agent stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// kickStatus asks the status loop to report soon: something a component's
// health depends on changed.
func (a *Agent) kickStatus() {
	select {
	case a.statusQ <- struct{}{}:
	default:
	}
}

func (a *Agent) heartbeatInterval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.heartbeat
}

// learnLeads adopts the lead group's addresses, keeping the seeds last.
func (a *Agent) learnLeads(leads []string) {
	if len(leads) == 0 {
		return
	}
	all := slices.Clone(leads)
	for _, s := range a.cfg.Seeds {
		if !slices.Contains(all, s) {
			all = append(all, s)
		}
	}
	a.lead.SetAddresses(all)
}

// allowClusterScoped says whether a component may carry a cluster-scoped
// object of this kind.
func (a *Agent) allowClusterScoped(gk schema.GroupKind) bool {
	for _, k := range a.cfg.AllowClusterScoped {
		if k == "*" || strings.EqualFold(k, gk.String()) {
			return true
		}
	}
	return false
}

// signal wakes every waiter once each time it fires.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C is closed at the next Fire.
func (s *signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Fire wakes everyone waiting on C.
func (s *signal) Fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
}
