package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// runLogged runs a command to completion, appending its output to logFile;
// on failure the error carries the output's last lines.
func runLogged(ctx context.Context, env []string, logFile, bin string, args ...string) error {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdout = &out
	cmd.Stderr = &out
	fmt.Fprintf(lf, "$ %s %s\n", filepath.Base(bin), strings.Join(args, " "))
	err = cmd.Run()
	lf.Write(out.Bytes())
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), args[0], err, lastLines(out.String(), 3))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// startProcess starts p detached from the caller (its own process group),
// so it outlives a `qonnect-sandbox up` that returns, with its output in p.Log.
func startProcess(p *Process) error {
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "--- %s started %s: %s %s\n", p.Kind, time.Now().UTC().Format(time.RFC3339), p.Binary, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Binary, p.Args...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s %s: %w", p.Kind, p.ID, err)
	}
	p.Pid = cmd.Process.Pid
	// Reap it when it exits so it does not linger as a zombie while the
	// starting process lives on (tests).
	go func() { _ = cmd.Wait() }()
	return nil
}

// alive reports whether p's recorded pid is still the process the sandbox
// started: the pid exists and runs p's binary. A reused pid is not ours.
func alive(p *Process) bool {
	if p == nil || p.Pid <= 0 {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if err != nil {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid)); err == nil {
		// A zombie has exited already.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	want, _ := filepath.EvalSymlinks(p.Binary)
	return strings.TrimSuffix(exe, " (deleted)") == want || exe == p.Binary
}

// stopProcess sends SIGTERM to p (if it is still ours), then SIGKILL after grace.
func stopProcess(p *Process, grace time.Duration) error {
	if !alive(p) {
		p.Pid = 0
		return nil
	}
	if err := syscall.Kill(p.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s %s: %w", p.Kind, p.ID, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(p) {
			p.Pid = 0
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return killProcess(p)
}

// killProcess sends SIGKILL to p (if it is still ours) and waits for it to go.
func killProcess(p *Process) error {
	if !alive(p) {
		p.Pid = 0
		return nil
	}
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s %s: %w", p.Kind, p.ID, err)
	}
	for i := 0; i < 100 && alive(p); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	p.Pid = 0
	return nil
}

// lockFile takes an exclusive lock on path, waiting for it as long as ctx allows.
func lockFile(ctx context.Context, path string) (func(), error) {
	fd, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(fd.Fd()), syscall.LOCK_UN); fd.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			fd.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			fd.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
