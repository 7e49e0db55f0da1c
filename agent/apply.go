package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// applyParallel bounds how many components are applied at once: enough
// that a new component does not wait behind a slow one, few enough to be
// gentle with the API server.
const applyParallel = 4

// Event reasons on the objects the agent applies.
const (
	ReasonApplied     = "QonnectApplied"
	ReasonApplyFailed = "QonnectApplyFailed"
	ReasonRefused     = "QonnectRefused"
	ReasonRemoved     = "QonnectRemoved"
)

// reconcileLoop applies the latest assignments when they arrive, retries
// failed components with back-off, and re-applies everything every resync.
func (a *Agent) reconcileLoop(ctx context.Context) error {
	resync := time.NewTicker(a.cfg.Resync)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var cur *apiv1.Assignments
	for {
		force := false
		fresh := false
		select {
		case <-ctx.Done():
			return nil
		case cur = <-a.pending:
			fresh = true
		case <-resync.C:
			force = true
		case <-retry.C:
		}
		if cur == nil {
			continue
		}
		// Removal follows what a lead said: a list just received, or the
		// last one while leads still answer. With every lead gone, the agent
		// keeps applying what it has but removes nothing.
		next := a.reconcile(ctx, cur, force, fresh || !a.noLead())
		if !next.IsZero() {
			retry.Reset(time.Until(next))
		}
	}
}

// reconcile makes the cluster run what as lists: it applies each
// component that is new, changed, failed and due for a retry (or every one
// when force), then, if remove, removes qonnect's objects that as no longer
// lists. It returns when a failed component should be tried again (zero:
// none).
func (a *Agent) reconcile(ctx context.Context, as *apiv1.Assignments, force, remove bool) time.Time {
	start := time.Now()
	keep := make(map[compKey]bool, len(as.Items))
	type job struct {
		key   compKey
		it    apiv1.Assignment
		hash  string
		quiet bool // applied before as it is: no Events unless it fails
	}
	var jobs []job
	var unknownLeaving []apiv1.Assignment
	a.mu.Lock()
	for _, it := range as.Items {
		k := compKey{it.App, it.Component}
		keep[k] = true
		st := a.components[k]
		if st == nil {
			st = &compState{}
			a.components[k] = st
		}
		st.assignment = it
		if it.Leaving {
			// Migrating away: keep it as it runs until the lead drops it.
			if !st.leaving {
				a.log.Info("component is leaving this cluster; keeping it until its new home is healthy", "app", it.App, "component", it.Component)
			}
			st.leaving = true
			if len(st.applied) == 0 && st.gen == 0 {
				unknownLeaving = append(unknownLeaving, it)
			}
			continue
		}
		st.leaving = false
		h := hashAssignment(it)
		due := st.failure != "" && !start.Before(st.retryAt)
		if force || h != st.hash || due {
			jobs = append(jobs, job{key: k, it: it, hash: h, quiet: h == st.hash})
		}
	}
	a.mu.Unlock()

	// Leaving components this process never applied (it restarted): work
	// out which objects they have here, for their health, writing nothing.
	for _, it := range unknownLeaving {
		refs := a.refsOf(&it)
		a.mu.Lock()
		if st := a.components[compKey{it.App, it.Component}]; st != nil && st.gen == 0 {
			st.applied, st.gen = refs, it.Generation
		}
		a.mu.Unlock()
	}

	var g errgroup.Group
	g.SetLimit(applyParallel)
	for _, j := range jobs {
		g.Go(func() error {
			res := a.applyComponent(ctx, &j.it, j.quiet)
			a.recordApply(j.key, j.it, j.hash, res)
			return nil
		})
	}
	_ = g.Wait() // applies report failures in their results, not as errors
	if ctx.Err() != nil {
		return time.Time{}
	}

	if remove {
		a.prune(ctx, as, keep)
	}

	a.mu.Lock()
	var next time.Time
	for k, st := range a.components {
		if !keep[k] {
			delete(a.components, k)
			continue
		}
		if st.failure != "" && (next.IsZero() || st.retryAt.Before(next)) {
			next = st.retryAt
		}
	}
	a.mu.Unlock()
	if len(jobs) > 0 {
		a.log.Debug("assignments reconciled", "index", as.Index, "applied", len(jobs), "took", time.Since(start).Round(time.Millisecond))
	}
	a.kickStatus()
	return next
}

// applyResult is how applying one component went.
type applyResult struct {
	applied  []objRef
	failures []string
	took     time.Duration
}

