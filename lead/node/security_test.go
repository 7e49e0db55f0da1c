package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/pki"
)

// TestLeadSecurity runs three real lead processes with TLS and checks, from
// outside, what issue 9 promises of the binary: refused handshakes, agent
// authorization, certificate rotation without a restart or a failed
// request, and no key material in logs or error bodies.
func TestLeadSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: builds and runs three lead processes")
	}
	c := startCluster(t)
	leader := c.waitLeader(c.procs, 30*time.Second)
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	// Every private key this test knows of; none may show up anywhere.
	keys := [][]byte{}
	if k, err := c.ca.KeyPEM(); err == nil {
		keys = append(keys, k)
	}
	for _, p := range c.procs {
		k, err := os.ReadFile(filepath.Join(c.dir, p.id, "tls", p.id+".key"))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	clientOf := func(req pki.Request) *http.Client {
		is, err := c.ca.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, is.KeyPEM)
		pair, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	}
	var bodies strings.Builder // every answer, scanned for keys at the end
	send := func(cl *http.Client, method, path, body string) (int, error) {
		req, err := http.NewRequest(method, "https://"+leader.api+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Do(req)
		if err != nil {
			fmt.Fprintln(&bodies, err)
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		bodies.Write(b)
		return resp.StatusCode, nil
	}

	t.Run("handshake refusals", func(t *testing.T) {
		other, err := pki.NewCA("other", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		foreign := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		for name, cl := range map[string]*http.Client{
			"no certificate": foreign,
			"another CA": func() *http.Client {
				is, _ := other.Issue(pki.Request{Role: pki.RoleLead, Name: "lead0"})
				pair, _ := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
				return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
			}(),
			"expired": clientOf(pki.Request{Role: pki.RoleUser, Name: "alice", NotBefore: time.Now().Add(-48 * time.Hour), TTL: time.Hour}),
		} {
			if code, err := send(cl, "GET", "/v1/apps", ""); err == nil || !strings.Contains(err.Error(), "tls:") {
				t.Errorf("%s: HTTP %d, err %v; want a refused handshake", name, code, err)
			}
		}
	})

	t.Run("agent for another cluster", func(t *testing.T) {
		agentA := clientOf(pki.Request{Role: pki.RoleAgent, Name: "edge-a"})
		for _, tc := range []struct {
			method, path, body string
			want               int
		}{
			{"POST", "/v1/clusters", `{"cluster":{"name":"edge-a","tier":"edge","endpoint":"a:1"}}`, 200},
			{"POST", "/v1/clusters", `{"cluster":{"name":"edge-b","tier":"edge","endpoint":"b:1"}}`, 403},
			{"PUT", "/v1/clusters/edge-b/nodes", `{"nodes":[{"name":"n1"}],"full":true}`, 403},
			{"PUT", "/v1/clusters/edge-b/status", `{"statuses":[]}`, 403},
			{"GET", "/v1/clusters/edge-b/assignments", ``, 403},
			{"POST", "/v1/apps", string(appSpec("by-agent")), 403},
			{"PUT", "/v1/clusters/edge-a/nodes", `{"nodes":[{"name":"Bad Node"}]}`, 400},
			{"POST", "/v1/clusters", `{"cluster":` + strings.Repeat(" ", 5<<20) + `}`, 413},
		} {
			if code, err := send(agentA, tc.method, tc.path, tc.body); err != nil || code != tc.want {
				t.Errorf("%s %s: %d %v, want %d", tc.method, tc.path, code, err, tc.want)
			}
		}
	})

	t.Run("rotation", func(t *testing.T) {
		user := clientOf(pki.Request{Role: pki.RoleUser, Name: "alice"})
		serial := func() (string, error) {
			resp, err := user.Get("https://" + leader.api + "/v1/raft")
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 {
				return "", fmt.Errorf("status %d", resp.StatusCode)
			}
			return resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
		}
		old, err := serial()
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu       sync.Mutex
			failures []error
			latest   string
			n        int
		)
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := serial()
				mu.Lock()
				n++
				if err != nil {
					failures = append(failures, err)
				} else {
					latest = s
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
		// Replace the leader's certificate files the way a Secret update
		// or cert-manager does: new files at the same paths.
		is, err := c.ca.Issue(pki.Request{Role: pki.RoleLead, Name: leader.id, Hosts: []string{"127.0.0.1", "localhost"}})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, is.KeyPEM)
		if _, err := c.ca.WriteFiles(filepath.Join(c.dir, leader.id, "tls"), leader.id, is); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			rotated := latest != "" && latest != old
			mu.Unlock()
			if rotated {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		if latest == old {
			t.Fatalf("the lead still serves certificate %s 15s after rotation", old)
		}
		if len(failures) > 0 {
			t.Fatalf("%d of %d requests failed during rotation, first: %v", len(failures), n, failures[0])
		}
		t.Logf("certificate rotated under %d requests, none failed", n)
		// Raft kept working with the new certificate.
		if code, err := send(user, "POST", "/v1/apps", string(appSpec("after-rotation"))); err != nil || code != 200 {
			t.Fatalf("write after rotation: %d %v", code, err)
		}
	})

	t.Run("no key material in logs or answers", func(t *testing.T) {
		var text strings.Builder
		text.WriteString(bodies.String())
		for _, p := range c.procs {
			b, err := os.ReadFile(p.logPath)
			if err != nil {
				t.Fatal(err)
			}
			text.Write(b)
		}
		all := text.String()
		if !strings.Contains(all, "forbidden") {
			t.Fatal("the logs and answers hold no trace of the refused requests; is the scan looking at the right files?")
		}
		for _, marker := range []string{"PRIVATE KEY", "BEGIN EC", "LS0tLS1CRUdJTi"} {
			if strings.Contains(all, marker) {
				t.Errorf("logs or answers hold %q", marker)
			}
		}
		for i, k := range keys {
			for _, frag := range keyFragments(t, k) {
				if strings.Contains(all, frag) {
					t.Errorf("logs or answers hold a piece of private key %d: %q", i, frag)
				}
			}
		}
	})
}

// keyFragments are pieces of a PEM key's base64 body long enough to be
// unmistakable: each full line as written in the file.
func keyFragments(t *testing.T, keyPEM []byte) []string {
	t.Helper()
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("key is not PEM")
	}
	var out []string
	for line := range strings.Lines(string(keyPEM)) {
		line = strings.TrimSpace(line)
		if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}
