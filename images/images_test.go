package images

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/pki"
)

// TestImages builds both images with `make images`, under a throw-away
// name, and runs them as the manifests do (non-root, read-only root
// filesystem): the agent prints its usage, and the lead starts for real —
// its own Raft group of one, with TLS — and answers /readyz.
func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: builds container images")
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	registry, tag := "qonnect-test", "t"+hex.EncodeToString(suffix)
	lead, agent := registry+"/qonnect-lead:"+tag, registry+"/qonnect-agent:"+tag
	t.Cleanup(func() {
		_ = exec.Command("docker", "rmi", "--force", lead, agent).Run()
	})

	make := exec.Command("make", "-s", "images", "IMAGE_REGISTRY="+registry, "IMAGE_TAG="+tag)
	make.Dir = ".."
	out, err := make.CombinedOutput()
	if err != nil {
		t.Fatalf("make images: %v\n%s", err, out)
	}
	for _, ref := range []string{lead, agent} {
		if !strings.Contains(string(out), ref+"\n") {
			t.Errorf("make images did not report %s:\n%s", ref, out)
		}
		info := docker(t, "image", "inspect", "--format", "{{.Size}} {{.Config.User}} {{json .Config.Entrypoint}}", ref)
		t.Logf("%s: %s", ref, info)
		if !strings.Contains(info, " 65532:65532 ") {
			t.Errorf("%s runs as %s, want 65532:65532", ref, info)
		}
	}

	t.Run("agent", func(t *testing.T) {
		out := docker(t, "run", "--rm", "--read-only", "--network", "none", agent, "--help")
		for _, flag := range []string{"-cluster", "-leads", "-tls-cert"} {
			if !strings.Contains(out, flag) {
				t.Errorf("qonnect-agent --help lacks %s:\n%s", flag, out)
			}
		}
	})

	t.Run("lead", func(t *testing.T) {
		tlsDir := leadTLS(t, "img")
		raft, api, probe := freePort(t), freePort(t), freePort(t)
		name := "qonnect-test-lead-" + tag
		docker(t, "run", "--detach", "--name", name, "--read-only", "--network", "host",
			"--tmpfs", "/var/lib/qonnect:uid=65532,gid=65532", "--volume", tlsDir+":/etc/qonnect/tls:ro",
			lead, "--id", "img", "--data-dir", "/var/lib/qonnect",
			"--raft-addr", "127.0.0.1:"+raft, "--api-addr", "127.0.0.1:"+api, "--probe-addr", "127.0.0.1:"+probe,
			"--peers", fmt.Sprintf("img=127.0.0.1:%s=127.0.0.1:%s", raft, api),
			"--tls-ca", "/etc/qonnect/tls/ca.crt", "--tls-cert", "/etc/qonnect/tls/tls.crt", "--tls-key", "/etc/qonnect/tls/tls.key")
		t.Cleanup(func() { _ = exec.Command("docker", "rm", "--force", name).Run() })
		deadline := time.Now().Add(time.Minute)
		for {
			resp, err := http.Get("http://127.0.0.1:" + probe + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
				err = fmt.Errorf("readyz: %s", resp.Status)
			}
			if time.Now().After(deadline) {
				logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
				t.Fatalf("the lead in its container is not ready after a minute: %v\n%s", err, logs)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// leadTLS issues a lead certificate into a folder the container's user
// can read.
func leadTLS(t *testing.T, id string) string {
	t.Helper()
	ca, err := pki.NewCA("images test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue(pki.Request{Role: pki.RoleLead, Name: id, Hosts: []string{"127.0.0.1", "localhost"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.crt": ca.CertPEM, "tls.crt": is.CertPEM, "tls.key": is.KeyPEM} {
		// World-readable only because the key is a throw-away one and the
		// container runs as another user than the test.
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
