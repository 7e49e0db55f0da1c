package node_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/pki"
)

// buildLead builds cmd/qonnect-lead into a temporary directory.
func buildLead(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qonnect-lead")
	cmd := exec.Command("go", "build", "-o", bin, "qonnect.io/qonnect/cmd/qonnect-lead")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build qonnect-lead: %v", err)
	}
	return bin
}

// freePorts reserves n distinct loopback ports. They are released before
// the leads bind them; a collision in between is unlikely and fails loudly.
func freePorts(t testing.TB, n int) []int {
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

type leadProc struct {
	id, api string
	args    []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

type cluster struct {
	t     testing.TB
	bin   string
	ca    *pki.CA
	dir   string
	peers string // the --peers flag
	procs []*leadProc
	user  *http.Client
}

// newProc prepares (does not start) a lead with its certificate.
func (c *cluster) newProc(id string, raftPort, apiPort int, extra ...string) *leadProc {
	c.t.Helper()
	is, err := c.ca.Issue(pki.Request{Role: pki.RoleLead, Name: id, Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		c.t.Fatal(err)
	}
	files, err := c.ca.WriteFiles(filepath.Join(c.dir, id, "tls"), id, is)
	if err != nil {
		c.t.Fatal(err)
	}
	return &leadProc{
		id: id, api: fmt.Sprintf("127.0.0.1:%d", apiPort), logPath: filepath.Join(c.dir, id+".log"),
		args: append([]string{
			"--id", id, "--data-dir", filepath.Join(c.dir, id, "data"),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftPort), "--api-addr", fmt.Sprintf("127.0.0.1:%d", apiPort),
			"--peers", c.peers,
			"--tls-ca", files.CA, "--tls-cert", files.Cert, "--tls-key", files.Key,
			"--log-level", "debug",
		}, extra...),
	}
}

// startCluster starts three leads on 127.0.0.1 with TLS from a fresh CA.
func startCluster(t testing.TB) *cluster {
	bin := buildLead(t)
	dir := t.TempDir()
	ca, err := pki.NewCA("qonnect-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 6)
	var peers []string
	for i := range 3 {
		peers = append(peers, fmt.Sprintf("lead%d=127.0.0.1:%d=127.0.0.1:%d", i, ports[2*i], ports[2*i+1]))
	}
	c := &cluster{t: t, bin: bin, ca: ca, dir: dir, peers: strings.Join(peers, ",")}
	for i := range 3 {
		c.procs = append(c.procs, c.newProc(fmt.Sprintf("lead%d", i), ports[2*i], ports[2*i+1]))
	}
	us, err := ca.Issue(pki.Request{Role: pki.RoleUser, Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(us.CertPEM, us.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c.user = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
	}}
	t.Cleanup(func() {
		for _, p := range c.procs {
			c.kill(p, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, p := range c.procs {
				if b, err := os.ReadFile(p.logPath); err == nil {
					lines := strings.Split(string(b), "\n")
					t.Logf("--- last lines of %s ---\n%s", p.id, strings.Join(lines[max(0, len(lines)-40):], "\n"))
				}
			}
		}
	})
	for _, p := range c.procs {
		c.start(p)
	}
	return c
}

func (c *cluster) start(p *leadProc) {
	c.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(c.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}(p.cmd, p.exited)
}

// kill signals the process by its pid and waits for it to exit.
func (c *cluster) kill(p *leadProc, sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (c *cluster) do(method, api, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, "https://"+api+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.user.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *cluster) status(p *leadProc) (apiv1.RaftStatus, error) {
	var st apiv1.RaftStatus
	code, b, err := c.do("GET", p.api, "/v1/raft", nil)
	if err != nil {
		return st, err
	}
	if code != 200 {
		return st, fmt.Errorf("status %d: %s", code, b)
	}
	return st, json.Unmarshal(b, &st)
}

// waitLeader waits until every lead in live agrees on one leader (which is
// among them) and returns it.
func (c *cluster) waitLeader(live []*leadProc, timeout time.Duration) *leadProc {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		leader := ""
		agree := true
		for _, p := range live {
			st, err := c.status(p)
			if err != nil || st.Leader == "" || (leader != "" && st.Leader != leader) {
				agree = false
				break
			}
			leader = st.Leader
		}
		if agree {
			for _, p := range live {
				if p.id == leader {
					return p
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no agreed leader among %d leads within %v", len(live), timeout)
	return nil
}

// waitSettled waits until the leads have converged and stay converged on
// the same hash for a while: the leader's loop may still be recording
// decisions about the last writes.
func (c *cluster) waitSettled(live []*leadProc) string {
	c.t.Helper()
	prev := c.waitConverged(live)
	for range 100 {
		time.Sleep(500 * time.Millisecond)
		h := c.waitConverged(live)
		if h == prev {
			return h
		}
		prev = h
	}
	c.t.Fatal("the knowledge base never settled")
	return ""
}

// waitConverged waits until the leads report the same KB hash at the same
// applied index.
func (c *cluster) waitConverged(live []*leadProc) string {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last []string
	for time.Now().Before(deadline) {
		last = last[:0]
		for _, p := range live {
			st, err := c.status(p)
			if err != nil {
				last = append(last, err.Error())
				continue
			}
			last = append(last, fmt.Sprintf("%s@%d", st.KBHash, st.AppliedIndex))
		}
		if len(last) == len(live) && !strings.Contains(strings.Join(last, ""), " ") && allSame(last) {
			return strings.Split(last[0], "@")[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("leads did not converge: %v", last)
	return ""
}

func allSame(xs []string) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

func appSpec(name string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"qonnect.io/v1alpha1","kind":"Application","metadata":{"name":%q},
"spec":{"components":[{"name":"web","tier":"edge","resources":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"k":"v"}}]}]}}`, name))
}

func others(all []*leadProc, not *leadProc) []*leadProc {
	var out []*leadProc
	for _, p := range all {
		if p != not {
			out = append(out, p)
		}
	}
	return out
}

func TestThreeLeadProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: builds and runs three lead processes")
	}
	c := startCluster(t)
	leader := c.waitLeader(c.procs, 30*time.Second)
	followers := others(c.procs, leader)
	t.Logf("leader %s", leader.id)

	// Acknowledged writes, half of them through a follower (forwarded).
	var acked []string
	for i := range 20 {
		target := leader
		if i%2 == 1 {
			target = followers[0]
		}
		name := fmt.Sprintf("app-%02d", i)
		code, b, err := c.do("POST", target.api, "/v1/apps", appSpec(name))
		if err != nil || code != 200 {
			t.Fatalf("apply %s via %s: %d %s %v", name, target.id, code, b, err)
		}
		acked = append(acked, name)
	}

	// SIGKILL the leader: a new one is elected among the other two.
	killed := time.Now()
	c.kill(leader, syscall.SIGKILL)
	newLeader := c.waitLeader(followers, 20*time.Second)
	t.Logf("new leader %s elected %v after SIGKILL", newLeader.id, time.Since(killed))
	for _, p := range followers {
		code, b, err := c.do("GET", p.api, "/v1/apps?consistent=true", nil)
		if err != nil || code != 200 {
			t.Fatalf("list apps on %s: %d %s %v", p.id, code, b, err)
		}
		var list apiv1.AppList
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range list.Items {
			names = append(names, a.Spec.Metadata.Name)
		}
		for _, want := range acked {
			if !slices.Contains(names, want) {
				t.Fatalf("%s lost acknowledged write %s (has %v)", p.id, want, names)
			}
		}
	}
	// Writes go on, again through a follower.
	other := others(followers, newLeader)[0]
	if code, b, err := c.do("POST", other.api, "/v1/apps", appSpec("after-failover")); err != nil || code != 200 {
		t.Fatalf("write after failover via %s: %d %s %v", other.id, code, b, err)
	}

	// The killed lead comes back from its disk and catches up.
	c.start(leader)
	h1 := c.waitSettled(c.procs)

	// Stop all three, restart all three from disk: the same KB everywhere.
	for _, p := range c.procs {
		c.kill(p, syscall.SIGTERM)
	}
	for _, p := range c.procs {
		c.start(p)
	}
	c.waitLeader(c.procs, 30*time.Second)
	h2 := c.waitSettled(c.procs)
	if h1 != h2 {
		t.Fatalf("KB after restart %s, before %s", h2, h1)
	}
	t.Logf("restarted from disk; all three at KB hash %s", h2[:16])
}

// A lead started with --no-bootstrap asks the group to add it, catches up,
// and serves the same KB.
func TestLeadJoinsWithNoBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: builds and runs four lead processes")
	}
	c := startCluster(t)
	leader := c.waitLeader(c.procs, 30*time.Second)
	if code, b, err := c.do("POST", leader.api, "/v1/apps", appSpec("before-join")); err != nil || code != 200 {
		t.Fatalf("apply: %d %s %v", code, b, err)
	}
	ports := freePorts(t, 2)
	p := c.newProc("lead3", ports[0], ports[1], "--no-bootstrap")
	c.procs = append(c.procs, p)
	c.start(p)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.status(leader)
		if err == nil && len(st.Members) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lead3 not added: %+v %v", st.Members, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.waitConverged(c.procs)
	st, err := c.status(p)
	if err != nil || st.LeaderAPI == "" {
		t.Fatalf("lead3 status %+v %v", st, err)
	}
	for _, m := range st.Members {
		if m.ID == "lead3" && m.APIAddr != p.api {
			t.Fatalf("lead3 recorded with API %q", m.APIAddr)
		}
	}
}

// BenchmarkElectionAfterSIGKILL measures the time from SIGKILL of the
// leader process to an agreed new leader, over at least 10 rounds.
func BenchmarkElectionAfterSIGKILL(b *testing.B) {
	c := startCluster(b)
	c.waitLeader(c.procs, 30*time.Second)
	rounds := max(b.N, 10)
	var times []time.Duration
	b.ResetTimer()
	for range rounds {
		leader := c.waitLeader(c.procs, 30*time.Second)
		c.waitConverged(c.procs)
		start := time.Now()
		c.kill(leader, syscall.SIGKILL)
		c.waitLeader(others(c.procs, leader), 20*time.Second)
		times = append(times, time.Since(start))
		c.start(leader)
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "median-election-ms")
	b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-election-ms")
	b.Logf("election times over %d rounds (GOMAXPROCS %d): %v", rounds, runtime.GOMAXPROCS(0), times)
}
