package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	var err error
	if code := Execute(args, &out, &errOut); code != 0 {
		err = fmt.Errorf("exit %d", code)
	}
	return out.String(), errOut.String(), err
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("clusters:\n  - name: a\n    tier: moon\n    role: lead\n    nodes: [{name: w, cpu: \"1\", memory: 1Gi}]\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown tier", []string{"up", "--profile", bad, "--dir", filepath.Join(dir, "sb")}, `clusters[0].tier: unknown tier "moon"`},
		{"missing profile", []string{"up", "--profile", filepath.Join(dir, "nope.yaml"), "--dir", filepath.Join(dir, "sb")}, "no such file"},
		{"status without sandbox", []string{"status", "--dir", filepath.Join(dir, "none")}, "no sandbox in"},
		{"down without sandbox", []string{"down", "--dir", filepath.Join(dir, "none")}, "no sandbox in"},
		{"fault without name", []string{"fault", "stop-cluster", "--dir", dir}, "takes exactly one name"},
		{"bad output", []string{"status", "-o", "xml", "--dir", dir}, `unknown output format "xml"`},
		{"unknown flag", []string{"up", "--frobnicate"}, "unknown flag: --frobnicate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := run(t, tc.args...)
			if err == nil {
				t.Fatal("command succeeded on bad input")
			}
			msg := stderr
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not contain %q", msg, tc.want)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Fatalf("stderr is more than one line: %q", stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "sb", "sandbox.json")); err == nil {
				t.Fatal("a sandbox was recorded despite the bad input")
			}
		})
	}
}
