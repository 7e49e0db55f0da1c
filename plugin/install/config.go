package install

import (
	"errors"
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	kustypes "sigs.k8s.io/kustomize/api/types"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/manifests"
)

// Names of what install puts in a cluster. The bases fix the names of the
// Deployments, Services and RBAC objects; these are the ones install adds.
const (
	DefaultNamespace = "qonnect-system"
	// CASecret holds the federation CA (ca.crt, ca.key) in the cluster of
	// the first lead; nothing else ever holds its key.
	CASecret = "qonnect-ca"
	// LeadTLSSecret and AgentTLSSecret are the mounted identities, with
	// keys ca.crt, tls.crt, tls.key.
	LeadTLSSecret  = "qonnect-lead-tls"
	AgentTLSSecret = "qonnect-agent-tls"
	// UserSecretPrefix + NAME holds a user certificate, as the plugin reads
	// it through a kube context.
	UserSecretPrefix = "qonnect-user-"
	// LeadConfigMap and AgentConfigMap are the bases' generated settings
	// (their real names carry a content hash).
	LeadConfigMap  = "qonnect-lead-config"
	AgentConfigMap = "qonnect-agent-config"
	LeadName       = "qonnect-lead"
	AgentName      = "qonnect-agent"

	// Ports of the lead's Service, as in manifests/lead.
	RaftPort = 7000
	APIPort  = 7443
)

// Labels install puts on everything it makes, so uninstall finds exactly
// that and nothing else.
const (
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelComponent = "app.kubernetes.io/component"
	PartOf         = "qonnect"
)

// Image says where the lead's and the agent's images come from: Registry
// "" keeps the bare names (qonnect-lead:TAG), for images loaded straight
// into a cluster's nodes; otherwise REGISTRY/qonnect-lead:TAG.
type Image struct {
	Registry string
	Tag      string
}

func (im Image) kustomize(name string) kustypes.Image {
	out := kustypes.Image{Name: name, NewTag: im.Tag}
	if im.Registry != "" {
		out.NewName = strings.TrimSuffix(im.Registry, "/") + "/" + name
	}
	return out
}

// Peer is one lead of the Raft group: its ID, the address the other leads
// reach its Raft port at and the address of its API.
type Peer struct {
	ID   string
	Raft string
	API  string
}

func (p Peer) String() string { return p.ID + "=" + p.Raft + "=" + p.API }

// ParsePeers reads "id=raft=api,..." as qonnect-lead's --peers takes it.
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, "=")
		if len(parts) != 3 {
			return nil, fmt.Errorf("--peers: %q: want ID=RAFT_HOST:PORT=API_HOST:PORT", item)
		}
		p := Peer{ID: parts[0], Raft: parts[1], API: strings.TrimPrefix(parts[2], "https://")}
		if err := validID(p.ID); err != nil {
			return nil, fmt.Errorf("--peers: %q: %w", item, err)
		}
		for _, a := range []string{p.Raft, p.API} {
			if err := validHostPort(a); err != nil {
				return nil, fmt.Errorf("--peers: %q: %w", item, err)
			}
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("--peers: lead %q is listed twice", p.ID)
		}
		seen[p.ID] = true
		out = append(out, p)
	}
	return out, nil
}

func validID(id string) error {
	if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
		return fmt.Errorf("lead ID %q: %s", id, strings.Join(errs, "; "))
	}
	return nil
}

func validHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("address %q: want HOST:PORT", a)
	}
	return nil
}

// LeadConfig is one lead's installation.
type LeadConfig struct {
	ID string
	// Peers is the whole Raft group, this lead included. Empty means a
	// group of one, reached at its Service's in-cluster name.
	Peers       []Peer
	Namespace   string
	Image       Image
	ServiceType corev1.ServiceType
	// StorageSize and StorageClass are the data volume's ("" keeps 1Gi and
	// the cluster's default class).
	StorageSize  string
	StorageClass string
	// Hosts are more names and addresses the lead's certificate answers for.
	Hosts []string
	// Users get a certificate each, in Secret qonnect-user-NAME.
	Users []string
}

func (c *LeadConfig) defaults() {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.ServiceType == "" {
		c.ServiceType = corev1.ServiceTypeClusterIP
	}
	if len(c.Peers) == 0 && c.ID != "" {
		svc := fmt.Sprintf("%s.%s.svc", LeadName, c.Namespace)
		c.Peers = []Peer{{ID: c.ID, Raft: net.JoinHostPort(svc, fmt.Sprint(RaftPort)), API: net.JoinHostPort(svc, fmt.Sprint(APIPort))}}
	}
}

// Validate checks the configuration before anything is rendered.
func (c *LeadConfig) Validate() error {
	c.defaults()
	if c.ID == "" {
		return errors.New("--id is required")
	}
	if err := validID(c.ID); err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	if c.Self() == nil {
		var ids []string
		for _, p := range c.Peers {
			ids = append(ids, p.ID)
		}
		return fmt.Errorf("--peers must list this lead (%s) too; it lists %s", c.ID, strings.Join(ids, ", "))
	}
	switch c.ServiceType {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		return fmt.Errorf("--service-type %q: want ClusterIP, NodePort or LoadBalancer", c.ServiceType)
	}
	if c.StorageSize != "" {
		if _, err := resource.ParseQuantity(c.StorageSize); err != nil {
			return fmt.Errorf("--storage-size %q: %w", c.StorageSize, err)
		}
	}
	if c.StorageClass != "" {
		if errs := validation.IsDNS1123Subdomain(c.StorageClass); len(errs) > 0 {
			return fmt.Errorf("--storage-class %q: %s", c.StorageClass, strings.Join(errs, "; "))
		}
	}
	for _, u := range c.Users {
		if errs := validation.IsDNS1123Label(UserSecretPrefix + u); len(errs) > 0 {
			return fmt.Errorf("--users %q: the Secret name %s%s is not valid: %s", u, UserSecretPrefix, u, strings.Join(errs, "; "))
		}
	}
	return validNamespace(c.Namespace)
}

