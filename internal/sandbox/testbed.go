package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// testbedBinaries are what a cluster needs, built by hack/testbed.sh.
var testbedBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwokctl"}

// EnvTestbedBin names a folder holding the testbed binaries; when unset
// they are looked up (and built, if missing) through hack/testbed.sh.
const EnvTestbedBin = "QONNECT_TESTBED_BIN"

// TestbedBin returns the folder with the testbed binaries, building them
// first if needed (minutes on a cold machine; progress goes to progress).
func TestbedBin(ctx context.Context, progress io.Writer) (string, error) {
	if dir := os.Getenv(EnvTestbedBin); dir != "" {
		if err := checkBinaries(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvTestbedBin, dir, err)
		}
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("testbed binaries: set %s, or run from the qonnect source tree: %w", EnvTestbedBin, err)
	}
	script := filepath.Join(root, "hack", "testbed.sh")
	// Cheap path first: ask where they would be and look.
	out, err := exec.CommandContext(ctx, "bash", script, "--print-dir").Output()
	if err != nil {
		return "", fmt.Errorf("run %s: %w", script, err)
	}
	dir := strings.TrimSpace(string(out))
	if checkBinaries(dir) == nil {
		return dir, nil
	}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stdout = &stdout
	cmd.Stderr = progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build testbed binaries (%s): %w", script, err)
	}
	dir = strings.TrimSpace(stdout.String())
	return dir, checkBinaries(dir)
}

func checkBinaries(dir string) error {
	for _, b := range testbedBinaries {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is missing from %s", b, dir)
		}
	}
	return nil
}

// SourceRoot is the source tree a binary was built from (make build sets
// it), so qonnect-sandbox finds hack/testbed.sh from any folder.
var SourceRoot string

// RepoRoot finds the qonnect source tree from the working directory up, or
// else the tree the binary was built from.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if SourceRoot != "" {
		if _, err := os.Stat(filepath.Join(SourceRoot, "hack", "testbed.sh")); err == nil {
			if _, err := findUp(dir); err != nil {
				return SourceRoot, nil
			}
		}
	}
	return findUp(dir)
}

func findUp(dir string) (string, error) {
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module qonnect.io/qonnect\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of qonnect.io/qonnect not found above the working directory")
		}
		dir = parent
	}
}
