package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	kresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"qonnect.io/qonnect/internal/sandbox"
)

// TestPortForwardThroughKwok runs the plugin's default path for real: a
// kube-apiserver (kwok simulating the node), a lead pod, the user's
// Secret, and a kwok PortForward object that sends the pod's API port to
// the fake lead on this machine. `get leads` then goes kubeconfig →
// Secret → SPDY port-forward → mutual TLS → lead.
func TestPortForwardThroughKwok(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := sandbox.TestbedBin(ctx, testLog{t})
	if err != nil {
		t.Fatalf("testbed binaries: %v", err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	name := fmt.Sprintf("qonnect-pf-%d", os.Getpid())
	kwokctl := func(ctx context.Context, args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "kwokctl"), args...)
		cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+filepath.Join(dir, "kwok"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kwokctl %v: %w\n%s", args, err, out)
		}
		return nil
	}
	// kwokctl probes for free ports from a fixed number: creations take
	// the machine-wide lock the sandbox takes too.
	unlock := flock(t, ctx, filepath.Join(os.TempDir(), "qonnect-kwokctl-create.lock"))
	err = kwokctl(ctx, "create", "cluster", "--name", name, "--runtime", "binary",
		"--etcd-binary", filepath.Join(bin, "etcd"),
		"--kube-apiserver-binary", filepath.Join(bin, "kube-apiserver"),
		"--kube-controller-manager-binary", filepath.Join(bin, "kube-controller-manager"),
		"--kube-scheduler-binary", filepath.Join(bin, "kube-scheduler"),
		"--kwok-controller-binary", filepath.Join(bin, "kwok"),
		"--enable-crds=PortForward",
		"--kubeconfig", kubeconfig, "--wait", "3m")
	unlock()
	t.Cleanup(func() {
		// ctx is over by now: the deletion gets its own time.
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if err := kwokctl(dctx, "delete", "cluster", "--name", name); err != nil {
			t.Errorf("delete cluster: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	lead := newTLSLead(t)
	_, portStr, _ := net.SplitHostPort(lead.srv.Listener.Addr().String())
	leadPortNum, _ := strconv.Atoi(portStr)

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ns := DefaultLeadNamespace
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	res := corev1.ResourceList{corev1.ResourceCPU: kresource.MustParse("4"), corev1.ResourceMemory: kresource.MustParse("8Gi"), corev1.ResourcePods: kresource.MustParse("110")}
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "lead-node", Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}, Labels: map[string]string{"type": "kwok"}},
			Status:     corev1.NodeStatus{Allocatable: res, Capacity: res},
		}, metav1.CreateOptions{})
		return err
	})
	// The ServiceAccount admission wants the namespace's default account,
	// which the controller-manager creates shortly after the namespace.
	waitUntil(t, ctx, time.Minute, func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	pod := leadPod("qonnect-lead-0", true, 7443)
	pod.Status = corev1.PodStatus{}
	pod.Spec.NodeName = "lead-node"
	pod.Spec.Containers[0].Image = "qonnect-lead:test"
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, lead.userSecret(t, "default"), metav1.CreateOptions{})
		return err
	})
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
		"metadata": map[string]any{"name": pod.Name, "namespace": ns},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(7443)},
			"target": map[string]any{"port": int64(leadPortNum), "address": "127.0.0.1"},
		}}},
	}}
	gvr := schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}
	mustCreate(t, func() error {
		_, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, pf, metav1.CreateOptions{})
		return err
	})
	waitUntil(t, ctx, 2*time.Minute, func() bool {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && podReady(p)
	})

	// The command a user runs, with only a kubeconfig. kwok takes a moment
	// to pick up the PortForward object; until then the stream ends at once.
	var r result
	waitUntil(t, ctx, time.Minute, func() bool {
		r = run(t, "", nil, "", "--kubeconfig", kubeconfig, "get", "leads", "-o", "json")
		if r.err != nil {
			t.Logf("not yet: %s", r.errOut)
		}
		return r.err == nil
	})
	if r.err != nil {
		t.Fatalf("get leads through the kube context: %v (%s)", r.err, r.errOut)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.out), &list); err != nil || len(list.Items) != 3 || list.Items[0].Metadata.Name != "lead-1" {
		t.Errorf("get leads: %v\n%s", err, r.out)
	}
	if got := lead.lead.seen(); len(got) == 0 || got[len(got)-1] != "GET /v1/raft" {
		t.Errorf("the lead saw %v", got)
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, ctx context.Context, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("condition not met in %s", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// flock takes an exclusive lock on path until the returned function runs.
func flock(t *testing.T, ctx context.Context, path string) func() {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	for {
		err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(fd.Fd()), syscall.LOCK_UN); fd.Close() }
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || ctx.Err() != nil {
			fd.Close()
			t.Fatalf("lock %s: %v", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
