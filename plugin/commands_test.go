package plugin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
)

// TestGolden runs each command against the fake lead and compares its
// output with testdata/NAME.golden.
func TestGolden(t *testing.T) {
	// Machine-readable goldens leave the placement explanations out: their
	// shape is the scheduler's, which has its own tests; the rest is this
	// plugin's contract.
	cases := []struct {
		name string
		args []string
	}{
		{"get-apps", []string{"get", "apps"}},
		{"get-apps-wide", []string{"get", "applications", "-o", "wide"}},
		{"get-apps-json", []string{"get", "apps", "-o", "json"}},
		{"get-apps-yaml", []string{"get", "app", "-o", "yaml"}},
		{"get-apps-name", []string{"get", "apps", "-o", "name"}},
		{"get-app-single-json", []string{"get", "app", "bookinfo", "-o", "json"}},
		{"get-app-slash-name", []string{"get", "application.qonnect.io/bookinfo", "-o", "name"}},
		{"get-apps-no-headers", []string{"get", "apps", "--no-headers"}},
		{"get-clusters", []string{"get", "clusters"}},
		{"get-clusters-wide", []string{"get", "cluster", "-o", "wide"}},
		{"get-clusters-yaml", []string{"get", "clusters", "-o", "yaml"}},
		{"get-nodes", []string{"get", "nodes"}},
		{"get-nodes-wide", []string{"get", "node", "-o", "wide"}},
		{"get-nodes-of-cluster", []string{"get", "nodes", "--cluster-name", "cloud-energy"}},
		{"get-leads", []string{"get", "leads"}},
		{"get-leads-wide", []string{"get", "lead", "-o", "wide"}},
		{"get-leads-name", []string{"get", "leads", "-o", "name"}},
		{"get-leads-json", []string{"get", "leads", "-o", "json"}},
		{"describe-app", []string{"describe", "app", "bookinfo"}},
		{"describe-app-yaml", []string{"describe", "app", "bookinfo", "-o", "yaml"}},
		{"explain-app", []string{"explain", "app", "bookinfo"}},
		{"explain-component", []string{"explain", "application", "bookinfo", "productpage"}},
		{"status", []string{"status"}},
		{"status-json", []string{"status", "-o", "json"}},
		{"status-yaml", []string{"status", "-o", "yaml"}},
		{"delete-app", []string{"delete", "app", "bookinfo"}},
		{"leads-add", []string{"leads", "add", "lead-4", "--raft-address", "127.0.0.14:7000", "--api-address", "https://127.0.0.14:7443"}},
		{"leads-remove", []string{"leads", "remove", "lead-3"}},
		{"apply-dir", []string{"apply", "-f", "testdata/apps/shop"}},
		{"apply-file-dry-run-server", []string{"apply", "-f", "testdata/apps/shop/app.yaml", "--dry-run=server"}},
		{"apply-dry-run-client", []string{"apply", "-f", "testdata/apps/shop/app.yaml", "--dry-run=client"}},
		{"apply-name", []string{"apply", "-f", "testdata/apps/shop/app.yaml", "-o", "name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lead := newFakeLead()
			if out := tc.args[len(tc.args)-1]; out == "json" || out == "yaml" {
				for _, a := range lead.apps {
					for i := range a.Placements {
						a.Placements[i].Explanation = nil
					}
				}
			}
			srv := lead.start(t)
			r := run(t, srv.URL, nil, "", tc.args...)
			if r.err != nil {
				t.Fatalf("%v: %v (stderr %q)", tc.args, r.err, r.errOut)
			}
			if r.errOut != "" {
				t.Errorf("stderr: %q", r.errOut)
			}
			golden(t, tc.name, r.out)
		})
	}
}

