package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/lead/forward"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/liveness"
	"qonnect.io/qonnect/lead/raftstore"
)

// fakeSchedule places every component on the first cluster of its tier.
func fakeSchedule(_ scheduler.Config, in scheduler.Input) []scheduler.Decision {
	var out []scheduler.Decision
	for _, c := range in.App.Spec.Components {
		d := scheduler.Decision{Component: c.Name, Action: scheduler.ActionPending,
			Placement: scheduler.Placement{Component: c.Name, Tier: c.Tier, Reason: "no cluster of tier " + string(c.Tier)}}
		for _, cl := range in.Clusters {
			if cl.Tier == c.Tier && !in.Down[cl.Name] {
				d.Action = scheduler.ActionPlace
				d.Placement.Cluster, d.Placement.Reason = cl.Name, ""
				d.Placement.Explanation = &scheduler.Explanation{Component: c.Name, Chosen: cl.Name, Summary: "first of its tier"}
				break
			}
		}
		out = append(out, d)
	}
	return out
}

// pkiSet is a CA and the TLS client configurations of a few identities.
type pkiSet struct {
	ca   *pki.CA
	pool *x509.CertPool
}

func newPKI(t testing.TB) *pkiSet {
	ca, err := pki.NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &pkiSet{ca: ca, pool: pool}
}

func (p *pkiSet) cert(t testing.TB, role pki.Role, name string) tls.Certificate {
	is, err := p.ca.Issue(pki.Request{Role: role, Name: name, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *pkiSet) clientTLS(t testing.TB, role pki.Role, name string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: p.pool, Certificates: []tls.Certificate{p.cert(t, role, name)}}
}

func (p *pkiSet) client(t testing.TB, role pki.Role, name string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: p.clientTLS(t, role, name)}}
}

// lead is one in-process lead: store, API server over mutual TLS.
type lead struct {
	store *raftstore.Store
	srv   *httptest.Server
	api   *Server
	url   string
}

