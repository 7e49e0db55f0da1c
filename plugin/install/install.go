package install

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"qonnect.io/qonnect/internal/pki"
)

// DryRun is how much of an install actually happens.
type DryRun string

// The dry-run modes, as kubectl names them.
const (
	DryRunNone   DryRun = "none"
	DryRunClient DryRun = "client" // render only; no cluster is contacted
	DryRunServer DryRun = "server" // the API server checks everything and stores nothing
)

// Installer installs qonnect's parts into one cluster.
type Installer struct {
	// Target is the cluster installed into; nil only for a client dry run.
	Target *Target
	// CA is the cluster holding the federation CA, and CAName the kube
	// context it was reached through (for messages). When CASame, CA is
	// Target's cluster, where the first lead install may create the CA.
	CA     kubernetes.Interface
	CAName string
	CASame bool
	DryRun DryRun
	// Now is the clock certificates are checked against.
	Now func() time.Time
}

// Result is what an install did.
type Result struct {
	Objects []Applied
	// Hidden are Secrets a client dry run does not show: their content is
	// made only by a real install, and is never printed anyway.
	Hidden []string
	// Notes are what the person should know or do next.
	Notes []string
}

func (in *Installer) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

func (in *Installer) applier() *applier {
	return &applier{t: in.Target, dry: in.DryRun == DryRunServer}
}

// Lead installs one lead: the namespace, the lead's objects, its
// certificate and the user certificates, creating the federation CA when
// this is the first lead.
func (in *Installer) Lead(ctx context.Context, cfg LeadConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	objs, err := Render(cfg.Overlay())
	if err != nil {
		return nil, err
	}
	secrets := []string{LeadTLSSecret}
	for _, u := range cfg.Users {
		secrets = append(secrets, UserSecretPrefix+u)
	}
	if in.DryRun == DryRunClient {
		res := clientDryRun(objs, cfg.Namespace, secrets)
		res.Notes = leadNotes(&cfg)
		return res, nil
	}
	res := &Result{}
	a := in.applier()
	if err := in.checkDryRunNamespace(ctx, cfg.Namespace); err != nil {
		return nil, err
	}
	nsObjs, rest := splitNamespace(objs)
	// The namespace first: the CA Secret may have to be created in it.
	ensureNamespace := func() error {
		done, err := a.apply(ctx, nsObjs)
		res.Objects = append(res.Objects, done...)
		nsObjs = nil
		return err
	}
	ca, err := in.leadCA(ctx, &cfg, res, ensureNamespace)
	if err != nil {
		return res, err
	}
	rest = append(nsObjs, rest...)
	now := in.now()
	sec, _, err := certSecret(ctx, in.Target.Kube, cfg.Namespace, LeadTLSSecret, "lead", ca,
		pki.Request{Role: pki.RoleLead, Name: cfg.ID, Hosts: cfg.CertHosts()}, now)
	if err != nil {
		return res, err
	}
	secObjs := []*corev1.Secret{sec}
	for _, u := range cfg.Users {
		sec, _, err := certSecret(ctx, in.Target.Kube, cfg.Namespace, UserSecretPrefix+u, "user", ca,
			pki.Request{Role: pki.RoleUser, Name: u}, now)
		if err != nil {
			return res, err
		}
		secObjs = append(secObjs, sec)
	}
	for _, s := range secObjs {
		u, err := toUnstructured(s)
		if err != nil {
			return res, err
		}
		rest = append(rest, u)
	}
	done, err := a.apply(ctx, rest)
	res.Objects = append(res.Objects, done...)
	if err != nil {
		return res, err
	}
	pruned, err := a.pruneConfigMaps(ctx, cfg.Namespace, "lead", res.Objects)
	res.Objects = append(res.Objects, pruned...)
	res.Notes = append(res.Notes, leadNotes(&cfg)...)
	return res, err
}

// leadNotes are what a person should know about a lead's settings.
func leadNotes(cfg *LeadConfig) []string {
	var notes []string
	if self := cfg.Self(); self != nil && (isIP(self.Raft) || isIP(self.API)) {
		notes = append(notes, fmt.Sprintf("lead %s advertises IP addresses (%s, %s): qonnect-lead binds its outgoing connections to its advertised IP, which inside a pod is usually a load balancer's, not the pod's; prefer DNS names in --peers", cfg.ID, self.Raft, self.API))
	}
	if cfg.ServiceType == corev1.ServiceTypeClusterIP && len(cfg.Peers) > 1 {
		notes = append(notes, "the lead's Service is ClusterIP: leads in other clusters cannot reach it unless your network routes Service addresses between clusters (see --service-type)")
	}
	return notes
}

