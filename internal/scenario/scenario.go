// Package scenario drives a sandbox federation the way a user and a failure
// would: apply an application, wait for it to be placed and running, change
// its goal, stop clusters, kill leads, and measure how long each took. The
// end-to-end tests and `qonnect-sandbox demo` share it.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/spec"
)

// Poll is how often the scenario looks; it measures, it does not drive.
const Poll = 100 * time.Millisecond

// Client returns a user client for every lead of the federation.
func Client(f *sandbox.Federation) (*leadclient.Client, error) {
	return clientFor(f, f.LeadAPIs())
}

// LeadClient returns a client that talks to one lead only.
func LeadClient(f *sandbox.Federation, id string) (*leadclient.Client, error) {
	p, err := f.Lead(id)
	if err != nil {
		return nil, err
	}
	return clientFor(f, []string{"https://" + p.APIAddr})
}

func clientFor(f *sandbox.Federation, addrs []string) (*leadclient.Client, error) {
	tlsCfg, err := pki.ClientConfig(f.UserTLS())
	if err != nil {
		return nil, err
	}
	return leadclient.New(leadclient.Config{Addresses: addrs, TLS: tlsCfg, Timeout: 5 * time.Second})
}

// Until calls cond every Poll until it returns true, an error, or ctx ends;
// the last "why not yet" is in the timeout error.
func Until(ctx context.Context, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		ok, why, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not after %s (last: %s)", what, timeout, last)
		case <-time.After(Poll):
		}
	}
}

// Leader waits until the leads agree on a leader and returns its ID.
func Leader(ctx context.Context, f *sandbox.Federation, timeout time.Duration) (string, error) {
	var leader string
	err := Until(ctx, timeout, "a leader", func(ctx context.Context) (bool, string, error) {
		for _, p := range f.State().Leads {
			c, err := LeadClient(f, p.ID)
			if err != nil {
				return false, "", err
			}
			st, err := c.RaftStatus(ctx)
			if err != nil {
				continue
			}
			if st.State == "Leader" {
				leader = st.ID
				return true, "", nil
			}
		}
		return false, "no lead says it is the leader", nil
	})
	return leader, err
}

// LoadApp reads an application from a spec file and sets its weights.
func LoadApp(path string, qos spec.QoS) (*spec.Application, error) {
	a, err := spec.Load(path, spec.ValidateOptions{})
	if err != nil {
		return nil, err
	}
	a.Spec.QoS = qos
	return a, nil
}

// Placement maps component → cluster.
type Placement map[string]string

func (p Placement) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"→"+p[k])
	}
	return strings.Join(parts, " ")
}

// PlacementOf reads where the application's components are placed.
func PlacementOf(app *apiv1.App) Placement {
	out := Placement{}
	for _, p := range app.Placements {
		out[p.Component] = p.Cluster
	}
	return out
}

// WaitHealthy waits until every component of the application is placed
// where want says (nil: anywhere), its migration (if any) is over, and its
// agent reports it Healthy at the current generation.
func WaitHealthy(ctx context.Context, c *leadclient.Client, name string, want Placement, timeout time.Duration) (*apiv1.App, error) {
	var app *apiv1.App
	err := Until(ctx, timeout, "application "+name+" healthy", func(ctx context.Context) (bool, string, error) {
		a, err := c.GetApp(ctx, name)
		if err != nil {
			if leadclient.IsCode(err, apiv1.CodeNotFound) {
				return false, "not found", nil
			}
			return false, err.Error(), nil
		}
		app = a
		ok, why := Healthy(a, want)
		return ok, why, nil
	})
	return app, err
}

// Healthy reports whether app is placed as want says and healthy there.
func Healthy(a *apiv1.App, want Placement) (bool, string) {
	if len(a.Placements) != len(a.Spec.Spec.Components) {
		return false, fmt.Sprintf("%d of %d components placed", len(a.Placements), len(a.Spec.Spec.Components))
	}
	status := map[string]fleet.ComponentStatus{}
	for _, s := range a.Statuses {
		status[s.Component+"@"+s.Cluster] = s
	}
	for _, p := range a.Placements {
		if p.Cluster == "" {
			return false, fmt.Sprintf("%s pending: %s", p.Component, p.Reason)
		}
		if w, ok := want[p.Component]; ok && w != p.Cluster {
			return false, fmt.Sprintf("%s on %s, want %s", p.Component, p.Cluster, w)
		}
		if p.From != "" {
			return false, fmt.Sprintf("%s still moving from %s", p.Component, p.From)
		}
		s, ok := status[p.Component+"@"+p.Cluster]
		if !ok {
			return false, fmt.Sprintf("%s: no status from %s yet", p.Component, p.Cluster)
		}
		if s.Phase != fleet.PhaseHealthy || s.Generation != a.Generation {
			return false, fmt.Sprintf("%s on %s: %s at generation %d (want Healthy at %d) %s", p.Component, p.Cluster, s.Phase, s.Generation, a.Generation, s.Message)
		}
	}
	return true, ""
}

// Workload is what runs of one component on one cluster.
type Workload struct {
	Available int32
	Pods      []corev1.Pod
}

// WorkloadOn reads the component's Deployments and pods on a cluster.
func WorkloadOn(ctx context.Context, f *sandbox.Federation, cluster, namespace, app, component string) (Workload, error) {
	cs, err := f.Client(cluster)
	if err != nil {
		return Workload{}, err
	}
	sel := fmt.Sprintf("%s=%s,%s=%s", fleet.LabelApp, app, fleet.LabelComponent, component)
	deps, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return Workload{}, err
	}
	var w Workload
	for _, d := range deps.Items {
		w.Available += available(&d)
		pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
		if err != nil {
			return Workload{}, err
		}
		w.Pods = append(w.Pods, pods.Items...)
	}
	return w, nil
}

func available(d *appsv1.Deployment) int32 { return d.Status.AvailableReplicas }

// RunningOn checks that every pod of the workload runs on one of nodes.
func (w Workload) RunningOn(nodes []string) error {
	if len(w.Pods) == 0 {
		return errors.New("no pods")
	}
	allowed := map[string]bool{}
	for _, n := range nodes {
		allowed[n] = true
	}
	for _, p := range w.Pods {
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
		}
		if !allowed[p.Spec.NodeName] {
			return fmt.Errorf("pod %s runs on %s, not on the placement's nodes %v", p.Name, p.Spec.NodeName, nodes)
		}
	}
	return nil
}
