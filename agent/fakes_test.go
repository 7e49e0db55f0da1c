package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/pki"
)

// testLogger logs to the test's output when -v, so a failing run shows
// what the agent did.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resettableMapper is a static RESTMapper that counts resets.
type resettableMapper struct {
	*meta.DefaultRESTMapper
	resets atomic.Int32
}

func (m *resettableMapper) Reset() { m.resets.Add(1) }

func newTestMapper() *resettableMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, k := range []struct {
		gvk        schema.GroupVersionKind
		namespaced bool
	}{
		{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, true},
		{schema.GroupVersionKind{Version: "v1", Kind: "Service"}, true},
		{schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, true},
		{schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, true},
		{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, false},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, true},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, true},
		{schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, true},
		{schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}, true},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, false},
	} {
		scope := meta.RESTScopeRoot
		if k.namespaced {
			scope = meta.RESTScopeNamespace
		}
		m.Add(k.gvk, scope)
	}
	return &resettableMapper{DefaultRESTMapper: m}
}

// kubeEnv is a fake cluster: a dynamic client the agent applies through
// and a typed clientset its informers watch. Server-side apply is faked as
// create-or-replace that records qonnect's field manager, and every
// applied object of a built-in kind is mirrored into the typed clientset
// (keeping the status a test has set there), so the agent sees what it
// applied the way it would in a cluster.
type kubeEnv struct {
	kube   *kubefake.Clientset
	dyn    *dynamicfake.FakeDynamicClient
	mapper *resettableMapper
	events *record.FakeRecorder
	// disco, if set, lets the agent look through every listed resource type
	// when removing (as after a restart).
	disco discovery.DiscoveryInterface

	mu sync.Mutex
	// reject, if set, makes the fake API server refuse an applied object.
	reject  func(u *unstructured.Unstructured) error
	deletes []string // namespace/name of every delete
}

func newKubeEnv(t *testing.T, objs ...runtime.Object) *kubeEnv {
	e := &kubeEnv{
		kube:   kubefake.NewClientset(objs...),
		dyn:    dynamicfake.NewSimpleDynamicClient(scheme.Scheme),
		mapper: newTestMapper(),
		events: record.NewFakeRecorder(1000),
	}
	e.dyn.PrependReactor("patch", "*", e.apply)
	e.dyn.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteActionImpl)
		e.mu.Lock()
		e.deletes = append(e.deletes, d.GetNamespace()+"/"+d.GetName())
		e.mu.Unlock()
		_ = e.kube.Tracker().Delete(d.GetResource(), d.GetNamespace(), d.GetName())
		return false, nil, nil // the tracker's own reaction deletes it
	})
	return e
}

func (e *kubeEnv) setReject(f func(u *unstructured.Unstructured) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reject = f
}

func (e *kubeEnv) deleted() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.deletes...)
}

func (e *kubeEnv) apply(a k8stesting.Action) (bool, runtime.Object, error) {
	p, ok := a.(k8stesting.PatchActionImpl)
	if !ok || p.GetPatchType() != types.ApplyPatchType {
		return false, nil, nil
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(p.GetPatch(), &u.Object); err != nil {
		return true, nil, apierrors.NewBadRequest(err.Error())
	}
	e.mu.Lock()
	reject := e.reject
	e.mu.Unlock()
	if reject != nil {
		if err := reject(u); err != nil {
			return true, nil, err
		}
	}
	gvr, ns := p.GetResource(), p.GetNamespace()
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{
		Manager: p.PatchOptions.FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: u.GetAPIVersion(),
	}})
	tr := e.dyn.Tracker()
	cur, err := tr.Get(gvr, ns, u.GetName())
	switch {
	case apierrors.IsNotFound(err):
		u.SetUID(types.UID(rand.String(12)))
		u.SetResourceVersion("1")
		u.SetGeneration(1)
		err = tr.Create(gvr, u, ns)
	case err != nil:
		return true, nil, err
	default:
		cm, _ := meta.Accessor(cur)
		u.SetUID(cm.GetUID())
		rv, _ := strconv.Atoi(cm.GetResourceVersion())
		u.SetResourceVersion(strconv.Itoa(rv + 1))
		u.SetGeneration(cm.GetGeneration() + 1)
		err = tr.Update(gvr, u, ns)
	}
	if err != nil {
		return true, nil, err
	}
	e.mirror(gvr, ns, u)
	return true, u.DeepCopy(), nil
}

