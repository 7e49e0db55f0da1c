package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"qonnect.io/qonnect/internal/fleet"
)

// ErrAlreadyUp is returned by Up for a folder that holds a running sandbox.
var ErrAlreadyUp = errors.New("a sandbox is already up in this folder")

// ErrUnknownCluster and ErrUnknownLead name what a fault command could not find.
var (
	ErrUnknownCluster = errors.New("no such cluster in this sandbox")
	ErrUnknownLead    = errors.New("no such lead in this sandbox")
)

// stateFile is where a sandbox records what it started, so that later
// commands (status, fault, down) act on exactly that.
const stateFile = "sandbox.json"

// Options control Up.
type Options struct {
	// Dir holds everything the sandbox writes: state, kubeconfigs, logs,
	// lead data, certificates, the env file.
	Dir string
	// TestbedBin holds the Kubernetes binaries; empty means TestbedBin().
	TestbedBin string
	// QonnectBin holds qonnect-lead and qonnect-agent. When empty or when
	// they are missing there, only the clusters are started.
	QonnectBin string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// Parallel is how many clusters start at once (default 2).
	Parallel int
	// LeadArgs and AgentArgs are extra flags for every lead / agent.
	LeadArgs, AgentArgs []string
}

// State is what a sandbox records about itself.
type State struct {
	ID         string          `json:"id"`
	Dir        string          `json:"dir"`
	Profile    Profile         `json:"profile"`
	TestbedBin string          `json:"testbedBin"`
	QonnectBin string          `json:"qonnectBin,omitempty"`
	Clusters   []*ClusterState `json:"clusters"`
	Leads      []*Process      `json:"leads,omitempty"`
	Agents     []*Process      `json:"agents,omitempty"`
	// Net is the loopback /24 the leads use (127.A.B.0), one per sandbox so
	// that several may run at once.
	Net         string    `json:"net"`
	Partitioned []string  `json:"partitioned,omitempty"`
	LeadArgs    []string  `json:"leadArgs,omitempty"`
	AgentArgs   []string  `json:"agentArgs,omitempty"`
	Created     time.Time `json:"created"`
}

// ClusterState is one cluster of a running sandbox.
type ClusterState struct {
	Name       string       `json:"name"`
	Tier       fleet.Tier   `json:"tier"`
	Role       fleet.Role   `json:"role"`
	KwokName   string       `json:"kwokName"`
	Kubeconfig string       `json:"kubeconfig"`
	Server     string       `json:"server"`
	Ports      ClusterPorts `json:"ports"`
	Stopped    bool         `json:"stopped,omitempty"`
}

// Process is a qonnect process the sandbox started.
type Process struct {
	Kind    string   `json:"kind"` // lead or agent
	ID      string   `json:"id"`   // lead ID or cluster name
	Cluster string   `json:"cluster"`
	Pid     int      `json:"pid"`
	Binary  string   `json:"binary"`
	Args    []string `json:"args"`
	Log     string   `json:"log"`
	// For leads: the loopback address it binds and its two listeners.
	IP       string `json:"ip,omitempty"`
	RaftAddr string `json:"raftAddress,omitempty"`
	APIAddr  string `json:"apiAddress,omitempty"`
	DataDir  string `json:"dataDir,omitempty"`
}

// Federation is a running sandbox.
type Federation struct {
	mu    sync.Mutex
	state State
	log   io.Writer
}

