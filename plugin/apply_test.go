package plugin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/fleet"
)

// TestApplyBadInput checks that every kind of bad spec is one line naming
// the file and the field, exit 1, and that nothing reached the lead.
func TestApplyBadInput(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		stdin string
		want  []string // all must appear in the one line
	}{
		{"unknown field", []string{"-f", "testdata/bad/unknown-field/app.yaml"}, "", []string{"testdata/bad/unknown-field/app.yaml", "spec.qos.speed", "unknown field"}},
		{"weight out of range", []string{"-f", "testdata/bad/weight/app.yaml"}, "", []string{"testdata/bad/weight/app.yaml", "spec.qos.energy", "[0,1]", "1.5"}},
		{"unknown tier", []string{"-f", "testdata/bad/tier"}, "", []string{"testdata/bad/tier/app.yaml", "spec.components[0].tier", `"space"`}},
		{"duplicate component", []string{"-f", "testdata/bad/duplicate/app.yaml"}, "", []string{"testdata/bad/duplicate/app.yaml", "spec.components[1].name", `duplicate component "web"`}},
		{"missing manifest", []string{"-f", "testdata/bad/missing-manifest/app.yaml"}, "", []string{"testdata/bad/missing-manifest/app.yaml", "spec.components[0].manifests", "nothere.yaml", "not found"}},
		{"unreadable manifest", []string{"-f", "testdata/bad/unreadable-manifest/app.yaml"}, "", []string{"testdata/bad/unreadable-manifest/app.yaml", "spec.components[0].manifests", "adir", "cannot read"}},
		{"manifest without apiVersion", []string{"-f", "testdata/bad/no-apiversion/app.yaml"}, "", []string{"testdata/bad/no-apiversion/app.yaml", "spec.components[0].resources[0]", "apiVersion"}},
		{"manifest without kind", []string{"-f", "testdata/bad/no-kind/app.yaml"}, "", []string{"testdata/bad/no-kind/app.yaml", "spec.components[0].resources[0]", "kind"}},
		{"manifest without name", []string{"-f", "testdata/bad/no-name/app.yaml"}, "", []string{"testdata/bad/no-name/app.yaml", "spec.components[0].resources[0]", "name"}},
		{"not yaml", []string{"-f", "testdata/bad/not-yaml/app.yaml"}, "", []string{"testdata/bad/not-yaml/app.yaml", "YAML"}},
		{"not yaml in a directory", []string{"-f", "testdata/bad/not-yaml"}, "", []string{"testdata/bad/not-yaml/app.yaml", "YAML"}},
		{"no spec file", []string{"-f", "testdata/bad/nothere.yaml"}, "", []string{"testdata/bad/nothere.yaml", "file not found"}},
		{"directory without application", []string{"-f", "testdata/bad/no-app"}, "", []string{"testdata/bad/no-app", "no Application spec"}},
		{"one bad among good", []string{"-f", "testdata/apps/shop/app.yaml", "-f", "testdata/bad/weight/app.yaml"}, "", []string{"testdata/bad/weight/app.yaml", "spec.qos.energy"}},
		{"same app twice", []string{"-f", "testdata/apps/shop/app.yaml", "-f", "testdata/apps/shop"}, "", []string{`application "shop" is given twice`}},
		{"stdin with manifests relative to cwd", []string{"-f", "-"}, "apiVersion: qonnect.io/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec:\n  components:\n    - {name: web, tier: cloud, manifests: web.yaml}\n", []string{"stdin", "spec.components[0].manifests", "web.yaml", "not found"}},
		{"no -f", nil, "", []string{"give the spec with -f"}},
		{"bad dry-run", []string{"-f", "testdata/apps/shop/app.yaml", "--dry-run=maybe"}, "", []string{"--dry-run must be none, client or server"}},
		{"wait with dry-run", []string{"-f", "testdata/apps/shop/app.yaml", "--dry-run=server", "--wait"}, "", []string{"--wait cannot be used with --dry-run"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lead := newFakeLead()
			srv := lead.start(t)
			r := run(t, srv.URL, nil, tc.stdin, append([]string{"apply"}, tc.args...)...)
			if r.err == nil {
				t.Fatalf("apply %v succeeded; stdout %q", tc.args, r.out)
			}
			assertOneLine(t, r.errOut, "error: ")
			for _, w := range tc.want {
				if !strings.Contains(r.errOut, w) {
					t.Errorf("stderr %q does not contain %q", r.errOut, w)
				}
			}
			if got := lead.seen(); len(got) != 0 {
				t.Errorf("requests reached the lead: %v", got)
			}
			if r.out != "" {
				t.Errorf("stdout: %q", r.out)
			}
		})
	}
}