// mirror copies an applied object into the typed clientset.
func (e *kubeEnv) mirror(gvr schema.GroupVersionResource, ns string, u *unstructured.Unstructured) {
	typed, err := scheme.Scheme.New(u.GroupVersionKind())
	if err != nil {
		return // not a built-in kind
	}
	obj := u.DeepCopy()
	tr := e.kube.Tracker()
	if cur, err := tr.Get(gvr, ns, u.GetName()); err == nil {
		if m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cur); err == nil {
			if st, ok := m["status"]; ok {
				obj.Object["status"] = st
			}
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, typed); err == nil {
			_ = tr.Update(gvr, typed, ns)
		}
		return
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, typed); err == nil {
		_ = tr.Create(gvr, typed, ns)
	}
}

// get returns an object from the fake cluster, or nil.
func (e *kubeEnv) get(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	var ri = e.dyn.Resource(gvr)
	var u *unstructured.Unstructured
	var err error
	if ns == "" {
		u, err = ri.Get(context.Background(), name, metav1.GetOptions{})
	} else {
		u, err = ri.Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	}
	if err != nil {
		return nil
	}
	return u
}

var (
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

// fakeLead is an in-process lead speaking apiv1: it records what the agent
// reports and serves assignments as a blocking query. It can be stopped and
// started again on the same address, to play a lead that goes away.
type fakeLead struct {
	t    testing.TB
	addr string
	// tls, when set, makes the lead serve mutual TLS and check, as the real
	// lead does, that the client certificate names the cluster it acts for.
	tls *tls.Config

	mu       sync.Mutex
	srv      *http.Server
	index    uint64
	items    []apiv1.Assignment
	leads    []string
	changed  chan struct{}
	forget   bool // answer NotFound to the next status report
	regs     int
	nodes    []apiv1.NodeReport
	statuses map[compKey]fleet.ComponentStatus
	reports  int // status reports, heartbeats included
	polls    int
	hb       time.Duration
}

func newFakeLead(t testing.TB) *fakeLead { return newFakeLeadTLS(t, nil) }

// newFakeLeadTLS starts a fake lead; with tc, it serves mutual TLS.
func newFakeLeadTLS(t testing.TB, tc *tls.Config) *fakeLead {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &fakeLead{t: t, addr: ln.Addr().String(), tls: tc, changed: make(chan struct{}), statuses: map[compKey]fleet.ComponentStatus{}, index: 1}
	l.serve(ln)
	t.Cleanup(l.stop)
	return l
}

func (l *fakeLead) url() string {
	if l.tls != nil {
		return "https://" + l.addr
	}
	return "http://" + l.addr
}

// authorize plays the lead's identity check: an agent acts only for the
// cluster its certificate names.
func (l *fakeLead) authorize(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			id, err := pki.PeerIdentity(r.TLS)
			name := r.PathValue("name")
			if r.Method == http.MethodPost && name == "" {
				var req apiv1.RegisterRequest
				body, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(body, &req)
				name = req.Cluster.Name
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			if err != nil || id.Role != pki.RoleAgent || id.Name != name {
				writeJSON(w, 403, apiv1.Error{Code: apiv1.CodeForbidden, Message: fmt.Sprintf("%v may not act for cluster %q", id, name)})
				return
			}
		}
		next(w, r)
	}
}

func (l *fakeLead) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/clusters", l.authorize(l.register))
	mux.HandleFunc("PUT /v1/clusters/{name}/nodes", l.authorize(l.reportNodes))
	mux.HandleFunc("PUT /v1/clusters/{name}/status", l.authorize(l.reportStatus))
	mux.HandleFunc("GET /v1/clusters/{name}/assignments", l.authorize(l.assignments))
	srv := &http.Server{Handler: mux, TLSConfig: l.tls, ErrorLog: log.New(io.Discard, "", 0)}
	l.mu.Lock()
	l.srv = srv
	l.mu.Unlock()
	if l.tls != nil {
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		return
	}
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the lead's listener and every connection, as a killed lead.
func (l *fakeLead) stop() {
	l.mu.Lock()
	srv := l.srv
	l.srv = nil
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// start serves again on the same address.
func (l *fakeLead) start() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", l.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatalf("restart fake lead on %s: %v", l.addr, err)
	}
	l.serve(ln)
}

func (l *fakeLead) set(items ...apiv1.Assignment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = items
	l.index++
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *fakeLead) status(app, comp string) (fleet.ComponentStatus, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.statuses[compKey{app, comp}]
	return s, ok
}

func (l *fakeLead) counts() (regs, reports, polls, nodeReports int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.regs, l.reports, l.polls, len(l.nodes)
}

