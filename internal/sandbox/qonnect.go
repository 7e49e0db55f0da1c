package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"qonnect.io/qonnect/internal/pki"
)

// UserName is the identity of the user certificate the sandbox issues for
// the plugin.
const UserName = "sandbox-admin"

// The sandbox's TLS material, under DIR/pki.
func (f *Federation) pkiDir() string { return filepath.Join(f.state.Dir, "pki") }

// UserTLS is the user certificate the env file points the plugin at.
func (f *Federation) UserTLS() pki.Files { return f.files(UserName) }

// LeadTLS and AgentTLS are the certificates of one lead / one cluster's agent.
func (f *Federation) LeadTLS(id string) pki.Files       { return f.files("lead-" + id) }
func (f *Federation) AgentTLS(cluster string) pki.Files { return f.files("agent-" + cluster) }

// CA returns the sandbox's certificate authority, to issue more certificates.
func (f *Federation) CA() (*pki.CA, error) {
	return pki.LoadCA(filepath.Join(f.pkiDir(), "ca.crt"), filepath.Join(f.pkiDir(), "ca.key"))
}

func (f *Federation) files(name string) pki.Files {
	d := f.pkiDir()
	return pki.Files{CA: filepath.Join(d, "ca.crt"), Cert: filepath.Join(d, name+".crt"), Key: filepath.Join(d, name+".key")}
}

// setupPKI creates the sandbox's CA and a certificate for every lead, agent
// and the user: the sandbox speaks TLS like a real installation.
func (f *Federation) setupPKI() error {
	ca, err := pki.NewCA("qonnect sandbox "+f.state.ID, 30*24*time.Hour)
	if err != nil {
		return err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.pkiDir(), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.pkiDir(), "ca.key"), keyPEM, 0o600); err != nil {
		return err
	}
	issue := func(role pki.Role, name, file string, hosts []string) error {
		is, err := ca.Issue(pki.Request{Role: role, Name: name, Hosts: hosts})
		if err != nil {
			return err
		}
		_, err = ca.WriteFiles(f.pkiDir(), file, is)
		return err
	}
	for i, c := range f.state.Profile.Leads() {
		id := leadID(c.Name)
		if err := issue(pki.RoleLead, id, "lead-"+id, []string{f.leadIP(i), "127.0.0.1", "localhost"}); err != nil {
			return err
		}
	}
	for _, c := range f.state.Clusters {
		if err := issue(pki.RoleAgent, c.Name, "agent-"+c.Name, nil); err != nil {
			return err
		}
	}
	return issue(pki.RoleUser, UserName, UserName, nil)
}

// leadID is the Raft ID of the lead in a lead cluster: the cluster's name.
func leadID(cluster string) string { return cluster }

// leadIP is the i-th lead's own loopback address; partitions drop traffic by it.
func (f *Federation) leadIP(i int) string { return fmt.Sprintf("%s.%d", f.state.Net, 11+i) }

func (f *Federation) hasQonnectBinaries() bool {
	if f.state.QonnectBin == "" {
		return false
	}
	for _, b := range []string{"qonnect-lead", "qonnect-agent"} {
		if _, err := os.Stat(filepath.Join(f.state.QonnectBin, b)); err != nil {
			return false
		}
	}
	return true
}

