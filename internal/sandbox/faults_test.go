package sandbox

import (
	"net"
	"testing"
	"time"
)

// TestPartitionLead checks the partition mechanism itself: with the rules
// in place, a connection from one lead's address to another's is dropped,
// while a third address still gets through; heal restores it.
func TestPartitionLead(t *testing.T) {
	f := &Federation{state: State{ID: randomID(), Dir: t.TempDir(), Net: loopbackNet()}}
	for i, id := range []string{"a", "b", "c"} {
		f.state.Leads = append(f.state.Leads, &Process{Kind: "lead", ID: id, IP: f.leadIP(i)})
	}
	t.Cleanup(func() { _ = healNet(f.state.ID) })

	// A listener on lead b's address.
	l, err := net.Listen("tcp", net.JoinHostPort(f.leadIP(1), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dialFrom := func(ip string) error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 500 * time.Millisecond}
		c, err := d.Dial("tcp", l.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dialFrom(f.leadIP(0)); err != nil {
		t.Fatalf("before the partition, a cannot reach b: %v", err)
	}
	if err := f.PartitionLead("a"); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(f.leadIP(0)); err == nil {
		t.Fatal("after partition-lead a, a still reaches b")
	}
	if err := dialFrom(f.leadIP(2)); err != nil {
		t.Fatalf("after partition-lead a, c cannot reach b: %v", err)
	}
	if err := f.PartitionLead("nobody"); err == nil {
		t.Fatal("partition of an unknown lead succeeded")
	}
	if err := f.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(f.leadIP(0)); err != nil {
		t.Fatalf("after heal, a cannot reach b: %v", err)
	}
}