// Up starts a federation for profile in opts.Dir and returns once every
// cluster is ready and every qonnect process is started. On failure it
// tears down what it started.
func Up(ctx context.Context, p *Profile, opts Options) (_ *Federation, err error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if opts.Dir == "" {
		return nil, errors.New("no sandbox folder given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return nil, fmt.Errorf("%w: %s (run down first)", ErrAlreadyUp, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create sandbox folder: %w", err)
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	if opts.TestbedBin == "" {
		if opts.TestbedBin, err = TestbedBin(ctx, progress); err != nil {
			return nil, err
		}
	}
	id := randomID()
	f := &Federation{log: progress, state: State{
		ID: id, Dir: dir, Profile: *p, TestbedBin: opts.TestbedBin, QonnectBin: opts.QonnectBin,
		Net: loopbackNet(), LeadArgs: opts.LeadArgs, AgentArgs: opts.AgentArgs, Created: time.Now().UTC(),
	}}
	for _, c := range p.Clusters {
		role := c.Role
		if role == "" {
			role = fleet.RoleMember
		}
		f.state.Clusters = append(f.state.Clusters, &ClusterState{
			Name: c.Name, Tier: c.Tier, Role: role, KwokName: "q" + id + "-" + c.Name,
			Kubeconfig: filepath.Join(dir, "kubeconfig", c.Name+".yaml"),
		})
	}
	// Record the state before starting anything, so down can clean up after
	// a crash of this very process.
	if err := f.save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.progressf("up failed (%v); tearing down what was started", err)
			_ = f.Down(context.Background())
		}
	}()
	start := time.Now()
	if err := f.startClusters(ctx, opts.Parallel); err != nil {
		return nil, err
	}
	f.progressf("%d clusters ready in %s", len(f.state.Clusters), time.Since(start).Round(100*time.Millisecond))
	if err := f.setupPKI(); err != nil {
		return nil, err
	}
	if f.hasQonnectBinaries() {
		if err := f.startQonnect(ctx); err != nil {
			return nil, err
		}
	} else {
		f.progressf("qonnect-lead/qonnect-agent not found in %q: started the clusters only", opts.QonnectBin)
	}
	if err := f.writeEnv(); err != nil {
		return nil, err
	}
	return f, f.save()
}

// Open loads the sandbox recorded in dir.
func Open(dir string, progress io.Writer) (*Federation, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no sandbox in %s (run up first)", dir)
		}
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	f := &Federation{log: progress}
	if err := json.Unmarshal(data, &f.state); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, stateFile), err)
	}
	return f, nil
}