// TestMachineOutputParses checks -o json|yaml are valid documents with the
// fields scripts rely on.
func TestMachineOutputParses(t *testing.T) {
	lead := newFakeLead()
	srv := lead.start(t)
	r := run(t, srv.URL, nil, "", "get", "apps", "-o", "json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name       string `json:"name"`
				Generation int64  `json:"generation"`
			} `json:"metadata"`
			Status struct {
				Phase      string `json:"phase"`
				Placements []struct {
					Component string `json:"component"`
					Cluster   string `json:"cluster"`
				} `json:"placements"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.out), &list); err != nil {
		t.Fatalf("get apps -o json: %v\n%s", err, r.out)
	}
	if list.Kind != "List" || len(list.Items) != 1 || list.Items[0].Kind != "Application" || list.Items[0].Metadata.Name != "bookinfo" ||
		list.Items[0].Metadata.Generation != 2 || list.Items[0].Status.Phase != "Failed" || len(list.Items[0].Status.Placements) != 4 {
		t.Errorf("unexpected list: %+v", list)
	}

	r = run(t, srv.URL, nil, "", "explain", "app", "bookinfo", "productpage", "-o", "json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var exp struct {
		Kind        string `json:"kind"`
		Component   string `json:"component"`
		Cluster     string `json:"cluster"`
		Explanation struct {
			Chosen   string `json:"chosen"`
			Clusters []struct {
				Cluster string `json:"cluster"`
				Outcome string `json:"outcome"`
			} `json:"clusters"`
		} `json:"explanation"`
	}
	if err := json.Unmarshal([]byte(r.out), &exp); err != nil {
		t.Fatalf("explain -o json: %v\n%s", err, r.out)
	}
	if exp.Kind != "Explanation" || exp.Component != "productpage" || exp.Cluster != "cloud-energy" ||
		exp.Explanation.Chosen != "cloud-energy" || len(exp.Explanation.Clusters) != 2 || exp.Explanation.Clusters[1].Outcome != "lost" {
		t.Errorf("explain -o json: %+v", exp)
	}

	r = run(t, srv.URL, nil, "", "status", "-o", "yaml")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var st apiv1.RaftStatus
	if err := yaml.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Leader != "lead-1" || st.Term != 3 || len(st.Members) != 3 {
		t.Errorf("status -o yaml: %+v", st)
	}

	r = run(t, "", nil, "", "version", "-o", "json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var v struct {
		ClientVersion VersionInfo `json:"clientVersion"`
	}
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || v.ClientVersion.Version != Version || v.ClientVersion.GoVersion == "" {
		t.Errorf("version -o json: %v %q", err, r.out)
	}
}

// TestErrors checks every failure ends with exit status 1 (an error from
// Execute) and one line on stderr that says what is wrong.
func TestErrors(t *testing.T) {
	down := httptest.NewServer(nil)
	downURL := down.URL
	down.Close()

	cases := []struct {
		name  string
		setup func(f *fakeLead)
		lead  string // "" = the fake; "none" = no --lead
		env   map[string]string
		args  []string
		want  string
	}{
		{name: "app not found", args: []string{"get", "app", "nosuch"}, want: `error: application "nosuch" not found`},
		{name: "describe not found", args: []string{"describe", "app", "nosuch"}, want: `error: get application "nosuch": application "nosuch" not found`},
		{name: "explain unknown component", args: []string{"explain", "app", "bookinfo", "nosuch"}, want: `error: application "bookinfo" has no component "nosuch"`},
		{name: "delete not found", args: []string{"delete", "app", "nosuch"}, want: `error: delete application "nosuch": application "nosuch" not found`},
		{name: "unknown resource", args: []string{"get", "pods"}, want: `error: unknown resource type "pods": use apps, clusters, nodes or leads`},
		{name: "get nothing", args: []string{"get"}, want: "error: say what to get: apps, clusters, nodes or leads"},
		{name: "describe cluster", args: []string{"describe", "cluster", "x"}, want: "error: only applications can be named here, not clusters"},
		{name: "bad output", args: []string{"get", "apps", "-o", "xml"}, want: `error: unknown output format "xml": use one of wide, json, yaml, kyaml, name, go-template, go-template-file, template, templatefile, jsonpath, jsonpath-as-json, jsonpath-file`},
		{name: "unknown flag", args: []string{"get", "apps", "--bogus"}, want: "error: unknown flag: --bogus"},
		{name: "unknown command", args: []string{"frobnicate"}, want: `error: unknown command "frobnicate" for "kubectl qonnect"`},
		{name: "cluster-name on apps", args: []string{"get", "apps", "--cluster-name", "x"}, want: "error: --cluster-name applies to nodes only"},
		{name: "leads add without address", args: []string{"leads", "add", "x"}, want: "error: --raft-address is required"},
		{name: "server error", setup: func(f *fakeLead) {
			f.fail["GET /v1/apps"] = apiv1.Error{Code: apiv1.CodeInternal, Message: "knowledge base\nis broken"}
		}, args: []string{"get", "apps"}, want: "error: list applications: knowledge base; is broken"},
		{name: "forbidden", setup: func(f *fakeLead) {
			f.fail["DELETE /v1/raft/members/lead-2"] = apiv1.Error{Code: apiv1.CodeForbidden, Message: "user alice may not change the lead group"}
		}, args: []string{"leads", "remove", "lead-2"}, want: `error: forbidden: remove lead "lead-2": user alice may not change the lead group`},
		{name: "lead down", lead: downURL, args: []string{"status"}, want: "error: get lead group status: no lead answered (" + downURL},
		{name: "https without certificates", lead: "https://127.0.0.1:7443", args: []string{"status"}, want: "error: --lead-ca, --lead-cert and --lead-key (or QONNECT_LEAD_CA, QONNECT_LEAD_CERT, QONNECT_LEAD_KEY) are required to reach a lead over https"},
		{name: "half the certificates", lead: "none", env: map[string]string{EnvLead: "https://127.0.0.1:7443", EnvLeadCA: "/ca.crt"}, args: []string{"status"}, want: "error: mutual TLS needs all of --lead-ca, --lead-cert and --lead-key (or QONNECT_LEAD_CA, QONNECT_LEAD_CERT, QONNECT_LEAD_KEY)"},
		{name: "missing CA file", lead: "none", env: map[string]string{EnvLead: "https://127.0.0.1:7443", EnvLeadCA: "/nonexistent/ca.crt", EnvLeadCert: "/nonexistent/u.crt", EnvLeadKey: "/nonexistent/u.key"}, args: []string{"status"}, want: "error: lead TLS: read CA: open /nonexistent/ca.crt: no such file or directory"},
		{name: "no lead and no kube context", lead: "none", args: []string{"get", "apps"}, want: "error: no lead given (--lead or QONNECT_LEAD) and no kube context to reach one: "},
		{name: "bad scheme", lead: "ftp://x:1", args: []string{"status"}, want: `error: lead address "ftp://x:1": scheme must be https or http`},
		{name: "version bad output", lead: "none", args: []string{"version", "-o", "xml"}, want: "error: --output must be json or yaml"},
		{name: "completion unknown shell", lead: "none", args: []string{"completion", "tcsh"}, want: `error: unknown shell "tcsh": use bash, zsh or fish`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lead := newFakeLead()
			if tc.setup != nil {
				tc.setup(lead)
			}
			srv := lead.start(t)
			url := srv.URL
			switch tc.lead {
			case "":
			case "none":
				url = ""
			default:
				url = tc.lead
			}
			r := run(t, url, tc.env, "", tc.args...)
			if r.err == nil {
				t.Fatalf("%v succeeded, want an error; stdout:\n%s", tc.args, r.out)
			}
			assertOneLine(t, r.errOut, tc.want)
		})
	}
}

func assertOneLine(t *testing.T, errOut, want string) {
	t.Helper()
	if strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
		t.Errorf("stderr is not one line: %q", errOut)
	}
	if !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr = %q, want it to start with %q", errOut, want)
	}
	for _, bad := range []string{"goroutine ", "panic", "Usage:"} {
		if strings.Contains(errOut, bad) {
			t.Errorf("stderr has %q: %q", bad, errOut)
		}
	}
}

// TestFailover checks the next lead is tried when one is down, from the
// environment as the sandbox's env file sets it.
func TestFailover(t *testing.T) {
	down := httptest.NewServer(nil)
	down.Close()
	lead := newFakeLead()
	srv := lead.start(t)
	r := run(t, "", map[string]string{EnvLead: down.URL + "," + srv.URL}, "", "get", "leads", "-o", "name")
	if r.err != nil {
		t.Fatalf("%v: %s", r.err, r.errOut)
	}
	if want := "lead.qonnect.io/lead-1\nlead.qonnect.io/lead-2\nlead.qonnect.io/lead-3\n"; r.out != want {
		t.Errorf("got %q, want %q", r.out, want)
	}
	// A lead that answers "not leader" is skipped too.
	busy := newFakeLead()
	busy.fail["GET /v1/raft"] = apiv1.Error{Code: apiv1.CodeNotLeader, Message: "no leader"}
	bsrv := busy.start(t)
	r = run(t, bsrv.URL+","+srv.URL, nil, "", "status", "-o", "json")
	if r.err != nil {
		t.Fatalf("%v: %s", r.err, r.errOut)
	}
}

// TestGetWatch checks get -w prints the table, then a row for each change
// the watch long-poll reports, and ends cleanly when interrupted.
func TestGetWatch(t *testing.T) {
	lead := newFakeLead()
	srv := lead.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- runCtx(ctx, t, srv.URL, nil, "", "get", "apps", "-w") }()

	waitFor(t, func() bool {
		for _, r := range lead.seen() {
			if r == "GET /v1/watch" {
				return true
			}
		}
		return false
	})
	lead.mutate(func() {
		a := lead.apps["bookinfo"]
		a.Statuses[3].Phase = fleet.PhaseHealthy
		a.Statuses[3].Ready, a.Statuses[3].Desired = 1, 1
	})
	// The watch after the one the change woke is asked only once the
	// changed row is printed (the first waits from the list's index).
	waitFor(t, func() bool {
		n := 0
		for _, r := range lead.seen() {
			if r == "GET /v1/watch" {
				n++
			}
		}
		return n >= 2
	})
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatalf("%v: %s", r.err, r.errOut)
	}
	golden(t, "get-apps-watch", r.out)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
