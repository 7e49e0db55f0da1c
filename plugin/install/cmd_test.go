package install

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"
)

func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	cmd := NewCmdInstall(streams)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

// TestClientDryRun renders without any cluster (the kubeconfig does not
// exist) and never prints a Secret.
func TestClientDryRun(t *testing.T) {
	noCluster := []string{"--kubeconfig", "/nonexistent/kubeconfig"}
	out, errOut, err := runCmd(t, append([]string{"lead", "--id", "cloud-1", "--dry-run"}, noCluster...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, want := range []string{
		"namespace/qonnect-system created (dry run)\n",
		"deployment.apps/qonnect-lead created (dry run)\n",
		"secret/qonnect-lead-tls created (dry run; its keys are made by a real install)\n",
		"secret/qonnect-user-default created (dry run; its keys are made by a real install)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	for _, format := range []string{"yaml", "json"} {
		out, errOut, err = runCmd(t, append([]string{"agent", "--cluster", "edge-1", "--tier", "edge", "--leads", "h:7443", "--dry-run", "-o", format}, noCluster...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		var list struct {
			Kind  string `json:"kind"`
			Items []struct {
				Kind string `json:"kind"`
			} `json:"items"`
		}
		if err := yaml.Unmarshal([]byte(out), &list); err != nil || list.Kind != "List" || len(list.Items) < 8 {
			t.Fatalf("-o %s: %v, %+v\n%s", format, err, list, out)
		}
		for _, it := range list.Items {
			if it.Kind == "Secret" {
				t.Errorf("-o %s printed a Secret", format)
			}
		}
		if !strings.Contains(errOut, "not shown, they hold private keys: secret/qonnect-agent-tls") {
			t.Errorf("-o %s: stderr %q", format, errOut)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"no id", []string{"lead", "--dry-run"}, "--id is required"},
		{"bad dry run", []string{"lead", "--id", "a", "--dry-run=maybe"}, `--dry-run "maybe": want client, server or none`},
		{"bad output", []string{"lead", "--id", "a", "--dry-run", "-o", "wide"}, `--output "wide": want yaml, json or name`},
		{"wait and dry run", []string{"lead", "--id", "a", "--dry-run", "--wait"}, "--wait and --dry-run exclude each other"},
		{"bad peers", []string{"lead", "--id", "a", "--peers", "a=b"}, "--peers"},
		{"agent tier", []string{"agent", "--cluster", "c", "--tier", "sky", "--leads", "h:1", "--dry-run"}, `--tier: unknown tier "sky"`},
		{"argument", []string{"lead", "extra"}, "takes no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line containing %q", err, tc.err)
			}
		})
	}
}