// Down stops and removes everything the sandbox started, and nothing else:
// qonnect processes by their recorded pid, clusters by their kwokctl name,
// the partition rules, the state file. The folder's logs stay.
func (f *Federation) Down(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	if len(f.state.Partitioned) > 0 {
		if err := healNet(f.state.ID); err != nil {
			errs = append(errs, err)
		}
		f.state.Partitioned = nil
	}
	for _, p := range append(append([]*Process{}, f.state.Agents...), f.state.Leads...) {
		if err := stopProcess(p, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, c := range f.state.Clusters {
		g.Go(func() error {
			if err := f.kwokctl(gctx, "delete", "cluster", "--name", c.KwokName); err != nil {
				return fmt.Errorf("delete cluster %s: %w", c.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := releasePorts(ctx, f.state.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		// Keep the logs for a post-mortem; everything else goes.
		for _, d := range []string{stateFile, "kwok", "kwok-config", "kubeconfig", "pki", "leads", "env"} {
			_ = os.RemoveAll(filepath.Join(f.state.Dir, d))
		}
	}
	return errors.Join(errs...)
}

// State returns a copy of the sandbox's state.
func (f *Federation) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, _ := json.Marshal(f.state)
	var s State
	_ = json.Unmarshal(data, &s)
	return s
}

// Dir is the sandbox's folder.
func (f *Federation) Dir() string { return f.state.Dir }

// Cluster returns the state of the named cluster.
func (f *Federation) Cluster(name string) (*ClusterState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cluster(name)
}

func (f *Federation) cluster(name string) (*ClusterState, error) {
	for _, c := range f.state.Clusters {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownCluster, name)
}

// ClusterNames lists the clusters in profile order.
func (f *Federation) ClusterNames() []string {
	var out []string
	for _, c := range f.state.Clusters {
		out = append(out, c.Name)
	}
	return out
}

// Kubeconfig is the path of the named cluster's kubeconfig.
func (f *Federation) Kubeconfig(name string) string {
	c, err := f.Cluster(name)
	if err != nil {
		return ""
	}
	return c.Kubeconfig
}

// RESTConfig returns a client configuration for the named cluster.
func (f *Federation) RESTConfig(name string) (*rest.Config, error) {
	c, err := f.Cluster(name)
	if err != nil {
		return nil, err
	}
	return restConfigFor(c)
}

func restConfigFor(c *ClusterState) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w", c.Name, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Timeout = 10 * time.Second
	return cfg, nil
}

// clientLocked is Client for a caller that holds f.mu.
func (f *Federation) clientLocked(c *ClusterState) (kubernetes.Interface, error) {
	cfg, err := restConfigFor(c)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// Client returns a clientset for the named cluster.
func (f *Federation) Client(name string) (kubernetes.Interface, error) {
	cfg, err := f.RESTConfig(name)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func (f *Federation) startClusters(ctx context.Context, parallel int) error {
	if parallel <= 0 {
		parallel = 2
	}
	if err := os.MkdirAll(filepath.Join(f.state.Dir, "kubeconfig"), 0o755); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, c := range f.state.Clusters {
		spec := f.state.Profile.Clusters[i]
		g.Go(func() error {
			t0 := time.Now()
			if err := f.createCluster(gctx, c); err != nil {
				return fmt.Errorf("cluster %s: %w", c.Name, err)
			}
			if err := f.createNodes(gctx, c, spec); err != nil {
				return fmt.Errorf("cluster %s: %w", c.Name, err)
			}
			f.progressf("cluster %-14s %-5s ready: %d nodes (%s)", c.Name, c.Tier, countNodes(spec), time.Since(t0).Round(100*time.Millisecond))
			return nil
		})
	}
	return g.Wait()
}

func (f *Federation) createCluster(ctx context.Context, c *ClusterState) error {
	b := f.state.TestbedBin
	// kwokctl picks its ports by probing downwards from a fixed number, so
	// two creations at once (here or in another sandbox) would pick the
	// same ones: creations take a machine-wide lock.
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "qonnect-kwokctl-create.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	ports, err := reservePorts(ctx, f.state.Dir)
	if err != nil {
		return err
	}
	c.Ports = ports
	cfgPath := filepath.Join(f.state.Dir, "kwok-config", c.Name+".yaml")
	if err := writeKwokConfig(cfgPath, ports); err != nil {
		return err
	}
	f.progressf("cluster %-14s starting control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)", c.Name)
	err = f.kwokctl(ctx, "create", "cluster", "--name", c.KwokName, "--runtime", "binary", "--config", cfgPath,
		"--etcd-binary", filepath.Join(b, "etcd"),
		"--kube-apiserver-binary", filepath.Join(b, "kube-apiserver"),
		"--kube-controller-manager-binary", filepath.Join(b, "kube-controller-manager"),
		"--kube-scheduler-binary", filepath.Join(b, "kube-scheduler"),
		"--kwok-controller-binary", filepath.Join(b, "kwok"),
		"--kubeconfig", c.Kubeconfig,
		"--wait", "3m")
	if err != nil {
		return err
	}
	// kwokctl names the context after its own cluster name; a person wants
	// `kubectl --context edge-energy`.
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	renamed := clientcmdapi.NewConfig()
	for _, ctx := range cfg.Contexts {
		cl, ok := cfg.Clusters[ctx.Cluster]
		if !ok {
			continue
		}
		c.Server = cl.Server
		renamed.Clusters[c.Name] = cl
		renamed.AuthInfos[c.Name] = cfg.AuthInfos[ctx.AuthInfo]
		renamed.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name}
		renamed.CurrentContext = c.Name
	}
	if c.Server == "" {
		return fmt.Errorf("kubeconfig %s names no cluster", c.Kubeconfig)
	}
	if err := clientcmd.WriteToFile(*renamed, c.Kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return f.save()
}

// kwokctl runs kwokctl with the sandbox's own work folder, so its clusters
// never mix with anyone else's.
func (f *Federation) kwokctl(ctx context.Context, args ...string) error {
	return runLogged(ctx, f.kwokEnv(), filepath.Join(f.state.Dir, "logs", "kwokctl.log"),
		filepath.Join(f.state.TestbedBin, "kwokctl"), args...)
}

func (f *Federation) kwokEnv() []string {
	return append(os.Environ(), "KWOK_WORKDIR="+filepath.Join(f.state.Dir, "kwok"))
}

func (f *Federation) save() error {
	data, err := json.MarshalIndent(f.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(f.state.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write sandbox state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(f.state.Dir, stateFile))
}

func (f *Federation) progressf(format string, args ...any) {
	fmt.Fprintf(f.log, "sandbox: "+format+"\n", args...)
}

// Reachable reports whether the named cluster's API server accepts connections.
func (f *Federation) Reachable(name string) bool {
	c, err := f.Cluster(name)
	if err != nil {
		return false
	}
	return reachable(c)
}

func reachable(c *ClusterState) bool {
	if c.Server == "" {
		return false
	}
	host := strings.TrimPrefix(strings.TrimPrefix(c.Server, "https://"), "http://")
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func countNodes(c ClusterSpec) int {
	n := 0
	for _, ns := range c.Nodes {
		n += len(ns.names())
	}
	return n
}

func randomID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loopbackNet picks a /24 inside 127.0.0.0/8 for this sandbox's leads.
func loopbackNet() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return fmt.Sprintf("127.%d.%d", 1+int(b[0])%250, 1+int(b[1])%250)
}