// leadCA finds the federation CA, or creates it when this is the first
// lead and it is being installed where the CA belongs. Creating a second
// CA by mistake would split the federation, hence the rules.
func (in *Installer) leadCA(ctx context.Context, cfg *LeadConfig, res *Result, ensureNamespace func() error) (*pki.CA, error) {
	ca, err := loadCA(ctx, in.CA, cfg.Namespace)
	if !errors.Is(err, ErrNoCA) {
		return ca, err
	}
	where := fmt.Sprintf("secret %s/%s of context %s", cfg.Namespace, CASecret, in.CAName)
	switch {
	case !in.CASame:
		return nil, fmt.Errorf("%w in %s: install the first lead (%s) there first", ErrNoCA, where, cfg.Peers[0].ID)
	case !cfg.First():
		return nil, fmt.Errorf("%w in %s, and lead %s is not the first of --peers: install %s first, then this lead with --ca-context set to that lead's context",
			ErrNoCA, where, cfg.ID, cfg.Peers[0].ID)
	case in.DryRun == DryRunServer:
		res.Notes = append(res.Notes, "a new federation CA would be created in "+where)
		return pki.NewCA("qonnect federation CA (dry run)", time.Hour)
	}
	if err := ensureNamespace(); err != nil {
		return nil, err
	}
	ca, err = createCA(ctx, in.Target.Kube, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	res.Notes = append(res.Notes, fmt.Sprintf("created the federation CA in %s: install the other leads and the agents with --ca-context %s; whoever can read that Secret can join the federation", where, in.CAName))
	return ca, nil
}

// Agent installs one cluster's agent and issues its certificate, whose
// name is the cluster's.
func (in *Installer) Agent(ctx context.Context, cfg AgentConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res := &Result{}
	if cfg.Guard && in.DryRun != DryRunClient {
		ok, err := servesPolicies(in.Target.Discovery)
		if err != nil {
			return nil, err
		}
		if !ok {
			cfg.Guard = false
			res.Notes = append(res.Notes, "this cluster does not serve ValidatingAdmissionPolicy (Kubernetes 1.30+): the agent is installed without agent-guard, so RBAC alone limits where it writes")
		}
	}
	objs, err := Render(cfg.Overlay())
	if err != nil {
		return nil, err
	}
	if in.DryRun == DryRunClient {
		return clientDryRun(objs, cfg.Namespace, []string{AgentTLSSecret}), nil
	}
	if err := in.checkDryRunNamespace(ctx, cfg.Namespace); err != nil {
		return nil, err
	}
	ca, err := loadCA(ctx, in.CA, cfg.Namespace)
	if errors.Is(err, ErrNoCA) {
		return nil, fmt.Errorf("%w in secret %s/%s of context %s: install the first lead before the agents, and point --ca-context at its cluster",
			ErrNoCA, cfg.Namespace, CASecret, in.CAName)
	}
	if err != nil {
		return nil, err
	}
	sec, _, err := certSecret(ctx, in.Target.Kube, cfg.Namespace, AgentTLSSecret, "agent", ca,
		pki.Request{Role: pki.RoleAgent, Name: cfg.Cluster}, in.now())
	if err != nil {
		return nil, err
	}
	u, err := toUnstructured(sec)
	if err != nil {
		return nil, err
	}
	a := in.applier()
	done, err := a.apply(ctx, append(objs, u))
	res.Objects = append(res.Objects, done...)
	if err != nil {
		return res, err
	}
	pruned, err := a.pruneConfigMaps(ctx, cfg.Namespace, "agent", res.Objects)
	res.Objects = append(res.Objects, pruned...)
	return res, err
}

// checkDryRunNamespace stops a server dry run into a namespace that does
// not exist: the API server would refuse every object in it, for a reason
// that says nothing about the objects.
func (in *Installer) checkDryRunNamespace(ctx context.Context, ns string) error {
	if in.DryRun != DryRunServer {
		return nil
	}
	_, err := in.Target.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("a server dry run needs the namespace %s, which does not exist yet: use --dry-run=client to see what a first install creates", ns)
	}
	if err != nil {
		return fmt.Errorf("read namespace %s: %w", ns, err)
	}
	return nil
}

func isIP(hostPort string) bool {
	h, _, err := net.SplitHostPort(hostPort)
	return err == nil && net.ParseIP(h) != nil
}

func splitNamespace(objs []*unstructured.Unstructured) (ns, rest []*unstructured.Unstructured) {
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" {
			ns = append(ns, o)
		} else {
			rest = append(rest, o)
		}
	}
	return ns, rest
}

func clientDryRun(objs []*unstructured.Unstructured, ns string, secrets []string) *Result {
	res := &Result{}
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(x, y *unstructured.Unstructured) int { return kindRank(x) - kindRank(y) })
	for _, o := range objs {
		res.Objects = append(res.Objects, Applied{Object: o, Change: Created})
	}
	for _, s := range secrets {
		res.Hidden = append(res.Hidden, "secret/"+s)
	}
	slices.Sort(res.Hidden)
	return res
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	// The converter writes creationTimestamp: null, which apply would
	// then own for nothing.
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

// UninstallConfig says what uninstall removes.
type UninstallConfig struct {
	Namespace string
	// Purge removes what holds state too: the lead's data volume, the
	// federation CA and the namespace.
	Purge bool
}

