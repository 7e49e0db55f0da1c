package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"qonnect.io/qonnect/internal/pki"
)

type testCA struct {
	ca  *pki.CA
	dir string
}

func newTestCA(t testing.TB) *testCA {
	ca, err := pki.NewCA("raft-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca: ca, dir: t.TempDir()}
}

// tlsConfigs issues a certificate and returns server and client configs
// built the way the lead builds them (pki.ServerConfig / ClientConfig).
func (c *testCA) tlsConfigs(t testing.TB, role pki.Role, name string) (*tls.Config, *tls.Config) {
	is, err := c.ca.Issue(pki.Request{Role: role, Name: name, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := c.ca.WriteFiles(filepath.Join(c.dir, name), name, is)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.ServerConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := pki.ClientConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	return srv, cli
}

// newTLSGroup starts n stores over the real TLS transport on 127.0.0.1,
// with bolt stores on disk when persistent.
func newTLSGroup(t testing.TB, n int, persistent bool, tuning Tuning) []*Store {
	ca := newTestCA(t)
	var trans []*raft.NetworkTransport
	var peers []Peer
	for i := range n {
		id := fmt.Sprintf("lead%d", i)
		srv, cli := ca.tlsConfigs(t, pki.RoleLead, id)
		tr, err := NewTransport(TransportConfig{Bind: "127.0.0.1:0", ServerTLS: srv, ClientTLS: cli, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		trans = append(trans, tr)
		peers = append(peers, Peer{ID: id, RaftAddr: string(tr.LocalAddr())})
	}
	var stores []*Store
	for i := range n {
		dir := ""
		if persistent {
			dir = t.TempDir()
		}
		s, err := Open(Config{ID: peers[i].ID, Dir: dir, Transport: trans[i], Peers: peers, Bootstrap: true, Logger: testLogger(t), Tuning: tuning})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	t.Cleanup(func() {
		for _, s := range stores {
			_ = s.Close()
		}
	})
	return stores
}

func tlsLeader(t testing.TB, stores []*Store) *Store {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range stores {
			if s.IsLeader() {
				return s
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader over TLS")
	return nil
}

func TestTLSGroupReplicates(t *testing.T) {
	stores := newTLSGroup(t, 3, true, fastTuning)
	l := tlsLeader(t, stores)
	for i := range 5 {
		if err := register(context.Background(), l, fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := l.KB().Hash()
	for _, s := range stores {
		waitFor(t, "replication over TLS", func() bool { h, _ := s.KB().Hash(); return h == want })
	}
}

// A certificate from the federation CA that is not a lead's cannot talk
// Raft, in either direction.
func TestRaftRefusesNonLeadPeers(t *testing.T) {
	ca := newTestCA(t)
	leadSrv, leadCli := ca.tlsConfigs(t, pki.RoleLead, "lead0")

	lead, err := NewTransport(TransportConfig{Bind: "127.0.0.1:0", ServerTLS: leadSrv, ClientTLS: leadCli})
	if err != nil {
		t.Fatal(err)
	}
	defer lead.Close()
	go func() { // answer whatever reaches the lead, as raft would
		for rpc := range lead.Consumer() {
			rpc.Respond(&raft.RequestVoteResponse{Granted: true}, nil)
		}
	}()

	// Agent and user certificates of the same CA, in both directions.
	var resp raft.RequestVoteResponse
	for _, id := range []pki.Identity{{Role: pki.RoleAgent, Name: "edge-a"}, {Role: pki.RoleUser, Name: "alice"}} {
		t.Run(string(id.Role), func(t *testing.T) {
			peerSrv, peerCli := ca.tlsConfigs(t, id.Role, id.Name)
			peer, err := NewTransport(TransportConfig{Bind: "127.0.0.1:0", ServerTLS: peerSrv, ClientTLS: peerCli})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			var resp raft.RequestVoteResponse
			err = peer.RequestVote("lead0", lead.LocalAddr(), &raft.RequestVoteRequest{Term: 99}, &resp)
			if err == nil || resp.Granted {
				t.Fatalf("%s certificate got a vote from a lead: err=%v", id, err)
			}
			// And a lead refuses to talk to it posing as a peer.
			if err := lead.RequestVote(raft.ServerID(id.Name), peer.LocalAddr(), &raft.RequestVoteRequest{Term: 99}, &resp); err == nil {
				t.Fatalf("lead accepted %s as a raft peer", id)
			}
		})
	}
	// A plain-TCP (no TLS) peer gets nowhere either.
	plain, err := NewTransport(TransportConfig{Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.RequestVote("lead0", lead.LocalAddr(), &raft.RequestVoteRequest{Term: 99}, &resp); err == nil {
		t.Fatal("plain-text peer was answered")
	}
	// A certificate from another CA fails the chain check.
	other := newTestCA(t)
	_, otherCli := other.tlsConfigs(t, pki.RoleLead, "lead9")
	otherCli.RootCAs = x509.NewCertPool()
	otherCli.RootCAs.AddCert(ca.ca.Cert) // it trusts us; we do not trust it
	otherSrv, _ := other.tlsConfigs(t, pki.RoleLead, "lead9b")
	foreign, err := NewTransport(TransportConfig{Bind: "127.0.0.1:0", ServerTLS: otherSrv, ClientTLS: otherCli})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	if err := foreign.RequestVote("lead0", lead.LocalAddr(), &raft.RequestVoteRequest{Term: 99}, &resp); err == nil {
		t.Fatal("lead of another CA was answered")
	}
}
