package liveness

import (
	"testing"
	"time"
)

func TestGraceAndExpiry(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := New(t0)
	const timeout = 10 * time.Second
	// Never heard from, but the grace period covers it.
	if !tr.Alive("a", t0.Add(9*time.Second), timeout) {
		t.Fatal("dead during grace")
	}
	if tr.Alive("a", t0.Add(11*time.Second), timeout) {
		t.Fatal("alive after grace without a heartbeat")
	}
	tr.Seen("a", t0.Add(5*time.Second))
	tr.Seen("a", t0.Add(1*time.Second)) // late, older: ignored
	if !tr.Alive("a", t0.Add(14*time.Second), timeout) || tr.Alive("a", t0.Add(16*time.Second), timeout) {
		t.Fatal("heartbeat not honoured")
	}
	if got := tr.NextExpiry([]string{"a", "b"}, t0.Add(6*time.Second), timeout); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("next expiry = %v", got)
	}
	// New leadership: everyone gets a full timeout again.
	tr.Reset(t0.Add(100 * time.Second))
	if !tr.Alive("a", t0.Add(105*time.Second), timeout) || !tr.Alive("zz", t0.Add(105*time.Second), timeout) {
		t.Fatal("no grace after reset")
	}
	tr.SeenNodes("b", t0.Add(101*time.Second))
	if !tr.NodesSeen("b").Equal(t0.Add(101*time.Second)) || !tr.LastSeen("b").Equal(t0.Add(101*time.Second)) {
		t.Fatal("node report is not a heartbeat")
	}
}