// TestApplyStdin reads the spec from stdin with manifests relative to the
// current directory, and sends the manifests inline.
func TestApplyStdin(t *testing.T) {
	lead := newFakeLead()
	srv := lead.start(t)
	data, err := os.ReadFile("testdata/apps/shop/app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	t.Chdir(filepath.Join(wd, "testdata/apps/shop"))
	r := run(t, srv.URL, nil, string(data), "apply", "-f", "-")
	if r.err != nil {
		t.Fatalf("%v: %s", r.err, r.errOut)
	}
	if r.out != "application.qonnect.io/shop created\n" {
		t.Errorf("stdout %q", r.out)
	}
	lead.mu.Lock()
	defer lead.mu.Unlock()
	app := lead.apps["shop"]
	if app == nil || len(app.Spec.Spec.Components) != 2 {
		t.Fatalf("stored: %+v", app)
	}
	for _, c := range app.Spec.Spec.Components {
		if c.Manifests != "" || len(c.Resources) == 0 {
			t.Errorf("component %s sent with manifests %q and %d resources", c.Name, c.Manifests, len(c.Resources))
		}
	}
	if n := len(app.Spec.Component("frontend").Resources); n != 2 {
		t.Errorf("frontend has %d objects, want 2", n)
	}
}

// TestApplyResults checks created, then unchanged, then configured.
func TestApplyResults(t *testing.T) {
	lead := newFakeLead()
	srv := lead.start(t)
	for _, want := range []string{"created", "unchanged"} {
		r := run(t, srv.URL, nil, "", "apply", "-f", "testdata/apps/shop/app.yaml")
		if r.err != nil {
			t.Fatalf("%v: %s", r.err, r.errOut)
		}
		if r.out != "application.qonnect.io/shop "+want+"\n" {
			t.Errorf("got %q, want %s", r.out, want)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"app.yaml", "frontend.yaml", "cache.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata/apps/shop", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "app.yaml" {
			data = []byte(strings.Replace(string(data), "cost: 0.0", "cost: 0.5", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, srv.URL, nil, "", "apply", "-f", dir)
	if r.err != nil || r.out != "application.qonnect.io/shop configured\n" {
		t.Errorf("got %q, %v", r.out, r.err)
	}
	// A dry run stores nothing.
	before := len(lead.seen())
	r = run(t, srv.URL, nil, "", "apply", "-f", "testdata/apps/shop/app.yaml", "--dry-run=server", "-o", "json")
	if r.err != nil || !strings.Contains(r.out, `"kind": "Application"`) {
		t.Errorf("dry run: %q %v", r.out, r.err)
	}
	lead.mu.Lock()
	gen := lead.apps["shop"].Generation
	lead.mu.Unlock()
	if gen != 2 {
		t.Errorf("generation %d after a dry run, want 2", gen)
	}
	if got := lead.seen()[before:]; len(got) != 1 || got[0] != "POST /v1/apps" {
		t.Errorf("dry run requests: %v", got)
	}
}

// TestApplyWait follows the components until all are Healthy, printing a
// line whenever one changes.
func TestApplyWait(t *testing.T) {
	lead := newFakeLead()
	srv := lead.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- runCtx(ctx, t, srv.URL, nil, "", "apply", "-f", "testdata/apps/shop/app.yaml", "--wait", "--timeout", "20s")
	}()
	watches := func() int {
		n := 0
		for _, r := range lead.seen() {
			if r == "GET /v1/watch" {
				n++
			}
		}
		return n
	}
	report := func(comp string, phase fleet.Phase, ready int32) {
		lead.mutate(func() {
			a := lead.apps["shop"]
			var pl = a.Placements[0]
			for _, p := range a.Placements {
				if p.Component == comp {
					pl = p
				}
			}
			st := fleet.ComponentStatus{App: "shop", Component: comp, Cluster: pl.Cluster, Generation: 1, Phase: phase, Ready: ready, Desired: 1}
			for i := range a.Statuses {
				if a.Statuses[i].Component == comp {
					a.Statuses[i] = st
					return
				}
			}
			a.Statuses = append(a.Statuses, st)
		})
	}
	waitFor(t, func() bool { return watches() >= 1 })
	report("frontend", fleet.PhaseProgressing, 0)
	waitFor(t, func() bool { return watches() >= 2 })
	report("frontend", fleet.PhaseHealthy, 1)
	waitFor(t, func() bool { return watches() >= 3 })
	report("cache", fleet.PhaseHealthy, 1)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%v: %s", r.err, r.errOut)
		}
		golden(t, "apply-wait", r.out)
	case <-time.After(15 * time.Second):
		t.Fatal("apply --wait did not end")
	}
}

// TestApplyWaitTimeout ends with one line saying what is not healthy.
func TestApplyWaitTimeout(t *testing.T) {
	lead := newFakeLead()
	srv := lead.start(t)
	r := run(t, srv.URL, nil, "", "apply", "-f", "testdata/apps/shop/app.yaml", "--wait", "--timeout", "300ms")
	if r.err == nil {
		t.Fatal("no error after the timeout")
	}
	assertOneLine(t, r.errOut, "error: timed out after 300ms waiting for shop: 0/2 components healthy; frontend: Pending; cache: Pending")
}