// startQonnect starts a lead per lead cluster (one Raft group bootstrapped
// from the static member list) and an agent per cluster.
func (f *Federation) startQonnect(ctx context.Context) error {
	leads := f.state.Profile.Leads()
	var peers []string
	for i, c := range leads {
		ip := f.leadIP(i)
		raftPort, err := freePort(ip)
		if err != nil {
			return err
		}
		apiPort, err := freePort(ip)
		if err != nil {
			return err
		}
		p := &Process{
			Kind: "lead", ID: leadID(c.Name), Cluster: c.Name, IP: ip,
			Binary:   filepath.Join(f.state.QonnectBin, "qonnect-lead"),
			RaftAddr: net.JoinHostPort(ip, fmt.Sprint(raftPort)),
			APIAddr:  net.JoinHostPort(ip, fmt.Sprint(apiPort)),
			DataDir:  filepath.Join(f.state.Dir, "leads", leadID(c.Name)),
			Log:      filepath.Join(f.state.Dir, "logs", "lead-"+leadID(c.Name)+".log"),
		}
		f.state.Leads = append(f.state.Leads, p)
		peers = append(peers, p.ID+"="+p.RaftAddr+"="+p.APIAddr)
	}
	for _, p := range f.state.Leads {
		tls := f.LeadTLS(p.ID)
		p.Args = append([]string{
			"--id", p.ID, "--data-dir", p.DataDir,
			"--raft-addr", p.RaftAddr, "--api-addr", p.APIAddr,
			"--peers", strings.Join(peers, ","),
			"--tls-ca", tls.CA, "--tls-cert", tls.Cert, "--tls-key", tls.Key,
		}, f.state.LeadArgs...)
		if err := startProcess(p); err != nil {
			return err
		}
		f.progressf("lead %-14s pid %d, api https://%s, raft %s", p.ID, p.Pid, p.APIAddr, p.RaftAddr)
	}
	if err := f.save(); err != nil {
		return err
	}
	for _, c := range f.state.Clusters {
		tls := f.AgentTLS(c.Name)
		p := &Process{
			Kind: "agent", ID: c.Name, Cluster: c.Name,
			Binary: filepath.Join(f.state.QonnectBin, "qonnect-agent"),
			Log:    filepath.Join(f.state.Dir, "logs", "agent-"+c.Name+".log"),
		}
		p.Args = append([]string{
			"--cluster", c.Name, "--tier", string(c.Tier), "--role", string(c.Role),
			"--endpoint", Endpoint(c.Name),
			"--leads", strings.Join(f.LeadAPIs(), ","),
			"--kubeconfig", c.Kubeconfig,
			"--tls-ca", tls.CA, "--tls-cert", tls.Cert, "--tls-key", tls.Key,
		}, f.state.AgentArgs...)
		if err := startProcess(p); err != nil {
			return err
		}
		f.state.Agents = append(f.state.Agents, p)
		f.progressf("agent %-14s pid %d", c.Name, p.Pid)
	}
	return f.save()
}

// Endpoint is the address the sandbox gives a cluster for cross-component
// references (a stand-in for its ingress address).
func Endpoint(cluster string) string { return cluster + ".sandbox.qonnect.local" }

// LeadAPIs are the leads' API URLs.
func (f *Federation) LeadAPIs() []string {
	var out []string
	for _, p := range f.state.Leads {
		out = append(out, "https://"+p.APIAddr)
	}
	return out
}

// Lead returns the named lead's process record.
func (f *Federation) Lead(id string) (*Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lead(id)
}

func (f *Federation) lead(id string) (*Process, error) {
	for _, p := range f.state.Leads {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownLead, id)
}

func (f *Federation) agent(cluster string) *Process {
	for _, p := range f.state.Agents {
		if p.ID == cluster {
			return p
		}
	}
	return nil
}

// freePort finds a port free on ip. Another process may take it before the
// lead binds it; the window is small and each sandbox has its own IPs.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// EnvFile is the file that, sourced, points kubectl and kubectl qonnect at the sandbox.
func (f *Federation) EnvFile() string { return filepath.Join(f.state.Dir, "env") }

func (f *Federation) writeEnv() error {
	var kc []string
	for _, c := range f.state.Clusters {
		kc = append(kc, c.Kubeconfig)
	}
	u := f.UserTLS()
	var b strings.Builder
	fmt.Fprintf(&b, "# qonnect sandbox %s: source this file to use it.\n", f.state.ID)
	fmt.Fprintf(&b, "export KUBECONFIG=%s\n", strings.Join(kc, ":"))
	if len(f.state.Leads) > 0 {
		fmt.Fprintf(&b, "export QONNECT_LEAD=%s\n", strings.Join(f.LeadAPIs(), ","))
		fmt.Fprintf(&b, "export QONNECT_LEAD_CA=%s\nexport QONNECT_LEAD_CERT=%s\nexport QONNECT_LEAD_KEY=%s\n", u.CA, u.Cert, u.Key)
	}
	return os.WriteFile(f.EnvFile(), []byte(b.String()), 0o644)
}