// Uninstall removes what install made in the cluster: only objects that
// carry install's part-of label, so a same-named object someone else made
// is left alone. Without Purge, the data volume, the CA and the namespace
// stay, so that installing again picks up where it was.
func (in *Installer) Uninstall(ctx context.Context, cfg UninstallConfig) (*Result, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if err := validNamespace(cfg.Namespace); err != nil {
		return nil, err
	}
	// Render everything install could have made, to learn kinds and names;
	// the settings do not matter.
	lead := LeadConfig{ID: "uninstall", Namespace: cfg.Namespace}
	leadObjs, err := Render(lead.Overlay())
	if err != nil {
		return nil, err
	}
	agent := AgentConfig{Cluster: "uninstall", Tier: "edge", Leads: []string{"x:1"}, Namespace: cfg.Namespace, Guard: true}
	agentObjs, err := Render(agent.Overlay())
	if err != nil {
		return nil, err
	}
	var targets []*unstructured.Unstructured
	seen := map[string]bool{}
	for _, o := range append(leadObjs, agentObjs...) {
		if o.GetKind() == "ConfigMap" || seen[refOf(o)] {
			continue // generated names: found by label below
		}
		seen[refOf(o)] = true
		targets = append(targets, o)
	}
	for _, name := range []string{LeadTLSSecret, AgentTLSSecret, CASecret} {
		s := &unstructured.Unstructured{}
		s.SetAPIVersion("v1")
		s.SetKind("Secret")
		s.SetNamespace(cfg.Namespace)
		s.SetName(name)
		targets = append(targets, s)
	}
	// What it labelled as its own and named by content or by person.
	for _, kind := range []string{"ConfigMap", "Secret"} {
		found, err := in.labelled(ctx, cfg.Namespace, kind)
		if err != nil {
			return nil, err
		}
		for _, o := range found {
			if !seen[refOf(o)] {
				seen[refOf(o)] = true
				targets = append(targets, o)
			}
		}
	}
	// Deployments first, so no pod runs on without its Secrets; the
	// namespace last, it takes everything left with it.
	slices.SortStableFunc(targets, func(x, y *unstructured.Unstructured) int { return kindRank(y) - kindRank(x) })
	res := &Result{}
	a := in.applier()
	for _, t := range targets {
		keep := ""
		switch {
		case t.GetKind() == "Namespace":
			keep = "the namespace; --purge deletes it"
		case t.GetKind() == "PersistentVolumeClaim":
			keep = "the lead's Raft data; --purge deletes it"
		case t.GetKind() == "Secret" && t.GetName() == CASecret:
			keep = "the federation CA: without it no new lead or agent can join; --purge deletes it"
		}
		ri, err := a.resource(t)
		if err != nil {
			if meta.IsNoMatchError(err) {
				continue // e.g. no admission policies here: nothing was installed
			}
			return res, err
		}
		cur, err := ri.Get(ctx, t.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("read %s: %w", refOf(t), err)
		}
		if cur.GetLabels()[LabelPartOf] != PartOf {
			res.Notes = append(res.Notes, fmt.Sprintf("%s left alone: it is not labelled %s=%s, so install did not make it", refOf(cur), LabelPartOf, PartOf))
			continue
		}
		if keep != "" && !cfg.Purge {
			res.Objects = append(res.Objects, Applied{Object: cur, Change: Kept, Why: keep})
			continue
		}
		bg := metav1.DeletePropagationBackground
		err = ri.Delete(ctx, t.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg, DryRun: a.dryRun()})
		if err != nil && !apierrors.IsNotFound(err) {
			return res, fmt.Errorf("delete %s: %w", refOf(t), err)
		}
		res.Objects = append(res.Objects, Applied{Object: cur, Change: Deleted})
	}
	return res, nil
}

func (in *Installer) labelled(ctx context.Context, ns, kind string) ([]*unstructured.Unstructured, error) {
	sel := metav1.ListOptions{LabelSelector: LabelPartOf + "=" + PartOf}
	var out []*unstructured.Unstructured
	add := func(obj runtime.Object) error {
		u, err := toUnstructured(obj)
		if err != nil {
			return err
		}
		u.SetAPIVersion("v1")
		u.SetKind(kind)
		out = append(out, u)
		return nil
	}
	switch kind {
	case "ConfigMap":
		l, err := in.Target.Kube.CoreV1().ConfigMaps(ns).List(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("list configmaps in %s: %w", ns, err)
		}
		for i := range l.Items {
			if err := add(&l.Items[i]); err != nil {
				return nil, err
			}
		}
	case "Secret":
		l, err := in.Target.Kube.CoreV1().Secrets(ns).List(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("list secrets in %s: %w", ns, err)
		}
		for i := range l.Items {
			// Only the names are needed; the keys stay out of memory.
			s := l.Items[i]
			s.Data, s.StringData = nil, nil
			if err := add(&s); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
