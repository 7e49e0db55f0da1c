package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
)

// rssKiB reads a process's resident set size.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// BenchmarkLeadRSSAtScale loads one lead process (the leader, which also
// runs the scheduling loop with the real scheduler) with 1,000 clusters,
// 20,000 nodes and 5,000 applications through its API, waits until every
// application is placed, and reports its RSS and the load time.
var benchClusters, benchApps = 1000, 5000

func BenchmarkLeadRSSAtScale(b *testing.B) {
	if v := os.Getenv("QONNECT_BENCH_SCALE"); v != "" {
		fmt.Sscanf(v, "%d,%d", &benchClusters, &benchApps)
	}
	bin := buildLead(b)
	dir := b.TempDir()
	ports := freePorts(b, 2)
	api := fmt.Sprintf("127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin, "--id", "lead0", "--data-dir", filepath.Join(dir, "data"),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--api-addr", api,
		"--insecure-dev-plaintext", "--cluster-timeout", "1h", "--log-level", "warn",
		"--probe-addr", "127.0.0.1:0", "--pprof")
	if pp := os.Getenv("QONNECT_BENCH_PPROF"); pp != "" {
		cmd.Args[len(cmd.Args)-2] = pp
	}
	logf, _ := os.Create(filepath.Join(dir, "lead.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if b.Failed() {
			out, _ := exec.Command("tail", "-n", "30", filepath.Join(dir, "lead.log")).Output()
			b.Logf("lead log:\n%s", out)
		}
	})
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	do := func(method, path string, body any) error {
		js, _ := json.Marshal(body)
		if s, ok := body.(string); ok {
			js = []byte(s)
		}
		for attempt := 0; ; attempt++ {
			req, _ := http.NewRequest(method, "http://"+api+path, bytes.NewReader(js))
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return nil
				}
				err = fmt.Errorf("%s %s: %s", method, path, resp.Status)
			}
			if attempt > 100 {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	start := time.Now()
	work := make(chan func() error)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := f(); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	tiers := fleet.Tiers
	for c := range benchClusters {
		name := fmt.Sprintf("cluster-%04d", c)
		work <- func() error {
			if err := do("POST", "/v1/clusters", apiv1.RegisterRequest{Cluster: fleet.Cluster{Name: name, Tier: tiers[c%3], Endpoint: name + ".example:443"}}); err != nil {
				return err
			}
			rep := apiv1.NodeReport{Full: true}
			for n := range 20 {
				rep.Nodes = append(rep.Nodes, fleet.Node{Name: fmt.Sprintf("node-%02d", n), Architecture: "amd64", Ready: true,
					Labels:      map[string]string{fleet.LabelEnergy: fmt.Sprintf("0.00%d", 24+c%5), fleet.LabelPrice: fmt.Sprintf("%d.5", 1+c%30), fleet.LabelBandwidth: "52500000000"},
					Allocatable: fleet.Resources{MilliCPU: 6000, MemoryBytes: 7_200_000_000, EphemeralStorage: 100_000_000_000, Pods: 110}})
			}
			return do("PUT", "/v1/clusters/"+name+"/nodes", rep)
		}
	}
	for a := range benchApps {
		work <- func() error {
			return do("POST", "/v1/apps", fmt.Sprintf(`{"apiVersion":"qonnect.io/v1alpha1","kind":"Application","metadata":{"name":"app-%05d"},
"spec":{"qos":{"energy":%g},"components":[
{"name":"frontend","tier":"cloud","resources":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"frontend"},"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"c","image":"nginx","resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}}}]},
{"name":"backend","tier":"fog","resources":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"backend"},"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"c","image":"app","resources":{"requests":{"cpu":"50m","memory":"64Mi"}}}]}}}}]},
{"name":"sensor","tier":"edge","resources":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sensor"},"data":{"k":"v"}}]}]}}`, a, float64(a%3)/2))
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	loaded := time.Since(start)
	// Wait until the loop has placed every component.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := client.Get("http://" + api + "/v1/apps")
		if err == nil {
			var list apiv1.AppList
			_ = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			placed := 0
			for _, app := range list.Items {
				for _, p := range app.Placements {
					if p.Cluster != "" {
						placed++
					}
				}
			}
			if placed == 3*benchApps {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d components placed; log in %s", placed, 3*benchApps, dir)
			}
		}
		time.Sleep(2 * time.Second)
	}
	settled := time.Since(start)
	if d, err := time.ParseDuration(os.Getenv("QONNECT_BENCH_HOLD")); err == nil {
		time.Sleep(d) // time to look at the process (pprof)
	}
	rss, err := rssKiB(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rss)/1024, "lead-RSS-MiB")
	// And once the burst is over: the runtime hands freed memory back to
	// the kernel in the background.
	time.Sleep(30 * time.Second)
	if idle, err := rssKiB(cmd.Process.Pid); err == nil {
		b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
	}
	b.ReportMetric(loaded.Seconds(), "load-s")
	b.ReportMetric(settled.Seconds(), "all-placed-s")
	for range b.N {
	}
}
