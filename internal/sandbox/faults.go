package sandbox

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// StopCluster stops a cluster's control plane and its agent (which runs in
// that cluster): its API server stops answering and its heartbeats stop. A
// lead hosted there keeps running; KillLead stops that.
func (f *Federation) StopCluster(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.cluster(name)
	if err != nil {
		return err
	}
	if a := f.agent(name); a != nil {
		if err := killProcess(a); err != nil {
			return err
		}
	}
	if err := f.kwokctl(ctx, "stop", "cluster", "--name", c.KwokName); err != nil {
		return err
	}
	c.Stopped = true
	if err := f.save(); err != nil {
		return err
	}
	// kwokctl returns once it has signalled the components; the cluster is
	// stopped when its API server no longer accepts connections.
	for deadline := time.Now().Add(30 * time.Second); reachable(c); {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: API server still answers 30s after stop", name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// StartCluster starts a stopped cluster again, with its objects, and its agent.
func (f *Federation) StartCluster(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.cluster(name)
	if err != nil {
		return err
	}
	if err := f.kwokctl(ctx, "start", "cluster", "--name", c.KwokName); err != nil {
		return err
	}
	c.Stopped = false
	if err := f.waitAPI(ctx, c, 2*time.Minute); err != nil {
		return err
	}
	if a := f.agent(name); a != nil && !alive(a) {
		if err := startProcess(a); err != nil {
			return err
		}
	}
	return f.save()
}

func (f *Federation) waitAPI(ctx context.Context, c *ClusterState, timeout time.Duration) error {
	cs, err := f.clientLocked(c)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		if _, err := cs.Discovery().ServerVersion(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: API server not back after %s: %w", c.Name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// KillLead sends SIGKILL to a lead.
func (f *Federation) KillLead(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.lead(id)
	if err != nil {
		return err
	}
	if err := killProcess(p); err != nil {
		return err
	}
	return f.save()
}

// StopLead stops a lead gracefully (SIGTERM).
func (f *Federation) StopLead(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.lead(id)
	if err != nil {
		return err
	}
	if err := stopProcess(p, 10*time.Second); err != nil {
		return err
	}
	return f.save()
}

// StartLead starts a stopped lead again from its data folder.
func (f *Federation) StartLead(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.lead(id)
	if err != nil {
		return err
	}
	if alive(p) {
		return fmt.Errorf("lead %s is running (pid %d)", id, p.Pid)
	}
	if err := startProcess(p); err != nil {
		return err
	}
	return f.save()
}

// PartitionLead cuts a lead off from the other leads: nftables drops every
// packet between its address and theirs, both ways. Agents and users still
// reach it, as they would a lead whose cluster lost its links to the others.
func (f *Federation) PartitionLead(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.lead(id)
	if err != nil {
		return err
	}
	if slices.Contains(f.state.Partitioned, id) {
		return nil
	}
	var rules []string
	for _, o := range f.state.Leads {
		if o.ID == id {
			continue
		}
		rules = append(rules,
			fmt.Sprintf("add rule inet %s output ip saddr %s ip daddr %s drop", nftTable(f.state.ID), p.IP, o.IP),
			fmt.Sprintf("add rule inet %s output ip saddr %s ip daddr %s drop", nftTable(f.state.ID), o.IP, p.IP))
	}
	script := fmt.Sprintf("add table inet %[1]s\nadd chain inet %[1]s output { type filter hook output priority 0 ; policy accept ; }\n%[2]s\n",
		nftTable(f.state.ID), strings.Join(rules, "\n"))
	if err := nft(script); err != nil {
		return err
	}
	f.state.Partitioned = append(f.state.Partitioned, id)
	return f.save()
}

// Heal removes every partition of this sandbox.
func (f *Federation) Heal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := healNet(f.state.ID); err != nil {
		return err
	}
	f.state.Partitioned = nil
	return f.save()
}

func nftTable(id string) string { return "qonnect-" + id }

func healNet(id string) error {
	out, err := exec.Command("nft", "list", "table", "inet", nftTable(id)).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file") {
			return nil
		}
		return fmt.Errorf("nft list table: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nft(fmt.Sprintf("delete table inet %s\n", nftTable(id)))
}

func nft(script string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath("nft"); lerr != nil {
			return fmt.Errorf("nft is not installed (run make deps, or apt-get install nftables)")
		}
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