// Self is this lead's entry in Peers.
func (c *LeadConfig) Self() *Peer {
	for i := range c.Peers {
		if c.Peers[i].ID == c.ID {
			return &c.Peers[i]
		}
	}
	return nil
}

// First says whether this lead is the first of Peers: the one whose install
// creates the federation CA.
func (c *LeadConfig) First() bool { return len(c.Peers) > 0 && c.Peers[0].ID == c.ID }

// CertHosts are the names the lead's certificate answers for: where its
// peers and agents reach it (its --peers entry), its Service's names in
// its own cluster, loopback, and the extra --host values.
func (c *LeadConfig) CertHosts() []string {
	var hosts []string
	add := func(h string) {
		for _, x := range hosts {
			if x == h {
				return
			}
		}
		hosts = append(hosts, h)
	}
	if s := c.Self(); s != nil {
		for _, a := range []string{s.Raft, s.API} {
			if h, _, err := net.SplitHostPort(a); err == nil {
				add(h)
			}
		}
	}
	for _, h := range []string{
		LeadName, LeadName + "." + c.Namespace, LeadName + "." + c.Namespace + ".svc",
		LeadName + "." + c.Namespace + ".svc.cluster.local", "localhost", "127.0.0.1",
	} {
		add(h)
	}
	for _, h := range c.Hosts {
		add(h)
	}
	return hosts
}

// Overlay is the kustomization that installs this lead.
func (c *LeadConfig) Overlay() Overlay {
	c.defaults()
	peers := make([]string, len(c.Peers))
	for i, p := range c.Peers {
		peers[i] = p.String()
	}
	var self Peer
	if s := c.Self(); s != nil {
		self = *s
	}
	o := Overlay{
		Bases:     []string{manifests.Namespace, manifests.Lead},
		Namespace: c.Namespace,
		ConfigMaps: map[string][]string{LeadConfigMap: {
			"id=" + c.ID,
			"peers=" + strings.Join(peers, ","),
			"raft-advertise=" + self.Raft,
			"api-advertise=" + self.API,
		}},
		Images: []kustypes.Image{c.Image.kustomize(LeadName)},
	}
	if c.ServiceType != corev1.ServiceTypeClusterIP {
		o.Patches = append(o.Patches, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  type: %s\n", LeadName, c.ServiceType))
	}
	if c.StorageSize != "" || c.StorageClass != "" {
		p := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: qonnect-lead-data\nspec:\n"
		if c.StorageClass != "" {
			p += "  storageClassName: " + c.StorageClass + "\n"
		}
		if c.StorageSize != "" {
			p += "  resources:\n    requests:\n      storage: " + c.StorageSize + "\n"
		}
		o.Patches = append(o.Patches, p)
	}
	return o
}

// AgentConfig is one cluster's agent installation.
type AgentConfig struct {
	Cluster  string
	Tier     string
	Role     string
	Endpoint string
	Leads    []string
	// Namespace is where the agent runs ("" is qonnect-system).
	Namespace string
	Image     Image
	// Guard adds the admission policy that keeps the agent's writes in
	// qonnect's namespaces (manifests/agent-guard).
	Guard bool
}

// Validate checks the configuration before anything is rendered.
func (c *AgentConfig) Validate() error {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Role == "" {
		c.Role = string(fleet.RoleMember)
	}
	switch {
	case c.Cluster == "":
		return errors.New("--cluster is required")
	case c.Tier == "":
		return errors.New("--tier is required (cloud, fog or edge)")
	case len(c.Leads) == 0:
		return errors.New("--leads is required: the lead API addresses this agent starts from (HOST:PORT,...)")
	}
	// The cluster name is the agent certificate's name and the name the
	// leads know the cluster by.
	if errs := validation.IsDNS1123Label(c.Cluster); len(errs) > 0 {
		return fmt.Errorf("--cluster %q: %s", c.Cluster, strings.Join(errs, "; "))
	}
	if _, err := fleet.ParseTier(c.Tier); err != nil {
		return fmt.Errorf("--tier: %w", err)
	}
	if c.Role != string(fleet.RoleLead) && c.Role != string(fleet.RoleMember) {
		return fmt.Errorf("--role %q: want lead or member", c.Role)
	}
	for _, l := range c.Leads {
		if err := validHostPort(strings.TrimPrefix(l, "https://")); err != nil {
			return fmt.Errorf("--leads: %w", err)
		}
	}
	if strings.ContainsAny(c.Endpoint, " \t\n,") {
		return fmt.Errorf("--endpoint %q: an address, without spaces or commas", c.Endpoint)
	}
	return validNamespace(c.Namespace)
}

// Overlay is the kustomization that installs this agent.
func (c *AgentConfig) Overlay() Overlay {
	bases := []string{manifests.Namespace, manifests.Agent}
	if c.Guard {
		bases = append(bases, manifests.AgentGuard)
	}
	return Overlay{
		Bases:     bases,
		Namespace: c.Namespace,
		ConfigMaps: map[string][]string{AgentConfigMap: {
			"cluster=" + c.Cluster,
			"tier=" + c.Tier,
			"role=" + c.Role,
			"endpoint=" + c.Endpoint,
			"leads=" + strings.Join(c.Leads, ","),
		}},
		Images: []kustypes.Image{c.Image.kustomize(AgentName)},
	}
}

func validNamespace(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}
