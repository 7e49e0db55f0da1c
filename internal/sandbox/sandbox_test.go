package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
)

// TestTwoClusters brings up a real two-cluster federation and checks what
// the other tests rely on: labelled nodes, pods that run, a cluster that
// stops and comes back with its objects, and a down that leaves nothing.
func TestTwoClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts real control planes; not in -short")
	}
	p, err := sandbox.LoadProfile("testdata/two.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := sandboxtest.Start(t, p)
	ctx := context.Background()

	t.Run("nodes carry labels and allocatable", func(t *testing.T) {
		cs, err := f.Client("cloud-a")
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 2 {
			t.Fatalf("cloud-a has %d nodes, want 2", len(nodes.Items))
		}
		for _, n := range nodes.Items {
			for k, want := range map[string]string{"qonnect.io/energy": "0.0024", "qonnect.io/price": "1.5", "qonnect.io/bandwidth": "10000000000", "qonnect.io/location": "eu-west"} {
				if got := n.Labels[k]; got != want {
					t.Errorf("node %s label %s = %q, want %q", n.Name, k, got, want)
				}
			}
			if got := n.Status.Allocatable.Cpu(); got.Cmp(resource.MustParse("4")) != 0 {
				t.Errorf("node %s allocatable cpu = %s, want 4", n.Name, got)
			}
			if got := n.Status.Allocatable.Memory(); got.Cmp(resource.MustParse("8Gi")) != 0 {
				t.Errorf("node %s allocatable memory = %s, want 8Gi", n.Name, got)
			}
		}
	})

	t.Run("a deployment's pods run on a simulated node", func(t *testing.T) {
		cs, err := f.Client("edge-a")
		if err != nil {
			t.Fatal(err)
		}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "web", Image: "docker.io/istio/examples-bookinfo-details-v1:1.20.2",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
					}}},
				},
			},
		}
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil || len(pods.Items) != 2 {
				return false, nil
			}
			for _, p := range pods.Items {
				if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != "ea" {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("pods of web did not reach Running on node ea: %v", err)
		}
	})

	t.Run("stop-cluster and start-cluster", func(t *testing.T) {
		if err := f.StopCluster(ctx, "edge-a"); err != nil {
			t.Fatal(err)
		}
		if f.Reachable("edge-a") {
			t.Fatal("edge-a's API server still answers after stop-cluster")
		}
		if !f.Reachable("cloud-a") {
			t.Fatal("cloud-a stopped answering when edge-a was stopped")
		}
		if got := f.Status().Clusters[1].State; got != "stopped" {
			t.Errorf("status of edge-a = %q, want stopped", got)
		}
		if err := f.StartCluster(ctx, "edge-a"); err != nil {
			t.Fatal(err)
		}
		cs, err := f.Client("edge-a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Fatalf("deployment web lost across stop/start: %v", err)
		}
	})

	t.Run("up twice on the same folder is refused", func(t *testing.T) {
		_, err := sandbox.Up(ctx, p, sandbox.Options{Dir: f.Dir(), TestbedBin: f.State().TestbedBin})
		if !errors.Is(err, sandbox.ErrAlreadyUp) {
			t.Fatalf("second up: err = %v, want ErrAlreadyUp", err)
		}
	})

	t.Run("down leaves no process behind", func(t *testing.T) {
		dir := f.Dir()
		if n := processesUnder(t, dir); n == 0 {
			t.Fatalf("no process runs from %s before down: the check would prove nothing", dir)
		}
		if err := f.Down(ctx); err != nil {
			t.Fatal(err)
		}
		if n := processesUnder(t, dir); n != 0 {
			t.Fatalf("%d processes still run from %s after down", n, dir)
		}
		if _, err := os.Stat(filepath.Join(dir, "sandbox.json")); !os.IsNotExist(err) {
			t.Fatalf("state file left behind: %v", err)
		}
	})
}

// processesUnder counts processes whose command line mentions dir.
func processesUnder(t *testing.T, dir string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if strings.Contains(string(data), dir) {
			n++
		}
	}
	return n
}

// TestUpFailureTearsDown interrupts up halfway: what it started must go.
func TestUpFailureTearsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts real control planes; not in -short")
	}
	p, err := sandbox.LoadProfile("testdata/two.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := sandbox.TestbedBin(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Let the first cluster start, then cut up short while the second does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			if data, err := os.ReadFile(filepath.Join(dir, "sandbox.json")); err == nil && strings.Contains(string(data), `"server": "https://`) {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	_, err = sandbox.Up(ctx, p, sandbox.Options{Dir: dir, TestbedBin: bin, Parallel: 1})
	if err == nil {
		t.Fatal("up succeeded although it was interrupted")
	}
	if n := processesUnder(t, dir); n != 0 {
		t.Fatalf("%d processes left running after a failed up", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "sandbox.json")); !os.IsNotExist(err) {
		t.Fatalf("a failed up left its state file: %v", err)
	}
}
