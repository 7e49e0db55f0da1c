package install

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"qonnect.io/qonnect/internal/fleet"
)

// Target is a cluster install writes to.
type Target struct {
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Mapper    meta.RESTMapper
	Discovery discovery.DiscoveryInterface
}

// NewTarget connects to the cluster cfg points at.
func NewTarget(cfg *rest.Config) (*Target, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cached := memory.NewMemCacheClient(dc)
	return &Target{Kube: kube, Dynamic: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(cached), Discovery: cached}, nil
}

// What happened to an object.
const (
	Created    = "created"
	Configured = "configured"
	Unchanged  = "unchanged"
	Deleted    = "deleted"
	Kept       = "kept"
)

// Applied is one object install wrote (or, dry, would write).
type Applied struct {
	Object *unstructured.Unstructured
	// Change is Created, Configured, Unchanged, Deleted or Kept.
	Change string
	// Why explains a Kept object.
	Why string
}

// Ref is the object as kubectl names it: "deployment.apps/qonnect-lead".
func (a Applied) Ref() string { return refOf(a.Object) }

func refOf(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	k := strings.ToLower(gvk.Kind)
	if gvk.Group != "" {
		k += "." + gvk.Group
	}
	return k + "/" + u.GetName()
}

// kindOrder puts what others depend on first: the namespace before what
// lives in it, RBAC and Secrets before the Deployments that use them, and
// the Deployments last, so a pod never starts without its certificate.
var kindOrder = []string{
	"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
	"ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Role", "RoleBinding",
	"Secret", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment",
}

func kindRank(u *unstructured.Unstructured) int {
	if i := slices.Index(kindOrder, u.GetKind()); i >= 0 {
		return i
	}
	return len(kindOrder)
}

// applier writes objects with server-side apply as the field manager
// "qonnect", the manager the agent uses too. Force, because install's
// declared state is meant to win over a hand edit of the same field.
type applier struct {
	t   *Target
	dry bool // server-side dry run: the API server checks, nothing is stored
}

func (a *applier) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := a.t.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: the cluster does not serve %s: %w", refOf(u), gvk.GroupVersion().String(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.t.Dynamic.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return a.t.Dynamic.Resource(m.Resource), nil
}

func (a *applier) dryRun() []string {
	if a.dry {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// apply writes objs in dependency order and says what changed for each.
func (a *applier) apply(ctx context.Context, objs []*unstructured.Unstructured) ([]Applied, error) {
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(x, y *unstructured.Unstructured) int { return kindRank(x) - kindRank(y) })
	var out []Applied
	for _, u := range objs {
		ri, err := a.resource(u)
		if err != nil {
			return out, err
		}
		before, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			before = nil
		case err != nil:
			return out, fmt.Errorf("read %s: %w", refOf(u), err)
		}
		opts := metav1.ApplyOptions{FieldManager: fleet.FieldManager, Force: true, DryRun: a.dryRun()}
		if before != nil && !a.dry {
			// Most types skip the write of an apply that changes nothing,
			// not all (a PersistentVolumeClaim is written anyway): ask the
			// server what the apply would make, and write only if that
			// differs from what is stored. So a second install writes nothing.
			dry := opts
			dry.DryRun = []string{metav1.DryRunAll}
			would, err := ri.Apply(ctx, u.GetName(), u, dry)
			if err != nil {
				return out, fmt.Errorf("apply %s: %w", refOf(u), err)
			}
			if sameStored(before, would) {
				out = append(out, Applied{Object: before, Change: Unchanged})
				continue
			}
		}
		after, err := ri.Apply(ctx, u.GetName(), u, opts)
		if err != nil {
			return out, fmt.Errorf("apply %s: %w", refOf(u), err)
		}
		change := Created
		switch {
		case before == nil:
		case sameStored(before, after):
			change = Unchanged
		default:
			change = Configured
		}
		out = append(out, Applied{Object: after, Change: change})
	}
	return out, nil
}

// sameStored says whether two versions of an object hold the same
// content, whatever their resourceVersion and managedFields bookkeeping.
func sameStored(x, y *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy()
		unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
		return c.Object
	}
	return reflect.DeepEqual(strip(x), strip(y))
}

// pruneConfigMaps deletes the generated ConfigMaps of component that the
// current install no longer uses: a changed setting gives a new name
// (kustomize hashes the content), and the old one is left behind.
func (a *applier) pruneConfigMaps(ctx context.Context, ns, component string, keep []Applied) ([]Applied, error) {
	sel := LabelPartOf + "=" + PartOf + "," + LabelComponent + "=" + component
	list, err := a.t.Kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list the old settings in %s: %w", ns, err)
	}
	var out []Applied
	for _, cm := range list.Items {
		used := slices.ContainsFunc(keep, func(x Applied) bool {
			return x.Object.GetKind() == "ConfigMap" && x.Object.GetName() == cm.Name
		})
		if used {
			continue
		}
		err := a.t.Kube.CoreV1().ConfigMaps(ns).Delete(ctx, cm.Name, metav1.DeleteOptions{DryRun: a.dryRun()})
		if err != nil && !apierrors.IsNotFound(err) {
			return out, fmt.Errorf("delete the old settings configmap/%s: %w", cm.Name, err)
		}
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		u.SetNamespace(ns)
		u.SetName(cm.Name)
		out = append(out, Applied{Object: u, Change: Deleted})
	}
	return out, nil
}

// servesPolicies says whether the cluster has ValidatingAdmissionPolicy v1
// (Kubernetes 1.30 and later).
func servesPolicies(d discovery.DiscoveryInterface) (bool, error) {
	rl, err := d.ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover admissionregistration.k8s.io/v1: %w", err)
	}
	for _, r := range rl.APIResources {
		if r.Name == "validatingadmissionpolicies" {
			return true, nil
		}
	}
	return false, nil
}
