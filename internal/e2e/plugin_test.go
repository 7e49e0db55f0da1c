package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
)

const helloSpec = `apiVersion: qonnect.io/v1alpha1
kind: Application
metadata:
  name: hello
spec:
  qos: {cost: 1}
  components:
    - name: web
      tier: edge
      manifests: web.yaml
`

const helloWeb = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: docker.io/istio/examples-bookinfo-details-v1:1.20.2
          resources: {requests: {cpu: 100m, memory: 64Mi}}
`

// testPlugin is a user's session with the real kubectl-qonnect binary
// against the sandbox: apply --wait, get -o json, explain, delete.
func testPlugin(t *testing.T, e *env) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.yaml"), []byte(helloSpec), 0o644)
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(helloWeb), 0o644)
	bin := filepath.Join(sandboxtest.QonnectBin(t), "kubectl-qonnect")
	u := e.f.UserTLS()
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"QONNECT_LEAD="+strings.Join(e.f.LeadAPIs(), ","),
			"QONNECT_LEAD_CA="+u.CA, "QONNECT_LEAD_CERT="+u.Cert, "QONNECT_LEAD_KEY="+u.Key)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}

	out, errOut, code := run("apply", "-f", "hello.yaml", "--wait", "--timeout", "2m")
	if code != 0 || !strings.Contains(out, "application.qonnect.io/hello created") {
		t.Fatalf("apply --wait: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = run("get", "apps", "-o", "json")
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("get apps -o json: exit %d, %q", code, out)
	}
	found := false
	for _, it := range list.Items {
		found = found || it.Metadata.Name == "hello"
	}
	if !found {
		t.Fatalf("get apps -o json does not list hello:\n%s", out)
	}
	out, errOut, code = run("explain", "app", "hello", "web")
	if code != 0 || !strings.Contains(out, "edge-cost") {
		t.Fatalf("explain: exit %d (a cost goal should choose edge-cost)\n%s%s", code, out, errOut)
	}
	if _, errOut, code = run("delete", "app", "hello"); code != 0 {
		t.Fatalf("delete: exit %d: %s", code, errOut)
	}
	_, errOut, code = run("get", "app", "hello")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("get of a deleted app: exit %d, stderr %q; want exit 1 and one line saying not found", code, errOut)
	}
	_, errOut, code = run("apply", "-f", "nope.yaml")
	if code != 1 || !strings.HasPrefix(errOut, "error: ") || strings.Contains(errOut, "goroutine") {
		t.Fatalf("apply of a missing file: exit %d, stderr %q", code, errOut)
	}
}
