// Package sandboxtest starts sandbox federations for tests and tears them
// down when the test ends, failed or not.
package sandboxtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/sandbox"
)

// EnvQonnectBin names a folder with already built qonnect binaries (make
// test sets it to bin/); when unset they are built once per test binary.
const EnvQonnectBin = "QONNECT_BIN"

// Option changes how Start brings the federation up.
type Option func(*config)

type config struct {
	qonnect         bool
	leadArgs, agent []string
}

// WithQonnect starts the leads and agents too (building them if needed).
// Extra flags may be given for every lead and every agent.
func WithQonnect(leadArgs, agentArgs []string) Option {
	return func(c *config) { c.qonnect, c.leadArgs, c.agent = true, leadArgs, agentArgs }
}

// Start brings up a federation for p in a temporary folder and registers
// its teardown with t.Cleanup. Progress goes to the test log.
func Start(t testing.TB, p *sandbox.Profile, opts ...Option) *sandbox.Federation {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := sandbox.TestbedBin(ctx, testWriter{t})
	if err != nil {
		t.Fatalf("testbed binaries: %v", err)
	}
	o := sandbox.Options{Dir: t.TempDir(), TestbedBin: bin, Progress: testWriter{t}, LeadArgs: cfg.leadArgs, AgentArgs: cfg.agent}
	if cfg.qonnect {
		o.QonnectBin = QonnectBin(t)
	}
	f, err := sandbox.Up(ctx, p, o)
	if err != nil {
		t.Fatalf("sandbox up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, o.Dir)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := f.Down(ctx); err != nil {
			t.Errorf("sandbox down: %v", err)
		}
	})
	return f
}

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  error
)

// QonnectBin returns a folder with qonnect-lead and qonnect-agent: $QONNECT_BIN,
// or a build of the working tree made once per test binary.
func QonnectBin(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvQonnectBin); d != "" {
		return d
	}
	buildOnce.Do(func() {
		root, err := sandbox.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		builtDir, buildErr = os.MkdirTemp("", "qonnect-bin-")
		if buildErr != nil {
			return
		}
		for _, name := range []string{"qonnect-lead", "qonnect-agent", "kubectl-qonnect"} {
			if _, err := os.Stat(filepath.Join(root, "cmd", name)); err != nil {
				continue
			}
			cmd := exec.Command("go", "build", "-o", filepath.Join(builtDir, name), "./cmd/"+name)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{name: name, out: string(out), err: err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build qonnect binaries: %v", buildErr)
	}
	return builtDir
}

type buildError struct {
	name, out string
	err       error
}

func (e *buildError) Error() string {
	return "go build " + e.name + ": " + e.err.Error() + "\n" + e.out
}

// dumpLogs puts the tail of every qonnect log into the test output, so a
// failure in CI can be read without the folder.
func dumpLogs(t testing.TB, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		t.Logf("--- %s (tail)\n%s", filepath.Base(l), data)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(trimNL(p)))
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	return p
}
