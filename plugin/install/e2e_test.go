package install

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
	"qonnect.io/qonnect/internal/spec"
)

func leaseNamed(name string) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process runs a binary until the test ends, its output in a log file the
// test prints when it fails.
func process(t *testing.T, name, bin string, args ...string) (logPath string) {
	t.Helper()
	logPath = filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			if len(data) > 6000 {
				data = data[len(data)-6000:]
			}
			t.Logf("--- %s log (tail)\n%s", name, data)
		}
	})
	return logPath
}

// tokenKubeconfig is a kubeconfig for c that authenticates as the agent's
// ServiceAccount: the agent then has exactly the permissions install
// gave it, as in its pod.
func tokenKubeconfig(t *testing.T, c *cluster) string {
	t.Helper()
	ctx := context.Background()
	exp := int64(3600)
	tr, err := c.kube.CoreV1().ServiceAccounts(DefaultNamespace).CreateToken(ctx, AgentName,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for the agent's ServiceAccount: %v", err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthorityData: c.cfg.CAData, CertificateAuthority: c.cfg.CAFile}
	kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["agent"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "agent"}
	kc.CurrentContext = "agent"
	path := filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// runInstalled starts a real qonnect-lead with the lead certificate install
// issued and a real qonnect-agent with the agent certificate and nothing
// but the agent ServiceAccount's permissions, applies an application with
// the user certificate, and checks that the agent deploys it and removes
// it without being refused anything.
func runInstalled(t *testing.T, fx *fixture, cloud, edge *cluster) {
	ctx := context.Background()
	bin := sandboxtest.QonnectBin(t)

	leadTLS := writeTLS(t, t.TempDir(), cloud.secret(t, LeadTLSSecret))
	raft, api, probe := freeAddr(t), freeAddr(t), freeAddr(t)
	leadLog := process(t, "qonnect-lead", filepath.Join(bin, "qonnect-lead"),
		"--id", "cloud-a", "--data-dir", t.TempDir(), "--raft-addr", raft, "--api-addr", api, "--probe-addr", probe,
		"--peers", "cloud-a="+raft+"="+api,
		"--tls-ca", leadTLS.CA, "--tls-cert", leadTLS.Cert, "--tls-key", leadTLS.Key)
	waitFor(t, "the lead to be ready", time.Minute, func() error {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	}, leadLog)

	agentTLS := writeTLS(t, t.TempDir(), edge.secret(t, AgentTLSSecret))
	agentLog := process(t, "qonnect-agent", filepath.Join(bin, "qonnect-agent"),
		"--cluster", "edge-a", "--tier", "edge", "--leads", "https://"+api, "--endpoint", "edge-a.example.org",
		"--kubeconfig", tokenKubeconfig(t, edge), "--namespace", DefaultNamespace,
		"--heartbeat-interval", "1s", "--resync", "5s",
		"--tls-ca", agentTLS.CA, "--tls-cert", agentTLS.Cert, "--tls-key", agentTLS.Key)

	// The user certificate install issued, as the plugin would use it.
	userTLS := writeTLS(t, t.TempDir(), cloud.secret(t, "qonnect-user-default"))
	tc, err := pki.ClientConfig(userTLS)
	if err != nil {
		t.Fatal(err)
	}
	user, err := leadclient.New(leadclient.Config{Addresses: []string{"https://" + api}, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edge-a to register with the lead", time.Minute, func() error {
		l, err := user.ListClusters(ctx)
		if err != nil {
			return err
		}
		if len(l.Items) == 0 {
			return fmt.Errorf("no cluster registered")
		}
		return nil
	}, agentLog)

	app, err := spec.Load("testdata/app/shop.yaml", spec.ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := user.ApplyApp(ctx, app, false); err != nil {
		t.Fatalf("apply the application: %v", err)
	}
	ns := app.NamespaceOf()
	waitFor(t, "the agent to deploy the application on edge-a", 2*time.Minute, func() error {
		n, err := edge.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Labels["app.kubernetes.io/managed-by"] != "qonnect" {
			return fmt.Errorf("namespace %s labels %v", ns, n.Labels)
		}
		for _, name := range []string{"web"} {
			if _, err := edge.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
				return err
			}
			if _, err := edge.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		_, err = edge.kube.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
		return err
	}, agentLog)
	if l, err := edge.kube.CoordinationV1().Leases(DefaultNamespace).Get(ctx, AgentName, metav1.GetOptions{}); err != nil || l.Spec.HolderIdentity == nil {
		t.Errorf("the agent holds no election lease: %v", err)
	}
	waitFor(t, "the agent's Events", 30*time.Second, func() error {
		ev, err := edge.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range ev.Items {
			if e.Source.Component == AgentName {
				return nil
			}
		}
		return fmt.Errorf("no Event from %s among %d in %s", AgentName, len(ev.Items), ns)
	}, agentLog)

	if _, err := user.DeleteApp(ctx, app.Metadata.Name); err != nil {
		t.Fatalf("delete the application: %v", err)
	}
	waitFor(t, "the agent to remove the application", 2*time.Minute, func() error {
		_, err := edge.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("deployment %s/web still there", ns)
	}, agentLog)

	// Whatever the agent tried, RBAC and the guard let it; only its sweep
	// through every resource type may meet types outside its role.
	data, err := os.ReadFile(agentLog)
	if err != nil {
		t.Fatal(err)
	}
	sweep := 0
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "forbidden") {
			continue
		}
		if strings.Contains(line, "cannot list objects to remove") {
			sweep++
			continue
		}
		t.Errorf("the agent was refused something: %s", line)
	}
	t.Logf("the agent's sweep for objects to remove met %d resource types outside its role", sweep)
	_ = edge.kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error, logPath string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(logPath)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Fatalf("waiting for %s: %v\n--- %s (tail)\n%s", what, err, filepath.Base(logPath), data)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
