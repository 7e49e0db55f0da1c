package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"qonnect.io/qonnect/internal/fleet"
)

// Pod indexes.
const (
	byNode      = "node"      // spec.nodeName
	byComponent = "component" // namespace/app/component of qonnect's labels
)

// watcher holds the agent's informers: every node and pod of the cluster
// (for node reports: pods give what is requested on each node), and the
// workloads qonnect applied (for health).
type watcher struct {
	all     informers.SharedInformerFactory
	managed informers.SharedInformerFactory
	log     *slog.Logger

	nodes       corelisters.NodeLister
	nodeInf     cache.SharedIndexInformer
	podInf      cache.SharedIndexInformer
	pods        cache.Indexer
	deployments appslisters.DeploymentLister
	statefuls   appslisters.StatefulSetLister
	daemons     appslisters.DaemonSetLister
	replicas    appslisters.ReplicaSetLister
	jobs        batchlisters.JobLister

	onHealth func() // a workload or a qonnect pod changed
}

func newWatcher(kube kubernetes.Interface, log *slog.Logger, onHealth func()) *watcher {
	// Managed-fields are most of a stored object and never read here; the
	// informers keep the rest, which matters with thousands of pods.
	strip := informers.WithTransform(stripManagedFields)
	w := &watcher{
		all: informers.NewSharedInformerFactoryWithOptions(kube, 0, strip),
		managed: informers.NewSharedInformerFactoryWithOptions(kube, 0, strip,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.LabelSelector = fleet.LabelManagedBy + "=" + fleet.ManagedByValue
			})),
		log:      log,
		onHealth: onHealth,
	}
	w.nodeInf = w.all.Core().V1().Nodes().Informer()
	w.nodes = w.all.Core().V1().Nodes().Lister()
	w.podInf = w.all.Core().V1().Pods().Informer()
	if err := w.podInf.AddIndexers(cache.Indexers{byNode: podNodeIndex, byComponent: podComponentIndex}); err != nil {
		panic(fmt.Sprintf("pod indexers: %v", err)) // only fails once started, and it is not yet
	}
	w.pods = w.podInf.GetIndexer()
	w.deployments = w.managed.Apps().V1().Deployments().Lister()
	w.statefuls = w.managed.Apps().V1().StatefulSets().Lister()
	w.daemons = w.managed.Apps().V1().DaemonSets().Lister()
	w.replicas = w.managed.Apps().V1().ReplicaSets().Lister()
	w.jobs = w.managed.Batch().V1().Jobs().Lister()

	kick := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.onHealth() },
		UpdateFunc: func(any, any) { w.onHealth() },
		DeleteFunc: func(any) { w.onHealth() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		w.managed.Apps().V1().Deployments().Informer(),
		w.managed.Apps().V1().StatefulSets().Informer(),
		w.managed.Apps().V1().DaemonSets().Informer(),
		w.managed.Apps().V1().ReplicaSets().Informer(),
		w.managed.Batch().V1().Jobs().Informer(),
	} {
		_, _ = inf.AddEventHandler(kick)
	}
	// Pods of every kind pass through here; only qonnect's matter to health.
	_, _ = w.podInf.AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			p, ok := obj.(*corev1.Pod)
			return ok && p.Labels[fleet.LabelManagedBy] == fleet.ManagedByValue
		},
		Handler: kick,
	})
	return w
}

// start runs the informers and waits for their first lists; the returned
// function stops them and waits for their goroutines.
func (w *watcher) start(ctx context.Context) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	w.all.Start(ctx.Done())
	w.managed.Start(ctx.Done())
	stop = func() {
		cancel()
		w.all.Shutdown()
		w.managed.Shutdown()
	}
	start := time.Now()
	for _, f := range []informers.SharedInformerFactory{w.all, w.managed} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				stop()
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("watch %v of the cluster: informer did not sync", typ)
			}
		}
	}
	w.log.Info("cluster informers synced", "took", time.Since(start).Round(time.Millisecond),
		"nodes", len(w.nodeInf.GetStore().ListKeys()), "pods", len(w.pods.ListKeys()))
	return stop, nil
}

// stripManagedFields drops what the informers never read and what makes
// up most of a stored object.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
			delete(a, corev1.LastAppliedConfigAnnotation)
			m.SetAnnotations(a)
		}
	}
	return obj, nil
}

func podNodeIndex(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return nil, nil
	}
	return []string{p.Spec.NodeName}, nil
}

func podComponentIndex(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Labels[fleet.LabelManagedBy] != fleet.ManagedByValue || p.Labels[fleet.LabelApp] == "" {
		return nil, nil
	}
	return []string{componentIndexKey(p.Namespace, p.Labels[fleet.LabelApp], p.Labels[fleet.LabelComponent])}, nil
}

func componentIndexKey(ns, app, comp string) string { return ns + "/" + app + "/" + comp }

// componentPods are the pods carrying a component's labels in namespace ns.
func (w *watcher) componentPods(ns, app, comp string) []*corev1.Pod {
	objs, _ := w.pods.ByIndex(byComponent, componentIndexKey(ns, app, comp))
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// nodePods are the pods bound to a node.
func (w *watcher) nodePods(node string) []*corev1.Pod {
	objs, _ := w.pods.ByIndex(byNode, node)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// hostname is a node's hostname label, for pinning.
func (w *watcher) hostname(node string) (string, bool) {
	n, err := w.nodes.Get(node)
	if err != nil {
		return "", false
	}
	h, ok := n.Labels[LabelHostname]
	return h, ok && h != ""
}

// workload returns the current state of an applied object whose health
// depends on it (nil, true for kinds that are healthy once they exist),
// and false if the cluster does not have it (yet, or any more).
func (w *watcher) workload(gk schema.GroupKind, ns, name string) (runtime.Object, bool) {
	var obj runtime.Object
	var err error
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		obj, err = w.deployments.Deployments(ns).Get(name)
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		obj, err = w.statefuls.StatefulSets(ns).Get(name)
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		obj, err = w.daemons.DaemonSets(ns).Get(name)
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		obj, err = w.replicas.ReplicaSets(ns).Get(name)
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		obj, err = w.jobs.Jobs(ns).Get(name)
	case schema.GroupKind{Kind: "Pod"}:
		var item any
		var exists bool
		item, exists, err = w.pods.GetByKey(ns + "/" + name)
		if err == nil && exists {
			obj = item.(*corev1.Pod)
		} else if err == nil {
			return nil, false
		}
	default:
		return nil, true
	}
	if err != nil {
		return nil, false
	}
	return obj, true
}
