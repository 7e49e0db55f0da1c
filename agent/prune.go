package agent

import (
	"context"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
)

// managedSelector finds the objects qonnect applied for some component.
// The application's namespace carries only the managed-by label, so it is
// never among them.
var managedSelector = fleet.LabelManagedBy + "=" + fleet.ManagedByValue + "," + fleet.LabelApp + "," + fleet.LabelComponent

// fullScanEvery is how many resyncs pass between two looks through every
// resource type of the cluster (in between, only the types known to hold
// qonnect's objects are looked at).
const fullScanEvery = 10

// prune removes qonnect's objects that as no longer asks for:
//   - every object of a component that is not assigned here any more;
//   - an object of an assigned component that its current manifests no
//     longer have, once the component applied in full (so a failed apply
//     never costs the objects that were running).
//
// An object is qonnect's only if it carries qonnect's labels and was
// written by server-side apply with qonnect's field manager; objects owned
// by another (a Deployment's ReplicaSets and Pods) are left to the garbage
// collector. Leaving components are kept.
func (a *Agent) prune(ctx context.Context, as *apiv1.Assignments, keep map[compKey]bool) {
	types := a.pruneScanTypes()
	a.mu.Lock()
	desired := map[compKey]map[string]bool{}
	for k, st := range a.components {
		if !keep[k] || st.leaving || st.failure != "" || st.hash == "" || st.gen != st.assignment.Generation {
			continue
		}
		set := make(map[string]bool, len(st.applied))
		for _, r := range st.applied {
			set[r.identity()] = true
		}
		desired[k] = set
	}
	a.mu.Unlock()

	var removed int
	for _, gvr := range types {
		list, err := a.dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: managedSelector})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
				a.dropPruneType(gvr)
				continue
			}
			if apierrors.IsForbidden(err) {
				// The agent's RBAC grants only the kinds it may apply (no
				// Secrets, for one); what it may not list, it cannot have made.
				a.log.Debug("not allowed to list; skipping", "resource", gvr.String())
				a.dropPruneType(gvr)
				continue
			}
			a.log.Warn("cannot list objects to remove; trying again later", "resource", gvr.String(), "err", err)
			continue
		}
		if len(list.Items) > 0 {
			a.addPruneType(gvr)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if len(obj.GetOwnerReferences()) > 0 || !appliedByQonnect(obj) {
				continue
			}
			l := obj.GetLabels()
			k := compKey{l[fleet.LabelApp], l[fleet.LabelComponent]}
			why := "no longer assigned to this cluster"
			if keep[k] {
				set, ok := desired[k]
				if !ok {
					continue // leaving, failed or not yet applied: keep what runs
				}
				ref := objRef{GVR: gvr, Namespace: obj.GetNamespace(), Name: obj.GetName()}
				if set[ref.identity()] {
					continue
				}
				why = "no longer in the component's manifests"
			}
			if a.remove(ctx, gvr, obj, k, why) {
				removed++
			}
		}
	}
	if removed > 0 {
		a.log.Info("removed objects the leads no longer assign", "count", removed, "index", as.Index)
	}
}

// remove deletes one object, only if it is still the one that was listed.
func (a *Agent) remove(ctx context.Context, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, k compKey, why string) bool {
	uid := obj.GetUID()
	bg := metav1.DeletePropagationBackground
	err := a.resource(gvr, obj.GetNamespace()).Delete(ctx, obj.GetName(), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: &bg,
	})
	switch {
	case err == nil:
		a.metrics.Removed.Inc()
		a.log.Info("object removed", "resource", gvr.Resource, "namespace", obj.GetNamespace(), "name", obj.GetName(),
			"app", k.App, "component", k.Component, "why", why)
		a.recorder.Eventf(obj, corev1.EventTypeNormal, ReasonRemoved, "qonnect removed %s/%s: %s", k.App, k.Component, why)
		return true
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return false // gone already, or replaced by a new object since the list
	default:
		a.log.Warn("cannot remove object; trying again later", "resource", gvr.Resource, "namespace", obj.GetNamespace(), "name", obj.GetName(), "err", err)
		return false
	}
}

// appliedByQonnect says whether qonnect's field manager wrote the object
// with server-side apply: labels alone could have been copied by anyone.
func appliedByQonnect(obj *unstructured.Unstructured) bool {
	for _, f := range obj.GetManagedFields() {
		if f.Manager == fleet.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// pruneScanTypes returns the resource types to look through: every
// listable and deletable type at the first prune and every fullScanEvery
// resyncs, else those known to hold qonnect's objects.
func (a *Agent) pruneScanTypes() []schema.GroupVersionResource {
	a.mu.Lock()
	full := a.disco != nil && (!a.scanned || time.Since(a.lastScan) >= fullScanEvery*a.cfg.Resync)
	a.mu.Unlock()
	if full {
		if types, err := listableTypes(a.disco); err != nil && len(types) == 0 {
			a.log.Warn("cannot discover the cluster's resource types; removing only from known ones", "err", err)
		} else {
			if err != nil {
				a.log.Warn("some API groups could not be discovered; looking through the others", "err", err)
			}
			a.mu.Lock()
			a.scanned, a.lastScan = err == nil, time.Now()
			a.mu.Unlock()
			return types
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]schema.GroupVersionResource, 0, len(a.pruneTypes))
	for t := range a.pruneTypes {
		out = append(out, t)
	}
	slices.SortFunc(out, func(x, y schema.GroupVersionResource) int { return strings.Compare(x.String(), y.String()) })
	return out
}

// listableTypes are the preferred versions of every resource type that
// can be listed and deleted. Events are skipped: qonnect never applies
// them and there are many.
func listableTypes(d discovery.DiscoveryInterface) ([]schema.GroupVersionResource, error) {
	lists, err := d.ServerPreferredResources()
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if slices.Contains([]string{"events"}, r.Name) || strings.Contains(r.Name, "/") ||
				!slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			out = append(out, gv.WithResource(r.Name))
		}
	}
	return out, err
}

func (a *Agent) addPruneType(gvr schema.GroupVersionResource) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneTypes[gvr] = true
}

func (a *Agent) dropPruneType(gvr schema.GroupVersionResource) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pruneTypes, gvr)
}