// recordApply stores the outcome of an apply.
func (a *Agent) recordApply(k compKey, it apiv1.Assignment, hash string, res applyResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.components[k]
	if st == nil {
		return
	}
	st.gen = it.Generation
	st.applied = res.applied
	if len(res.failures) == 0 {
		st.hash, st.failure, st.failedAttempts = hash, "", 0
		a.metrics.Applies.WithLabelValues("applied").Inc()
		return
	}
	st.hash = "" // a failed apply is never "already applied"
	st.failure = strings.Join(res.failures, "; ")
	st.failedAttempts++
	wait := min(5*time.Second<<min(st.failedAttempts-1, 8), a.cfg.Resync)
	st.retryAt = time.Now().Add(wait)
	a.metrics.Applies.WithLabelValues("failed").Inc()
	a.log.Warn("component failed to apply", "app", k.App, "component", k.Component,
		"generation", it.Generation, "reason", st.failure, "retryIn", wait)
}

// hashAssignment identifies what an assignment asks, so an unchanged one
// is not applied again on every long-poll answer.
func hashAssignment(it apiv1.Assignment) string {
	it.Leaving = false
	data, _ := json.Marshal(it) // decoded from JSON, so it encodes
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// applyComponent applies every object of one component. An object that
// fails does not stop the others: a Service may well be created while its
// Deployment is rejected, and the status says which failed and why.
func (a *Agent) applyComponent(ctx context.Context, it *apiv1.Assignment, quiet bool) applyResult {
	start := time.Now()
	var res applyResult
	defer func() {
		res.took = time.Since(start)
		a.metrics.ApplyDuration.Observe(res.took.Seconds())
	}()
	if it.Namespace == "" {
		res.failures = append(res.failures, "the assignment names no namespace")
		return res
	}
	if err := a.ensureNamespace(ctx, it.Namespace); err != nil {
		res.failures = append(res.failures, err.Error())
		return res
	}
	p := makePin(it.Nodes, a.watch.hostname)
	for _, i := range applyOrder(it.Resources) {
		ref, err := a.applyObject(ctx, it, i, it.Resources[i], p, quiet)
		if err != nil {
			res.failures = append(res.failures, err.Error())
			continue
		}
		if ref != nil {
			res.applied = append(res.applied, *ref)
		}
	}
	if len(it.Resources) == 0 {
		a.log.Info("component has no objects", "app", it.App, "component", it.Component)
	}
	return res
}

// applyOrder is the order to apply a component's objects in: the
// application's Namespace and CustomResourceDefinitions first, so that
// what lives in them can be applied in the same pass; the rest as written.
func applyOrder(objs []spec.Object) []int {
	first := func(o spec.Object) bool {
		k, _ := o["kind"].(string)
		return k == "Namespace" || k == "CustomResourceDefinition"
	}
	order := make([]int, 0, len(objs))
	for i, o := range objs {
		if first(o) {
			order = append(order, i)
		}
	}
	for i, o := range objs {
		if !first(o) {
			order = append(order, i)
		}
	}
	return order
}

// applyObject applies the i-th object of a component. It returns nil, nil
// for an object deliberately left alone (the application's namespace when
// someone else made it).
func (a *Agent) applyObject(ctx context.Context, it *apiv1.Assignment, i int, raw map[string]any, p *pin, quiet bool) (*objRef, error) {
	u, err := prepareObject(it, i, raw, p)
	if err != nil {
		a.warnEvent(it, objectRefOf(raw, it.Namespace), ReasonApplyFailed, err.Error())
		return nil, err
	}
	fail := func(reason, format string, args ...any) error {
		err := fmt.Errorf("resources[%d] %s/%s: %s", i, u.GetKind(), u.GetName(), fmt.Sprintf(format, args...))
		a.warnEvent(it, objectRefOf(u.Object, it.Namespace), reason, err.Error())
		return err
	}
	gvk := u.GroupVersionKind()
	mapping, err := a.restMapping(gvk)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fail(ReasonApplyFailed, "the cluster does not serve %s", gvk.GroupVersion().WithKind(gvk.Kind).String())
		}
		return nil, fail(ReasonApplyFailed, "look up kind: %v", err)
	}
	namespaced := mapping.Scope.Name() == meta.RESTScopeNameNamespace
	if err := placeNamespace(u, namespaced, it.Namespace, a.allowClusterScoped); err != nil {
		a.metrics.Applies.WithLabelValues("refused").Inc()
		return nil, fail(ReasonRefused, "refused: %v", err)
	}
	ref := &objRef{GVR: mapping.Resource, GVK: gvk, Namespace: u.GetNamespace(), Name: u.GetName()}
	rc := a.resource(mapping.Resource, u.GetNamespace())

	// Server-side apply with force would take over any object of that
	// name. Look first: what qonnect did not create is left alone.
	cur, err := rc.Get(ctx, u.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fail(ReasonApplyFailed, "read the current object: %v", apiMessage(err))
	case isNamespace(gvk) && cur.GetLabels()[fleet.LabelManagedBy] != fleet.ManagedByValue:
		a.log.Info("leaving the application's namespace as its owner made it", "namespace", u.GetName())
		return nil, nil
	case !isNamespace(gvk) && !ownedBy(cur, it):
		return nil, fail(ReasonRefused, "an object of that name exists and qonnect did not create it for %s/%s; leaving it alone", it.App, it.Component)
	}

	out, err := rc.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: fleet.FieldManager, Force: true})
	if err != nil {
		return nil, fail(ReasonApplyFailed, "%s", apiMessage(err))
	}
	a.addPruneType(mapping.Resource)
	if !quiet {
		a.recorder.Eventf(out, corev1.EventTypeNormal, ReasonApplied, "qonnect applied %s/%s generation %d", it.App, it.Component, it.Generation)
	}
	return ref, nil
}