// newLeads starts n leads over raft's in-memory transport, each with its
// API on 127.0.0.1 over mutual TLS, and waits for a leader.
func newLeads(t testing.TB, p *pkiSet, n int) []*lead {
	var leads []*lead
	var peers []raftstore.Peer
	var trans []*raft.InmemTransport
	for i := range n {
		id := fmt.Sprintf("lead%d", i)
		srv := httptest.NewUnstartedServer(nil)
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		trans = append(trans, tr)
		peers = append(peers, raftstore.Peer{ID: id, RaftAddr: string(addr), APIAddr: srv.Listener.Addr().String()})
		leads = append(leads, &lead{srv: srv, url: "https://" + srv.Listener.Addr().String()})
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	for i, l := range leads {
		s, err := raftstore.Open(raftstore.Config{ID: peers[i].ID, Transport: trans[i], APIAddr: peers[i].APIAddr, Peers: peers, Bootstrap: true,
			Tuning: raftstore.Tuning{HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		l.store = s
		l.api = New(Config{Store: s, Forwarder: forward.NewHTTP(p.clientTLS(t, pki.RoleLead, peers[i].ID), nil),
			Liveness: liveness.New(time.Now()), Schedule: fakeSchedule, APIAddr: peers[i].APIAddr, Registerer: prometheus.NewRegistry()})
		l.srv.Config.Handler = l.api
		l.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{p.cert(t, pki.RoleLead, peers[i].ID)},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
		l.srv.StartTLS()
	}
	t.Cleanup(func() {
		for _, l := range leads {
			l.srv.Close()
			_ = l.store.Close()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range leads {
			if l.store.IsLeader() && l.store.LeaderAPI() != "" {
				return leads
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func leaderOf(leads []*lead) (*lead, *lead) {
	var l, f *lead
	for _, x := range leads {
		if x.store.IsLeader() {
			l = x
		} else if f == nil {
			f = x
		}
	}
	return l, f
}

type answer struct {
	status int
	body   []byte
	err    apiv1.Error
}

func call(t testing.TB, c *http.Client, method, url string, body any) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: b}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &a.err); err != nil {
			t.Fatalf("%s %s: %d with a non-JSON error body %q", method, url, resp.StatusCode, b)
		}
	}
	return a
}

func (a answer) into(t testing.TB, v any) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

const goodSpec = `{"apiVersion":"qonnect.io/v1alpha1","kind":"Application","metadata":{"name":"shop"},
"spec":{"qos":{"energy":1},"components":[{"name":"web","tier":"edge","resources":[
{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}]}]}}`

func regReq(name string) apiv1.RegisterRequest {
	return apiv1.RegisterRequest{Cluster: fleet.Cluster{Name: name, Tier: fleet.TierEdge, Endpoint: name + ".example:443"}}
}

// fixture: one lead (the leader), an agent for edge-a registered, users.
type fixture struct {
	l      *lead
	p      *pkiSet
	agentA *http.Client
	agentB *http.Client
	user   *http.Client
}

func newFixture(t *testing.T) *fixture {
	p := newPKI(t)
	leads := newLeads(t, p, 1)
	f := &fixture{l: leads[0], p: p, agentA: p.client(t, pki.RoleAgent, "edge-a"), agentB: p.client(t, pki.RoleAgent, "edge-b"), user: p.client(t, pki.RoleUser, "alice")}
	if a := call(t, f.agentA, "POST", f.l.url+"/v1/clusters", regReq("edge-a")); a.status != 200 {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	return f
}

func (f *fixture) hash() string {
	h, _ := f.l.store.KB().Hash()
	return h
}

func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t)
	u, a := f.user, f.agentA
	big := `{"cluster":{"name":"edge-a","tier":"edge","endpoint":"` + strings.Repeat("x", apiv1.MaxBodyBytes) + `"}}`
	badWeight := strings.Replace(goodSpec, `"energy":1`, `"energy":2`, 1)
	unknownSpecField := strings.Replace(goodSpec, `"kind":"Application",`, `"kind":"Application","colour":"red",`, 1)
	badComponent := strings.Replace(goodSpec, `"tier":"edge"`, `"tier":"moon"`, 1)
	upperName := strings.Replace(goodSpec, `"name":"shop"`, `"name":"Shop!"`, 1)
	clusterRole := strings.Replace(goodSpec, `"kind":"Deployment"`, `"kind":"ClusterRole"`, 1)
	for _, tc := range []struct {
		name         string
		c            *http.Client
		method, path string
		body         any
		status       int
		code, field  string
	}{
		{"malformed JSON", a, "POST", "/v1/clusters", `{"cluster":`, 400, apiv1.CodeBadRequest, ""},
		{"unknown field", a, "POST", "/v1/clusters", `{"cluster":{"name":"edge-a","tier":"edge"},"extra":1}`, 400, apiv1.CodeBadRequest, "extra"},
		{"trailing data", a, "POST", "/v1/clusters", `{"cluster":{"name":"edge-a","tier":"edge"}} {}`, 400, apiv1.CodeBadRequest, ""},
		{"empty body", a, "POST", "/v1/clusters", ``, 400, apiv1.CodeBadRequest, ""},
		{"wrong type", a, "POST", "/v1/clusters", `{"cluster":{"name":7}}`, 400, apiv1.CodeBadRequest, "cluster.name"},
		{"oversized", a, "POST", "/v1/clusters", big, 413, apiv1.CodeTooLarge, ""},
		{"oversized spec", u, "POST", "/v1/apps", strings.Repeat(" ", apiv1.MaxBodyBytes+10), 413, apiv1.CodeTooLarge, ""},
		{"invalid tier", a, "POST", "/v1/clusters", `{"cluster":{"name":"edge-a","tier":"moon"}}`, 400, apiv1.CodeBadRequest, "cluster.tier"},
		{"invalid role", a, "POST", "/v1/clusters", `{"cluster":{"name":"edge-a","tier":"edge","role":"king"}}`, 400, apiv1.CodeBadRequest, "cluster.role"},
		{"invalid label", a, "POST", "/v1/clusters", `{"cluster":{"name":"edge-a","tier":"edge","labels":{"bad key!":"x"}}}`, 400, apiv1.CodeBadRequest, "cluster.labels"},
		{"invalid name in path", a, "PUT", "/v1/clusters/Edge_A/status", `{"statuses":[]}`, 400, apiv1.CodeBadRequest, "name"},
		{"invalid node name", a, "PUT", "/v1/clusters/edge-a/nodes", `{"nodes":[{"name":"Bad Node"}],"full":true}`, 400, apiv1.CodeBadRequest, "nodes[0].name"},
		{"negative resources", a, "PUT", "/v1/clusters/edge-a/nodes", `{"nodes":[{"name":"n1","allocatable":{"milliCPU":-1}}]}`, 400, apiv1.CodeBadRequest, "nodes[0].allocatable"},
		{"node of another cluster", a, "PUT", "/v1/clusters/edge-a/nodes", `{"nodes":[{"name":"n1","cluster":"edge-b"}]}`, 400, apiv1.CodeBadRequest, "nodes[0].cluster"},
		{"duplicate node", a, "PUT", "/v1/clusters/edge-a/nodes", `{"nodes":[{"name":"n1"},{"name":"n1"}]}`, 400, apiv1.CodeBadRequest, "nodes[1].name"},
		{"unknown phase", a, "PUT", "/v1/clusters/edge-a/status", `{"statuses":[{"app":"shop","component":"web","phase":"Dancing"}]}`, 400, apiv1.CodeBadRequest, "statuses[0].phase"},
		{"status of another cluster", a, "PUT", "/v1/clusters/edge-a/status", `{"statuses":[{"app":"shop","component":"web","cluster":"edge-b","phase":"Healthy"}]}`, 400, apiv1.CodeBadRequest, "statuses[0].cluster"},
		{"bad spec weight", u, "POST", "/v1/apps", badWeight, 400, apiv1.CodeBadRequest, "spec.qos.energy"},
		{"bad spec tier", u, "POST", "/v1/apps", badComponent, 400, apiv1.CodeBadRequest, "spec.components[0].tier"},
		{"bad app name", u, "POST", "/v1/apps", upperName, 400, apiv1.CodeBadRequest, "metadata.name"},
		{"denied kind", u, "POST", "/v1/apps", clusterRole, 400, apiv1.CodeBadRequest, "spec.components[0].resources[0].kind"},
		{"unknown spec field", u, "POST", "/v1/apps", unknownSpecField, 400, apiv1.CodeBadRequest, "colour"},
		{"spec not JSON", u, "POST", "/v1/apps", `{{{`, 400, apiv1.CodeBadRequest, ""},
		{"bad dry run", u, "POST", "/v1/apps?dryRun=true", badWeight, 400, apiv1.CodeBadRequest, "spec.qos.energy"},
		{"invalid app name in path", u, "DELETE", "/v1/apps/NOT_OK", nil, 400, apiv1.CodeBadRequest, "name"},
		{"delete missing app", u, "DELETE", "/v1/apps/ghost", nil, 404, apiv1.CodeNotFound, ""},
		{"get missing app", u, "GET", "/v1/apps/ghost", nil, 404, apiv1.CodeNotFound, ""},
		{"unregistered cluster", f.agentB, "PUT", "/v1/clusters/edge-b/status", `{"statuses":[]}`, 404, apiv1.CodeNotFound, ""},
		{"bad index", a, "GET", "/v1/clusters/edge-a/assignments?index=-1", nil, 400, apiv1.CodeBadRequest, "index"},
		{"bad wait", u, "GET", "/v1/watch?index=1&wait=forever", nil, 400, apiv1.CodeBadRequest, "wait"},
		{"bad member", u, "POST", "/v1/raft/members", `{"id":"lead9","raftAddress":"nope","apiAddress":"h:1"}`, 400, apiv1.CodeBadRequest, "raftAddress"},
		{"wrong method", u, "PATCH", "/v1/apps", `{}`, 405, apiv1.CodeBadRequest, ""},
		{"no such endpoint", u, "GET", "/v2/everything", nil, 404, apiv1.CodeNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.hash()
			ans := call(t, tc.c, tc.method, f.l.url+tc.path, tc.body)
			if ans.status != tc.status || ans.err.Code != tc.code || ans.err.Field != tc.field {
				t.Fatalf("got %d %+v, want %d %s field %q", ans.status, ans.err, tc.status, tc.code, tc.field)
			}
			if ans.err.Message == "" {
				t.Fatal("error without a message")
			}
			if after := f.hash(); after != before {
				t.Fatal("a rejected request changed the knowledge base")
			}
		})
	}
}

func TestAuthorizationByIdentity(t *testing.T) {
	f := newFixture(t)
	other := f.p.client(t, pki.RoleAgent, "edge-b")
	for _, tc := range []struct {
		name         string
		c            *http.Client
		method, path string
		body         any
	}{
		{"agent registers another cluster", f.agentA, "POST", "/v1/clusters", regReq("edge-b")},
		{"agent reports status for another cluster", other, "PUT", "/v1/clusters/edge-a/status", `{"statuses":[]}`},
		{"agent reports nodes for another cluster", other, "PUT", "/v1/clusters/edge-a/nodes", `{"nodes":[{"name":"evil"}],"full":true}`},
		{"agent reads another cluster's assignments", other, "GET", "/v1/clusters/edge-a/assignments", nil},
		{"agent applies an application", f.agentA, "POST", "/v1/apps", goodSpec},
		{"agent deletes an application", f.agentA, "DELETE", "/v1/apps/shop", nil},
		{"agent lists applications", f.agentA, "GET", "/v1/apps", nil},
		{"agent adds a raft member", f.agentA, "POST", "/v1/raft/members", `{"id":"x","raftAddress":"h:1","apiAddress":"h:2"}`},
		{"user registers a cluster", f.user, "POST", "/v1/clusters", regReq("edge-c")},
		{"user reports status", f.user, "PUT", "/v1/clusters/edge-a/status", `{"statuses":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.hash()
			ans := call(t, tc.c, tc.method, f.l.url+tc.path, tc.body)
			if ans.status != http.StatusForbidden || ans.err.Code != apiv1.CodeForbidden {
				t.Fatalf("got %d %s", ans.status, ans.body)
			}
			if f.hash() != before {
				t.Fatal("a forbidden request changed the knowledge base")
			}
		})
	}
	// Allowed: a user reads assignments, an agent reads raft status.
	if a := call(t, f.user, "GET", f.l.url+"/v1/clusters/edge-a/assignments", nil); a.status != 200 {
		t.Fatalf("user reading assignments: %d", a.status)
	}
	if a := call(t, f.agentA, "GET", f.l.url+"/v1/raft", nil); a.status != 200 {
		t.Fatalf("agent reading raft status: %d", a.status)
	}
}

func TestForwardedIdentityNeedsALeadCertificate(t *testing.T) {
	f := newFixture(t)
	// A user pretending to relay for agent edge-a.
	req, _ := http.NewRequest("PUT", f.l.url+"/v1/clusters/edge-a/status", strings.NewReader(`{"statuses":[]}`))
	req.Header.Set(forward.HeaderIdentity, "qonnect:agent/edge-a")
	resp, err := f.user.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged forwarded identity: %d", resp.StatusCode)
	}
}

// TestHandshakeRejections: a client without a valid client certificate of
// the federation CA never reaches the API — the TLS handshake fails, so
// there is no HTTP status at all (not even a 403). internal/pki tests the
// server-side reasons; this checks the API's listener end to end.
func TestHandshakeRejections(t *testing.T) {
	f := newFixture(t)
	foreign := newPKI(t)
	expired, err := f.p.ca.Issue(pki.Request{Role: pki.RoleUser, Name: "alice", NotBefore: time.Now().Add(-48 * time.Hour), TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	expiredPair, err := tls.X509KeyPair(expired.CertPEM, expired.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no client certificate", nil},
		{"certificate from another CA", []tls.Certificate{foreign.cert(t, pki.RoleUser, "mallory")}},
		{"lead certificate from another CA", []tls.Certificate{foreign.cert(t, pki.RoleLead, "lead0")}},
		{"expired certificate", []tls.Certificate{expiredPair}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.hash()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: f.p.pool, Certificates: tc.certs}}}
			resp, err := c.Post(f.l.url+"/v1/apps", "application/json", strings.NewReader(goodSpec))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("answered with HTTP %d; want a refused handshake", resp.StatusCode)
			}
			if !strings.Contains(err.Error(), "tls:") {
				t.Fatalf("error %v is not a TLS refusal", err)
			}
			if f.hash() != before {
				t.Fatal("a refused client changed the knowledge base")
			}
		})
	}
}

func TestAgentAndUserFlow(t *testing.T) {
	f := newFixture(t)
	base := f.l.url
	var reg apiv1.RegisterResponse
	call(t, f.agentA, "POST", base+"/v1/clusters", regReq("edge-a")).into(t, &reg)
	if len(reg.Leads) != 1 || reg.HeartbeatInterval <= 0 {
		t.Fatalf("register response %+v", reg)
	}
	nodes := apiv1.NodeReport{Full: true, Nodes: []fleet.Node{{Name: "n1", Ready: true, Allocatable: fleet.Resources{MilliCPU: 4000}, Labels: map[string]string{fleet.LabelEnergy: "0.1"}}}}
	var ack1, ack2 apiv1.Ack
	call(t, f.agentA, "PUT", base+"/v1/clusters/edge-a/nodes", nodes).into(t, &ack1)
	call(t, f.agentA, "PUT", base+"/v1/clusters/edge-a/nodes", nodes).into(t, &ack2)
	if ack2.Index != ack1.Index {
		t.Fatalf("an unchanged node report was replicated (%d → %d)", ack1.Index, ack2.Index)
	}

	// Dry run: placements shown, nothing stored.
	before := f.hash()
	var dry apiv1.ApplyResult
	call(t, f.user, "POST", base+"/v1/apps?dryRun=true", goodSpec).into(t, &dry)
	if !dry.DryRun || dry.Result != "created" || len(dry.App.Placements) != 1 || dry.App.Placements[0].Cluster != "edge-a" || dry.App.Placements[0].Explanation == nil {
		t.Fatalf("dry run = %+v", dry)
	}
	if f.hash() != before {
		t.Fatal("dry run stored something")
	}

	var res apiv1.ApplyResult
	call(t, f.user, "POST", base+"/v1/apps", goodSpec).into(t, &res)
	if res.Result != "created" || res.App.Generation != 1 || res.Index == 0 {
		t.Fatalf("apply = %+v", res)
	}
	call(t, f.user, "POST", base+"/v1/apps", goodSpec).into(t, &res)
	if res.Result != "unchanged" || res.App.Generation != 1 {
		t.Fatalf("re-apply = %+v", res)
	}
	yamlSpec := "apiVersion: qonnect.io/v1alpha1\nkind: Application\nmetadata: {name: yml}\nspec:\n  components:\n  - name: c\n    tier: fog\n    resources:\n    - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n"
	call(t, f.user, "POST", base+"/v1/apps", yamlSpec).into(t, &res)
	if res.Result != "created" {
		t.Fatalf("YAML apply = %+v", res)
	}

	var list apiv1.AppList
	call(t, f.user, "GET", base+"/v1/apps", nil).into(t, &list)
	if len(list.Items) != 2 {
		t.Fatalf("apps = %+v", list)
	}
	var clusters apiv1.ClusterList
	call(t, f.user, "GET", base+"/v1/clusters?consistent=true", nil).into(t, &clusters)
	if len(clusters.Items) != 1 || clusters.Items[0].Nodes != 1 || clusters.Items[0].ReadyNodes != 1 || !clusters.Items[0].Alive {
		t.Fatalf("clusters = %+v", clusters)
	}
	var nl apiv1.NodeList
	call(t, f.user, "GET", base+"/v1/nodes?cluster=edge-a", nil).into(t, &nl)
	if len(nl.Items) != 1 {
		t.Fatalf("nodes = %+v", nl)
	}
	var rs apiv1.RaftStatus
	call(t, f.user, "GET", base+"/v1/raft?consistent=true", nil).into(t, &rs)
	if rs.State != "Leader" || rs.KBHash == "" || len(rs.Members) != 1 {
		t.Fatalf("raft status = %+v", rs)
	}
	var ack apiv1.Ack
	call(t, f.user, "DELETE", base+"/v1/apps/yml", nil).into(t, &ack)
	if a := call(t, f.user, "GET", base+"/v1/apps/yml", nil); a.status != 404 {
		t.Fatalf("deleted app still there: %d", a.status)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if a := call(t, f.user, "GET", base+p, nil); a.status != 200 {
			t.Fatalf("%s: %d", p, a.status)
		}
	}
	if a := call(t, f.user, "GET", base+"/metrics", nil); !strings.Contains(string(a.body), "qonnect_api_requests_total") {
		t.Fatal("metrics missing")
	}
}

func TestAssignmentsBlockingQuery(t *testing.T) {
	f := newFixture(t)
	base := f.l.url
	var first apiv1.Assignments
	call(t, f.agentA, "GET", base+"/v1/clusters/edge-a/assignments", nil).into(t, &first)
	if first.Index == 0 || len(first.Items) != 0 || len(first.Leads) == 0 {
		t.Fatalf("first poll = %+v", first)
	}
	// Nothing changes: the poll waits and returns the same index.
	start := time.Now()
	var same apiv1.Assignments
	call(t, f.agentA, "GET", fmt.Sprintf("%s/v1/clusters/edge-a/assignments?index=%d&wait=300ms", base, first.Index), nil).into(t, &same)
	if same.Index != first.Index || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("idle poll returned %d after %v", same.Index, time.Since(start))
	}

	var wg sync.WaitGroup
	var got apiv1.Assignments
	var took time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		call(t, f.agentA, "GET", fmt.Sprintf("%s/v1/clusters/edge-a/assignments?index=%d&wait=10s", base, first.Index), nil).into(t, &got)
		took = time.Since(start)
	}()
	time.Sleep(100 * time.Millisecond)
	var res apiv1.ApplyResult
	call(t, f.user, "POST", base+"/v1/apps", goodSpec).into(t, &res)
	ctx := context.Background()
	if _, err := f.l.store.Apply(ctx, kb.TypeSetPlacements, kb.SetPlacements{App: "shop", Generation: 1,
		Placements: []scheduler.Placement{{Component: "web", Cluster: "edge-a", Nodes: []string{"n1"}, Generation: 1}}}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got.Index <= first.Index || len(got.Items) != 1 || got.Items[0].Component != "web" || got.Items[0].Addresses["web"] != "edge-a.example:443" {
		t.Fatalf("woken poll = %+v", got)
	}
	if took > 2*time.Second {
		t.Fatalf("assignment took %v to reach the agent", took)
	}
	t.Logf("assignment reached the polling agent %v after the poll began", took)

	// The status report is only replicated when it changes.
	var a1, a2 apiv1.Ack
	rep := apiv1.StatusReport{Statuses: []fleet.ComponentStatus{{App: "shop", Component: "web", Generation: 1, Phase: fleet.PhaseHealthy}}}
	call(t, f.agentA, "PUT", base+"/v1/clusters/edge-a/status", rep).into(t, &a1)
	call(t, f.agentA, "PUT", base+"/v1/clusters/edge-a/status", rep).into(t, &a2)
	if a1.Index != a2.Index {
		t.Fatal("an unchanged status (a heartbeat) was replicated")
	}
	var app apiv1.App
	call(t, f.user, "GET", base+"/v1/apps/shop", nil).into(t, &app)
	if len(app.Statuses) != 1 || app.Statuses[0].Phase != fleet.PhaseHealthy {
		t.Fatalf("app statuses = %+v", app.Statuses)
	}

	// Watch wakes on any KB change.
	var w apiv1.WatchResult
	idx := f.l.store.KB().Index()
	go func() {
		time.Sleep(50 * time.Millisecond)
		call(t, f.user, "DELETE", base+"/v1/apps/shop", nil)
	}()
	call(t, f.user, "GET", fmt.Sprintf("%s/v1/watch?index=%d&wait=10s", base, idx), nil).into(t, &w)
	if w.Index <= idx {
		t.Fatalf("watch = %+v", w)
	}
}

func TestFollowerForwardsWritesAndReadsConsistently(t *testing.T) {
	p := newPKI(t)
	leads := newLeads(t, p, 3)
	leader, follower := leaderOf(leads)
	user := p.client(t, pki.RoleUser, "alice")
	agent := p.client(t, pki.RoleAgent, "edge-a")

	var reg apiv1.RegisterResponse
	call(t, agent, "POST", follower.url+"/v1/clusters", regReq("edge-a")).into(t, &reg)
	if len(reg.Leads) != 3 {
		t.Fatalf("agent learned leads %v", reg.Leads)
	}
	var res apiv1.ApplyResult
	call(t, user, "POST", follower.url+"/v1/apps", goodSpec).into(t, &res)
	if res.Result != "created" {
		t.Fatalf("forwarded apply = %+v", res)
	}
	// Consistent read on the follower sees the write at once.
	var app apiv1.App
	call(t, user, "GET", follower.url+"/v1/apps/shop?consistent=true", nil).into(t, &app)
	if app.Generation != 1 {
		t.Fatalf("app on follower = %+v", app)
	}
	// The leader heard the (forwarded) heartbeat; an agent identity was
	// kept across the hop: agent B via the follower is still refused.
	if !leader.api.cfg.Liveness.Alive("edge-a", time.Now(), time.Minute) {
		t.Fatal("forwarded registration did not reach the leader's liveness")
	}
	if a := call(t, p.client(t, pki.RoleAgent, "edge-b"), "PUT", follower.url+"/v1/clusters/edge-a/status", `{"statuses":[]}`); a.status != 403 {
		t.Fatalf("agent B through the follower: %d", a.status)
	}
	var rs apiv1.RaftStatus
	call(t, user, "GET", follower.url+"/v1/raft", nil).into(t, &rs)
	if rs.State != "Follower" || rs.LeaderAPI != strings.TrimPrefix(leader.url, "https://") {
		t.Fatalf("follower's raft status = %+v", rs)
	}
}
