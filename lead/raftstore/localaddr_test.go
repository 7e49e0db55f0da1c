package raftstore

import "testing"

// The lead binds its outgoing connections to its advertised address only
// when that address is this host's: a load balancer's address in --peers
// must not break every dial.
func TestLocalTCPAddr(t *testing.T) {
	cases := []struct {
		host string
		bind bool
	}{
		{"127.0.0.11", true},    // loopback: the sandbox gives each lead its own
		{"0.0.0.0", false},      // unspecified
		{"lead.example", false}, // a name, not an address
		{"192.0.2.10", false},   // TEST-NET-1: never this host's
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			got := LocalTCPAddr(tc.host)
			if (got != nil) != tc.bind {
				t.Fatalf("LocalTCPAddr(%q) = %v, want binding %v", tc.host, got, tc.bind)
			}
		})
	}
}