// refsOf works out which objects a component has without applying it
// (what cannot be worked out is left out).
func (a *Agent) refsOf(it *apiv1.Assignment) []objRef {
	var refs []objRef
	for i, raw := range it.Resources {
		u, err := prepareObject(it, i, raw, nil)
		if err != nil {
			continue
		}
		m, err := a.mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
		if err != nil {
			continue
		}
		if placeNamespace(u, m.Scope.Name() == meta.RESTScopeNameNamespace, it.Namespace, a.allowClusterScoped) != nil {
			continue
		}
		refs = append(refs, objRef{GVR: m.Resource, GVK: u.GroupVersionKind(), Namespace: u.GetNamespace(), Name: u.GetName()})
	}
	return refs
}

func (a *Agent) resource(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return a.dyn.Resource(gvr)
	}
	return a.dyn.Resource(gvr).Namespace(ns)
}

// restMapping maps a kind to its resource. A kind the mapper does not know
// may be a CRD created since the mapper last looked, so it looks again,
// though not more often than mapperResetEvery: a manifest with a wrong
// kind, retried, must not make the agent rediscover the API each time.
func (a *Agent) restMapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err == nil || !meta.IsNoMatchError(err) {
		return m, err
	}
	a.mu.Lock()
	reset := time.Since(a.mapperReset) >= mapperResetEvery
	if reset {
		a.mapperReset = time.Now()
	}
	a.mu.Unlock()
	if !reset {
		return nil, err
	}
	a.mapper.Reset()
	if inv, ok := a.disco.(interface{ Invalidate() }); ok {
		inv.Invalidate()
	}
	return a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
}

const mapperResetEvery = 5 * time.Second

// ensureNamespace creates the application's namespace if it is missing,
// labelled as qonnect's. An existing one is not touched, and none is ever
// deleted: it may hold what others put there.
func (a *Agent) ensureNamespace(ctx context.Context, ns string) error {
	_, err := a.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %q: %s", ns, apiMessage(err))
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   ns,
		Labels: map[string]string{fleet.LabelManagedBy: fleet.ManagedByValue},
	}}
	created, err := a.kube.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{FieldManager: fleet.FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %q: %s", ns, apiMessage(err))
	}
	if err == nil {
		a.log.Info("namespace created", "namespace", ns)
		a.recorder.Eventf(created, corev1.EventTypeNormal, ReasonApplied, "qonnect created the namespace")
	}
	return nil
}

func isNamespace(gvk schema.GroupVersionKind) bool {
	return gvk.Group == "" && gvk.Kind == "Namespace"
}

// ownedBy says whether an existing object is this component's, by the
// labels qonnect puts on what it applies.
func ownedBy(u *unstructured.Unstructured, it *apiv1.Assignment) bool {
	l := u.GetLabels()
	return l[fleet.LabelManagedBy] == fleet.ManagedByValue && l[fleet.LabelApp] == it.App && l[fleet.LabelComponent] == it.Component
}

// apiMessage is the API server's own message for a failed call: what a
// user must read to fix the manifest.
func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}

// objectRefOf makes an Event reference for an object that may not exist
// or may not even be valid.
func objectRefOf(obj map[string]any, ns string) *corev1.ObjectReference {
	u := unstructured.Unstructured{Object: obj}
	r := &corev1.ObjectReference{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Name: u.GetName(), Namespace: ns}
	if r.Kind == "" {
		r.Kind = "Unknown"
	}
	if r.Name == "" {
		r.Name = "unnamed"
	}
	return r
}

// warnEvent records a Warning Event for a failed object. Failures are
// retried with back-off, and the recorder folds repeats into one Event.
func (a *Agent) warnEvent(it *apiv1.Assignment, ref *corev1.ObjectReference, reason, msg string) {
	a.recorder.Eventf(ref, corev1.EventTypeWarning, reason, "qonnect %s/%s generation %d: %s", it.App, it.Component, it.Generation, msg)
}
