package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/pki"
)

func newCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("pki-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// writeIdentity issues req from ca and writes it under dir/name.
func writeIdentity(t testing.TB, ca *pki.CA, dir string, req pki.Request) pki.Files {
	t.Helper()
	is, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ca.WriteFiles(dir, req.Name, is)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func keyPair(t testing.TB, ca *pki.CA, req pki.Request) tls.Certificate {
	t.Helper()
	is, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serverOnly signs, with ca, a certificate that may only serve (no client
// usage) — pki.Issue never makes one, but a stolen web server certificate
// from the same CA would look like this.
func serverOnly(t testing.TB, ca *pki.CA) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "web", Organization: []string{string(pki.RoleUser)}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshakeServer accepts TLS connections with cfg and reports the
// server-side result of each handshake, so a test can tell a refusal at
// the handshake from one later on.
func handshakeServer(t *testing.T, cfg *tls.Config) (addr string, results <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, cfg)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			err = tc.Handshake()
			if err == nil {
				// Prove the connection works: echo one line.
				_, err = tc.Write([]byte("ok\n"))
			}
			ch <- err
			tc.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), ch
}

// TestHandshakeRejections: whoever cannot show a valid certificate from the
// federation CA, made for a client, is refused by the TLS handshake itself
// (ServerConfig is what the lead's API and Raft listeners use), before any
// request is read.
func TestHandshakeRejections(t *testing.T) {
	ca, foreign := newCA(t), newCA(t)
	dir := t.TempDir()
	srv, err := pki.ServerConfig(writeIdentity(t, ca, filepath.Join(dir, "lead"), pki.Request{Role: pki.RoleLead, Name: "lead0", Hosts: []string{"127.0.0.1"}}))
	if err != nil {
		t.Fatal(err)
	}
	addr, results := handshakeServer(t, srv)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		// serverErr is part of the server's handshake error; "" means the
		// handshake must succeed.
		serverErr string
	}{
		{"valid user certificate", []tls.Certificate{keyPair(t, ca, pki.Request{Role: pki.RoleUser, Name: "alice"})}, ""},
		{"valid agent certificate", []tls.Certificate{keyPair(t, ca, pki.Request{Role: pki.RoleAgent, Name: "edge-a"})}, ""},
		{"no certificate", nil, "client didn't provide a certificate"},
		{"certificate from another CA", []tls.Certificate{keyPair(t, foreign, pki.Request{Role: pki.RoleLead, Name: "lead0"})}, "unknown authority"},
		{"expired certificate", []tls.Certificate{keyPair(t, ca, pki.Request{Role: pki.RoleUser, Name: "alice",
			NotBefore: time.Now().Add(-48 * time.Hour), TTL: 24 * time.Hour})}, "expired"},
		{"certificate not yet valid", []tls.Certificate{keyPair(t, ca, pki.Request{Role: pki.RoleUser, Name: "alice",
			NotBefore: time.Now().Add(24 * time.Hour)})}, "not yet valid"},
		{"server-only certificate used as a client", []tls.Certificate{serverOnly(t, ca)}, "incompatible key usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: tc.certs})
			if err != nil {
				t.Fatalf("client handshake: %v", err) // the server's own certificate must verify
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			// In TLS 1.3 the client learns of a refusal on its first read.
			line, readErr := io.ReadAll(io.LimitReader(conn, 3))
			serverErr := <-results
			if tc.serverErr == "" {
				if serverErr != nil || readErr != nil || string(line) != "ok\n" {
					t.Fatalf("valid certificate refused: server %v, client %v %q", serverErr, readErr, line)
				}
				return
			}
			if serverErr == nil || !strings.Contains(serverErr.Error(), tc.serverErr) {
				t.Fatalf("server handshake error = %v, want one containing %q", serverErr, tc.serverErr)
			}
			if readErr == nil || len(line) > 0 {
				t.Fatalf("refused client could read %q (err %v)", line, readErr)
			}
		})
	}
}

func TestIdentityOf(t *testing.T) {
	ca := newCA(t)
	parse := func(c tls.Certificate) *x509.Certificate {
		x, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want pki.Identity
		err  bool
	}{
		{"lead", parse(keyPair(t, ca, pki.Request{Role: pki.RoleLead, Name: "lead0"})), pki.Identity{Role: pki.RoleLead, Name: "lead0"}, false},
		{"agent", parse(keyPair(t, ca, pki.Request{Role: pki.RoleAgent, Name: "edge-a"})), pki.Identity{Role: pki.RoleAgent, Name: "edge-a"}, false},
		{"user", parse(keyPair(t, ca, pki.Request{Role: pki.RoleUser, Name: "alice"})), pki.Identity{Role: pki.RoleUser, Name: "alice"}, false},
		{"CA certificate carries no role", ca.Cert, pki.Identity{}, true},
		{"nil", nil, pki.Identity{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pki.IdentityOf(tc.cert)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("IdentityOf = %v, %v; want %v, error %v", got, err, tc.want, tc.err)
			}
			if err != nil && !errors.Is(err, pki.ErrNoIdentity) {
				t.Fatalf("error %v is not ErrNoIdentity", err)
			}
		})
	}
	if _, err := ca.Issue(pki.Request{Role: "qonnect:admin", Name: "root"}); err == nil {
		t.Fatal("issued a certificate with an unknown role")
	}
}

