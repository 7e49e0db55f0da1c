package agent

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
	"qonnect.io/qonnect/internal/spec"
)

// TestWithRealLead runs the real binaries: the sandbox starts a
// qonnect-lead on cloud-1 and a qonnect-agent (this package, built) per
// cluster, all over mutual TLS; the test acts as a user through the lead's
// API and looks at what lands in the clusters.
func TestWithRealLead(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts real control planes and qonnect processes; not in -short")
	}
	p, err := sandbox.LoadProfile("testdata/two.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := sandboxtest.Start(t, p, sandboxtest.WithQonnect(nil, []string{"--resync=5s"}))
	ctx := context.Background()
	utls, err := pki.ClientConfig(f.UserTLS())
	if err != nil {
		t.Fatal(err)
	}
	user, err := leadclient.New(leadclient.Config{Addresses: f.LeadAPIs(), TLS: utls})
	if err != nil {
		t.Fatal(err)
	}
	edge, err := f.Client("edge-1")
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := f.Client("cloud-1")
	if err != nil {
		t.Fatal(err)
	}

	waitFor(t, 60*time.Second, "both clusters registered, alive, with their nodes", func() bool {
		cl, err := user.ListClusters(ctx)
		if err != nil || len(cl.Items) != 2 {
			return false
		}
		for _, c := range cl.Items {
			if !c.Alive || c.ReadyNodes == 0 {
				return false
			}
		}
		return true
	})

	app := &spec.Application{
		APIVersion: spec.APIVersion, Kind: spec.Kind,
		Metadata: spec.Metadata{Name: "shop"},
		Spec: spec.AppSpec{QoS: spec.QoS{Energy: 1}, Components: []spec.Component{
			{Name: "web", Tier: fleet.TierEdge, Resources: []spec.Object{
				deployment(t, "shop", "web", 0, 2, nil, userAffinity).Resources[0],
				obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: web-config}, data: {api: "http://${qonnect:api}/v1"}}`),
			}},
			{Name: "api", Tier: fleet.TierCloud, Resources: []spec.Object{
				obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: api-config}, data: {web: "${qonnect:web}"}}`),
			}},
		}},
	}
	// healthy waits until the lead reports comp Healthy on cluster at the
	// app's current generation, and returns the app.
	healthy := func(comp, cluster string) *apiv1.App {
		t.Helper()
		var got *apiv1.App
		waitFor(t, 90*time.Second, comp+" Healthy on "+cluster, func() bool {
			a, err := user.GetApp(ctx, "shop")
			if err != nil {
				return false
			}
			got = a
			return slices.ContainsFunc(a.Statuses, func(s fleet.ComponentStatus) bool {
				return s.Component == comp && s.Cluster == cluster && s.Phase == fleet.PhaseHealthy && s.Generation == a.Generation
			})
		})
		return got
	}

	t.Run("placed component runs on the chosen nodes and is Healthy at the lead", func(t *testing.T) {
		if _, err := user.ApplyApp(ctx, app, false); err != nil {
			t.Fatal(err)
		}
		a := healthy("web", "edge-1")
		healthy("api", "cloud-1")
		var nodes []string
		for _, pl := range a.Placements {
			if pl.Component == "web" {
				nodes = pl.Nodes
			}
		}
		if len(nodes) == 0 {
			t.Fatalf("web's placement names no nodes: %+v", a.Placements)
		}
		if !allRunning(podsOf(t, edge, "shop", "shop", "web"), 2, nodes) {
			t.Errorf("web's pods are not all Running on %v", nodes)
		}
		d, err := edge.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		terms := d.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || len(terms[0].MatchExpressions) != 2 || terms[0].MatchExpressions[0].Key != fleet.LabelLocation {
			t.Errorf("node affinity %+v: want the user's term with the pin added", terms)
		}
		cm, err := cloud.CoreV1().ConfigMaps("shop").Get(ctx, "api-config", metav1.GetOptions{})
		if err != nil || cm.Data["web"] != sandbox.Endpoint("edge-1") {
			t.Errorf("api-config on cloud-1: %v %v (want web's cluster endpoint filled in)", cm, err)
		}
	})

	t.Run("a manifest the API server rejects is Failed with its message", func(t *testing.T) {
		app.Spec.Components = append(app.Spec.Components, spec.Component{Name: "broken", Tier: fleet.TierEdge, Resources: []spec.Object{
			obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: broken}, data: {"not a key!": x}}`),
		}})
		if _, err := user.ApplyApp(ctx, app, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "broken Failed", func() bool {
			a, err := user.GetApp(ctx, "shop")
			return err == nil && slices.ContainsFunc(a.Statuses, func(s fleet.ComponentStatus) bool {
				return s.Component == "broken" && s.Phase == fleet.PhaseFailed && strings.Contains(s.Message, "a valid config key")
			})
		})
		healthy("web", "edge-1") // at the new generation: the rest applies
	})

	t.Run("every lead stopped: nothing removed; back: status flows", func(t *testing.T) {
		before, err := edge.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.StopLead("cloud-1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Second) // past the lead's cluster timeout and several resyncs
		after, err := edge.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || after.UID != before.UID || after.DeletionTimestamp != nil {
			t.Fatalf("web changed while no lead ran: %v", err)
		}
		if _, err := cloud.CoreV1().ConfigMaps("shop").Get(ctx, "api-config", metav1.GetOptions{}); err != nil {
			t.Fatalf("api-config while no lead ran: %v", err)
		}
		if err := f.StartLead("cloud-1"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(t, 60*time.Second, "both clusters alive again", func() bool {
			cl, err := user.ListClusters(ctx)
			if err != nil {
				return false
			}
			alive := 0
			for _, c := range cl.Items {
				if c.Alive && c.LastSeen.After(start) {
					alive++
				}
			}
			return alive == 2
		})
		healthy("web", "edge-1")
	})

	t.Run("deleting the application removes it from every cluster", func(t *testing.T) {
		if _, err := user.DeleteApp(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "web gone from edge-1, api-config from cloud-1", func() bool {
			_, e1 := edge.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
			_, e2 := cloud.CoreV1().ConfigMaps("shop").Get(ctx, "api-config", metav1.GetOptions{})
			return apierrors.IsNotFound(e1) && apierrors.IsNotFound(e2)
		})
		if _, err := edge.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); err != nil {
			t.Errorf("the namespace went too: %v", err)
		}
	})
}
