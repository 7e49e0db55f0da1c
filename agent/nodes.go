package agent

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
)

// maxNodesPerReport keeps one node report well under the lead's request
// size limit (apiv1.MaxBodyBytes): a node is about 600 bytes of JSON. A
// variable so tests can make it small.
var maxNodesPerReport = 1000

// maxNodeLabels is how many labels of a node are reported, as the lead
// accepts; beyond it the QoS labels and the well-known ones are kept first.
const maxNodeLabels = 64

// nodeReporter sends the cluster's nodes to the leads: all of them after
// registration, after a failed report and every resync; in between, only
// the nodes whose facts changed, a debounce after the first change.
type nodeReporter struct {
	a    *Agent
	kick chan struct{}

	mu    sync.Mutex
	dirty map[string]bool // nodes whose facts may have changed
	full  bool            // the next report must be full
	sent  map[string]fleet.Node
}

func newNodeReporter(a *Agent) *nodeReporter {
	r := &nodeReporter{a: a, kick: make(chan struct{}, 1), dirty: map[string]bool{}, full: true}
	_, _ = a.watch.nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.markNode(obj) },
		UpdateFunc: func(_, obj any) { r.markNode(obj) },
		DeleteFunc: func(obj any) { r.markNode(obj) },
	})
	_, _ = a.watch.podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { r.markPod(obj) },
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := obj.(*corev1.Pod)
			// What a pod requests of its node changes only when it is bound,
			// ends, or is resized; status churn (readiness, restarts) does not.
			if ok1 && ok2 && o.Spec.NodeName == n.Spec.NodeName && terminal(o) == terminal(n) && o.Generation == n.Generation {
				return
			}
			r.markPod(old)
			r.markPod(obj)
		},
		DeleteFunc: func(obj any) { r.markPod(obj) },
	})
	return r
}

func (r *nodeReporter) markNode(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if n, ok := obj.(*corev1.Node); ok {
		r.mark(n.Name)
	}
}

func (r *nodeReporter) markPod(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		r.mark(p.Spec.NodeName)
	}
}

func (r *nodeReporter) mark(node string) {
	r.mu.Lock()
	r.dirty[node] = true
	r.mu.Unlock()
	r.wake()
}

func (r *nodeReporter) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// requestFull makes the next report a full one (after a registration: the
// lead may know nothing of the cluster's nodes).
func (r *nodeReporter) requestFull() {
	r.mu.Lock()
	r.full = true
	r.mu.Unlock()
	r.wake()
}

func (r *nodeReporter) run(ctx context.Context) error {
	a := r.a
	resync := time.NewTicker(a.cfg.Resync)
	defer resync.Stop()
	bo := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
			// Debounce: a pod being scheduled touches its node several times.
			if !sleep(ctx, a.cfg.Debounce, nil) {
				return nil
			}
		case <-resync.C:
			r.requestFull()
			continue
		}
		epoch, err := a.sess.wait(ctx)
		if err != nil {
			return nil
		}
		if err := r.report(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.leadFailed("nodes", err)
			if notFound(err) {
				a.sess.lost(epoch)
			}
			r.requestFull()
			if !sleep(ctx, bo.next(), a.leadUp.C()) {
				return nil
			}
			continue
		}
		a.leadAnswered("nodes")
		bo.reset()
	}
}

// report sends what the lead needs to hear; nil when there was nothing.
func (r *nodeReporter) report(ctx context.Context) error {
	a := r.a
	r.mu.Lock()
	full, dirty := r.full, r.dirty
	r.full, r.dirty = false, map[string]bool{}
	r.mu.Unlock()
	restore := func() {
		r.mu.Lock()
		r.full = r.full || full
		for n := range dirty {
			r.dirty[n] = true
		}
		r.mu.Unlock()
	}

	now := time.Now()
	nodes, err := a.watch.nodes.List(labels.Everything())
	if err != nil {
		restore()
		return err
	}
	a.metrics.Nodes.Set(float64(len(nodes)))
	cur := make(map[string]fleet.Node, len(nodes))
	for _, n := range nodes {
		if full || dirty[n.Name] {
			cur[n.Name] = nodeFacts(a.cfg.Cluster.Name, n, a.watch.nodePods(n.Name), now)
		}
	}

	var reps []apiv1.NodeReport
	if full && len(cur) <= maxNodesPerReport {
		reps = []apiv1.NodeReport{{Full: true, Nodes: slices.Collect(maps.Values(cur))}}
	} else {
		// Changes, or a cluster too large for one full report (the lead
		// bounds a request's size): the changed nodes in batches, and those
		// gone since they were last sent.
		var rep apiv1.NodeReport
		r.mu.Lock()
		check := dirty
		if full {
			check = map[string]bool{}
			for name := range cur {
				check[name] = true
			}
			for name := range r.sent {
				check[name] = true
			}
		}
		for name := range check {
			n, ok := cur[name]
			prev, was := r.sent[name]
			switch {
			case !ok && was:
				rep.Deleted = append(rep.Deleted, name)
			case ok && (full || !was || !sameNode(prev, n)):
				rep.Nodes = append(rep.Nodes, n)
			}
		}
		r.mu.Unlock()
		if len(rep.Nodes) == 0 && len(rep.Deleted) == 0 {
			return nil
		}
		slices.SortFunc(rep.Nodes, func(x, y fleet.Node) int { return strings.Compare(x.Name, y.Name) })
		for len(rep.Nodes) > maxNodesPerReport {
			reps = append(reps, apiv1.NodeReport{Nodes: rep.Nodes[:maxNodesPerReport]})
			rep.Nodes = rep.Nodes[maxNodesPerReport:]
		}
		reps = append(reps, rep)
	}
	for i, rep := range reps {
		slices.SortFunc(rep.Nodes, func(x, y fleet.Node) int { return strings.Compare(x.Name, y.Name) })
		slices.Sort(rep.Deleted)
		if _, err := a.lead.ReportNodes(ctx, a.cfg.Cluster.Name, rep); err != nil {
			restore()
			return err
		}
		r.mu.Lock()
		if rep.Full {
			r.sent = cur
		} else {
			if r.sent == nil {
				r.sent = map[string]fleet.Node{}
			}
			for _, n := range rep.Nodes {
				r.sent[n.Name] = n
			}
			for _, name := range rep.Deleted {
				delete(r.sent, name)
			}
		}
		r.mu.Unlock()
		kind := "changes"
		if full {
			kind = "full"
		}
		a.metrics.NodeReports.WithLabelValues(kind).Inc()
		a.log.Debug("nodes reported", "kind", kind, "part", i+1, "of", len(reps), "nodes", len(rep.Nodes), "deleted", len(rep.Deleted))
	}
	return nil
}