// TestRotationWithoutDowntime replaces a server's and a client's
// certificate files on disk while the client keeps making requests, each
// on a new connection: every request succeeds, and new handshakes present
// the new certificates (seen by their serial numbers) within a few
// seconds, without a restart.
func TestRotationWithoutDowntime(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	leadReq := pki.Request{Role: pki.RoleLead, Name: "lead0", Hosts: []string{"127.0.0.1"}}
	userReq := pki.Request{Role: pki.RoleUser, Name: "alice"}
	leadFiles := writeIdentity(t, ca, filepath.Join(dir, "lead"), leadReq)
	userFiles := writeIdentity(t, ca, filepath.Join(dir, "user"), userReq)

	srvTLS, err := pki.ServerConfig(leadFiles)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: srvTLS, ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Echo the client certificate's serial, so the client sees
			// its own rotation too.
			fmt.Fprint(w, r.TLS.PeerCertificates[0].SerialNumber.String())
		})}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	cliTLS, err := pki.ClientConfig(userFiles)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cliTLS, DisableKeepAlives: true}}
	url := "https://" + ln.Addr().String() + "/"

	type seen struct{ server, client string }
	get := func() (seen, error) {
		resp, err := client.Get(url)
		if err != nil {
			return seen{}, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return seen{}, fmt.Errorf("status %d %q: %v", resp.StatusCode, b, err)
		}
		return seen{server: resp.TLS.PeerCertificates[0].SerialNumber.String(), client: string(b)}, nil
	}
	before, err := get()
	if err != nil {
		t.Fatal(err)
	}

	// A steady stream of requests while the files change underneath.
	stop := make(chan struct{})
	var (
		mu       sync.Mutex
		failures []error
		history  []seen
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := get()
			mu.Lock()
			if err != nil {
				failures = append(failures, err)
			} else {
				history = append(history, s)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()

	time.Sleep(100 * time.Millisecond)
	newLead := writeIdentity(t, ca, filepath.Join(dir, "lead"), leadReq)
	newUser := writeIdentity(t, ca, filepath.Join(dir, "user"), userReq)
	if newLead != leadFiles || newUser != userFiles {
		t.Fatal("rotation must write the same paths")
	}

	deadline := time.Now().Add(10 * time.Second)
	var last seen
	for time.Now().Before(deadline) {
		mu.Lock()
		if len(history) > 0 {
			last = history[len(history)-1]
		}
		mu.Unlock()
		if last.server != before.server && last.client != before.client {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during rotation, first: %v", len(failures), len(failures)+len(history), failures[0])
	}
	if last.server == before.server || last.client == before.client {
		t.Fatalf("new handshakes still present the old certificates after 10s: server %s, client %s", last.server, last.client)
	}
	// Once a new certificate was served, the old one never comes back.
	newServer := false
	for _, s := range history {
		if s.server != before.server {
			newServer = true
		} else if newServer {
			t.Fatal("the old server certificate was served again after the new one")
		}
	}
	t.Logf("%d requests across the rotation, none failed", len(history))
}

// TestReloaderKeepsLastGoodPair: a half-written or removed key pair on disk
// does not take the server down; it keeps serving the pair it has.
func TestReloaderKeepsLastGoodPair(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	f := writeIdentity(t, ca, dir, pki.Request{Role: pki.RoleLead, Name: "lead0"})
	r, err := pki.NewReloader(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	// A new certificate whose key has not arrived yet: mismatched pair.
	other, err := ca.Issue(pki.Request{Role: pki.RoleLead, Name: "lead0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Cert, other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the reload interval
	got, err := r.GetCertificate(nil)
	if err != nil || got != first {
		t.Fatalf("mismatched pair on disk: got %v, %v; want the last good pair", got, err)
	}
	if _, err := pki.NewReloader(filepath.Join(dir, "missing.crt"), f.Key); err == nil {
		t.Fatal("NewReloader accepted a missing certificate")
	}
}
