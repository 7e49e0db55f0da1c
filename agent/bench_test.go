package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
)

// The benchmarks measure the agent on real control planes. Each does its
// own fixed amount of work whatever b.N is, so run them once:
//
//	go test ./agent -run '^$' -bench BenchmarkAssignmentToRunning -benchtime 1x
//	go test ./agent -run '^$' -bench BenchmarkAgent500Nodes -benchtime 1x

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// BenchmarkAssignmentToRunning: a lead publishes an assignment of a
// 3-replica Deployment; how long until all its pods are Running on the
// chosen kwok nodes, and until the lead has heard Healthy.
func BenchmarkAssignmentToRunning(b *testing.B) {
	const samples = 30
	f, cs := startSandbox(b, "testdata/one.yaml")
	lead := tlsLead(b, f)
	runAgent(b, f, "edge-1", lead)
	waitFor(b, 30*time.Second, "registration", func() bool { r, _, _, _ := lead.counts(); return r > 0 })
	nodes := []string{"e-0", "e-1", "e-2"}
	var running, healthy []time.Duration
	b.ResetTimer()
	for i := range samples {
		comp := fmt.Sprintf("c%d", i)
		a := deployment(b, "bench", comp, int64(i+1), 3, nodes, "")
		start := time.Now()
		lead.set(a)
		for !allRunning(podsOf(b, cs, "bench", "bench", comp), 3, nodes) {
			if time.Since(start) > time.Minute {
				b.Fatalf("%s: pods not Running after a minute", comp)
			}
			time.Sleep(5 * time.Millisecond)
		}
		running = append(running, time.Since(start))
		waitFor(b, time.Minute, comp+" Healthy at the lead", func() bool {
			s, ok := lead.status("bench", comp)
			return ok && s.Phase == fleet.PhaseHealthy && s.Generation == int64(i+1)
		})
		healthy = append(healthy, time.Since(start))
		lead.set()
		waitFor(b, time.Minute, comp+" removed", func() bool { return len(podsOf(b, cs, "bench", "bench", comp)) == 0 })
	}
	b.StopTimer()
	slices.Sort(running)
	slices.Sort(healthy)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(running, 0.5)), "running-p50-ms")
	b.ReportMetric(ms(percentile(running, 0.95)), "running-p95-ms")
	b.ReportMetric(ms(percentile(healthy, 0.5)), "healthy-p50-ms")
	b.ReportMetric(ms(percentile(healthy, 0.95)), "healthy-p95-ms")
	b.Logf("%d assignments of a 3-replica Deployment on 3 kwok nodes:", samples)
	b.Logf("  assignment → all pods Running      p50 %v  p95 %v  max %v", percentile(running, 0.5), percentile(running, 0.95), running[len(running)-1])
	b.Logf("  assignment → Healthy at the lead   p50 %v  p95 %v  max %v", percentile(healthy, 0.5), percentile(healthy, 0.95), healthy[len(healthy)-1])
}

// procSample is a process's CPU time and resident memory.
type procSample struct {
	cpu time.Duration
	rss int64 // bytes
}

func sampleProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	var rss int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb << 10
		}
	}
	return procSample{cpu: time.Duration(utime+stime) * time.Second / hz, rss: rss}, nil
}

// watchProc samples pid every second for d; it returns the CPU used as a
// share of one core and the largest RSS seen.
func watchProc(b *testing.B, pid int, d time.Duration) (cpuShare float64, maxRSS int64) {
	first, err := sampleProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	last := first
	for time.Since(start) < d {
		time.Sleep(time.Second)
		if last, err = sampleProc(pid); err != nil {
			b.Fatal(err)
		}
		maxRSS = max(maxRSS, last.rss)
	}
	return float64(last.cpu-first.cpu) / float64(time.Since(start)), maxRSS
}

// BenchmarkAgent500Nodes runs the qonnect-agent binary on a cluster of 500
// kwok nodes and measures its memory and CPU: reaching the first full
// report, idle (kwok heartbeats only), and while 1000 pods are scheduled
// onto the nodes (every node's requested resources change).
func BenchmarkAgent500Nodes(b *testing.B) {
	p := &sandbox.Profile{Name: "agent-500", Clusters: []sandbox.ClusterSpec{{
		Name: "big", Tier: fleet.TierCloud, Role: fleet.RoleLead,
		Nodes: []sandbox.NodeSpec{{Name: "n", Count: 500, CPU: "8", Memory: "16Gi", Energy: "0.0024", Price: "0.5", Bandwidth: "1000000000"}},
	}}}
	f := sandboxtest.Start(b, p)
	cs, err := f.Client("big")
	if err != nil {
		b.Fatal(err)
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "qonnect-agent")
	build := exec.Command("go", "build", "-o", bin, "./cmd/qonnect-agent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build agent: %v\n%s", err, out)
	}
	lead := tlsLead(b, f)
	files := f.AgentTLS("big")
	logFile, err := os.Create(filepath.Join(b.TempDir(), "agent.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--cluster", "big", "--tier", "cloud", "--leads", lead.url(),
		"--kubeconfig", f.Kubeconfig("big"), "--tls-ca", files.CA, "--tls-cert", files.Cert, "--tls-key", files.Key)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	b.ResetTimer()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitFor(b, 2*time.Minute, "a full report of 500 nodes", func() bool {
		for _, r := range lead.nodeReports() {
			if r.Full && len(r.Nodes) == 500 {
				return true
			}
		}
		return false
	})
	firstReport := time.Since(start)
	atStart, _ := sampleProc(cmd.Process.Pid)

	idleCPU, idleRSS := watchProc(b, cmd.Process.Pid, 30*time.Second)
	reportsBefore := len(lead.nodeReports())

	// 1000 pods onto the 500 nodes: every node's requested resources change.
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "load", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr[int32](1000),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "load"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "load"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(context.Background(), dep, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	churnCPU, churnRSS := watchProc(b, cmd.Process.Pid, 60*time.Second)
	reports := lead.nodeReports()[reportsBefore:]
	changed := 0
	for _, r := range reports {
		changed += len(r.Nodes)
	}
	var bound int
	if pods, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=load"}); err == nil {
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				bound++
			}
		}
	}
	b.StopTimer()

	mb := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(firstReport.Seconds(), "first-report-s")
	b.ReportMetric(mb(max(idleRSS, churnRSS)), "max-rss-MB")
	b.ReportMetric(100*idleCPU, "idle-cpu-%")
	b.ReportMetric(100*churnCPU, "churn-cpu-%")
	b.Logf("agent on 500 kwok nodes:")
	b.Logf("  start → first full report of 500 nodes: %v (CPU used by then %v, RSS %.0f MiB)", firstReport.Round(time.Millisecond), atStart.cpu, mb(atStart.rss))
	b.Logf("  idle 30s (kwok heartbeats): CPU %.1f%% of a core, RSS max %.0f MiB", 100*idleCPU, mb(idleRSS))
	b.Logf("  1000 pods scheduled, 60s: CPU %.1f%% of a core, RSS max %.0f MiB; %d pods bound; %d change reports carrying %d node updates",
		100*churnCPU, mb(churnRSS), bound, len(reports), changed)
}