// sameNode compares the facts of a node, not when they were reported.
func sameNode(x, y fleet.Node) bool {
	x.Reported, y.Reported = time.Time{}, time.Time{}
	return x.Cluster == y.Cluster && x.Name == y.Name && x.Architecture == y.Architecture &&
		maps.Equal(x.Labels, y.Labels) && x.Allocatable == y.Allocatable && x.Requested == y.Requested &&
		x.Ready == y.Ready && x.Unschedulable == y.Unschedulable && x.MemoryPressure == y.MemoryPressure &&
		x.DiskPressure == y.DiskPressure && x.PIDPressure == y.PIDPressure
}

// terminal says whether a pod is done and so requests nothing any more.
func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// nodeFacts is what the leads know of one node: its capacity for pods,
// what the pods bound to it already request (as the scheduler counts it),
// its conditions and its labels.
func nodeFacts(cluster string, n *corev1.Node, pods []*corev1.Pod, now time.Time) fleet.Node {
	f := fleet.Node{
		Cluster:       cluster,
		Name:          n.Name,
		Architecture:  n.Status.NodeInfo.Architecture,
		Labels:        reportedLabels(n.Labels),
		Allocatable:   resources(n.Status.Allocatable),
		Unschedulable: n.Spec.Unschedulable,
		Reported:      now,
	}
	if f.Architecture == "" {
		f.Architecture = n.Labels[corev1.LabelArchStable]
	}
	for _, c := range n.Status.Conditions {
		on := c.Status == corev1.ConditionTrue
		switch c.Type {
		case corev1.NodeReady:
			f.Ready = on
		case corev1.NodeMemoryPressure:
			f.MemoryPressure = on
		case corev1.NodeDiskPressure:
			f.DiskPressure = on
		case corev1.NodePIDPressure:
			f.PIDPressure = on
		}
	}
	for _, p := range pods {
		if terminal(p) {
			continue
		}
		req := resources(resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}))
		req.Pods = 1
		f.Requested = f.Requested.Add(req)
	}
	return f
}

// resources reads the amounts the scheduler fits pods into.
func resources(l corev1.ResourceList) fleet.Resources {
	return fleet.Resources{
		MilliCPU:         l.Cpu().MilliValue(),
		MemoryBytes:      l.Memory().Value(),
		EphemeralStorage: l.StorageEphemeral().Value(),
		Pods:             l.Pods().Value(),
	}
}

// reportedLabels are a node's labels, at most maxNodeLabels of them:
// qonnect's QoS labels first, then the well-known kubernetes.io and k8s.io
// ones, then the rest by name.
func reportedLabels(l map[string]string) map[string]string {
	if len(l) <= maxNodeLabels {
		return maps.Clone(l)
	}
	rank := func(k string) int {
		switch {
		case strings.HasPrefix(k, "qonnect.io/"):
			return 0
		case strings.Contains(k, "kubernetes.io/"), strings.Contains(k, "k8s.io/"):
			return 1
		}
		return 2
	}
	keys := slices.Collect(maps.Keys(l))
	slices.SortFunc(keys, func(x, y string) int {
		if d := rank(x) - rank(y); d != 0 {
			return d
		}
		return strings.Compare(x, y)
	})
	out := make(map[string]string, maxNodeLabels)
	for _, k := range keys[:maxNodeLabels] {
		out[k] = l[k]
	}
	return out
}