func (l *fakeLead) nodeReports() []apiv1.NodeReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]apiv1.NodeReport(nil), l.nodes...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (l *fakeLead) register(w http.ResponseWriter, r *http.Request) {
	var req apiv1.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Cluster.Name == "" {
		writeJSON(w, 400, apiv1.Error{Code: apiv1.CodeBadRequest, Message: "bad register"})
		return
	}
	l.mu.Lock()
	l.regs++
	resp := apiv1.RegisterResponse{Index: l.index, Leads: l.leads, HeartbeatInterval: l.hb}
	l.mu.Unlock()
	writeJSON(w, 200, resp)
}

func (l *fakeLead) reportNodes(w http.ResponseWriter, r *http.Request) {
	var rep apiv1.NodeReport
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		writeJSON(w, 400, apiv1.Error{Code: apiv1.CodeBadRequest, Message: err.Error()})
		return
	}
	l.mu.Lock()
	l.nodes = append(l.nodes, rep)
	l.mu.Unlock()
	writeJSON(w, 200, apiv1.Ack{Index: 1})
}

func (l *fakeLead) reportStatus(w http.ResponseWriter, r *http.Request) {
	var rep apiv1.StatusReport
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		writeJSON(w, 400, apiv1.Error{Code: apiv1.CodeBadRequest, Message: err.Error()})
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.forget {
		l.forget = false
		writeJSON(w, 404, apiv1.Error{Code: apiv1.CodeNotFound, Message: "cluster not registered"})
		return
	}
	l.reports++
	for _, s := range rep.Statuses {
		l.statuses[compKey{s.App, s.Component}] = s
	}
	writeJSON(w, 200, apiv1.Ack{Index: 1})
}

func (l *fakeLead) assignments(w http.ResponseWriter, r *http.Request) {
	idx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil {
		wait = apiv1.DefaultWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	l.mu.Lock()
	l.polls++
	l.mu.Unlock()
	for {
		l.mu.Lock()
		if idx == 0 || l.index > idx {
			out := apiv1.Assignments{Index: l.index, Items: append([]apiv1.Assignment{}, l.items...), Leads: l.leads}
			l.mu.Unlock()
			writeJSON(w, 200, out)
			return
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			l.mu.Lock()
			out := apiv1.Assignments{Index: l.index, Items: append([]apiv1.Assignment{}, l.items...), Leads: l.leads}
			l.mu.Unlock()
			writeJSON(w, 200, out)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// startAgent runs an agent against the fake cluster and leads until the
// test ends.
func startAgent(t *testing.T, e *kubeEnv, cfg Config, leads ...*fakeLead) *Agent {
	t.Helper()
	var addrs []string
	for _, l := range leads {
		addrs = append(addrs, l.url())
	}
	lc, err := leadclient.New(leadclient.Config{Addresses: addrs, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.Name == "" {
		cfg.Cluster = fleet.Cluster{Name: "edge-1", Tier: fleet.TierEdge, Role: fleet.RoleMember}
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 20 * time.Millisecond
	}
	if cfg.Wait == 0 {
		cfg.Wait = 2 * time.Second
	}
	cfg.Seeds = addrs
	a, err := New(cfg, Deps{
		Lead: lc, Kube: e.kube, Dynamic: e.dyn, Mapper: e.mapper, Recorder: e.events,
		Discovery: e.disco, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("agent Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop within 10s")
		}
	})
	return a
}

// staticDiscovery serves a fixed list of preferred resources (the fake
// discovery client serves none).
type staticDiscovery struct {
	*fakediscovery.FakeDiscovery
	lists []*metav1.APIResourceList
}

func (d *staticDiscovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	return d.lists, nil
}

func newStaticDiscovery(e *kubeEnv) *staticDiscovery {
	verbs := metav1.Verbs{"get", "list", "watch", "create", "update", "patch", "delete"}
	return &staticDiscovery{
		FakeDiscovery: &fakediscovery.FakeDiscovery{Fake: &e.kube.Fake},
		lists: []*metav1.APIResourceList{
			{GroupVersion: "v1", APIResources: []metav1.APIResource{
				{Name: "configmaps", Namespaced: true, Kind: "ConfigMap", Verbs: verbs},
				{Name: "services", Namespaced: true, Kind: "Service", Verbs: verbs},
				{Name: "pods/log", Namespaced: true, Kind: "Pod", Verbs: metav1.Verbs{"get"}},
				{Name: "events", Namespaced: true, Kind: "Event", Verbs: verbs},
			}},
			{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
				{Name: "deployments", Namespaced: true, Kind: "Deployment", Verbs: verbs},
			}},
		},
	}
}
