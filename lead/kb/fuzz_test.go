package kb

import (
	"testing"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// FuzzCommand: whatever bytes a log entry holds, Decode either refuses them
// or the applier applies them (or rejects them as a command) without
// panicking; the FSM's only deliberate stop is for what Decode or the
// payload decoder refuses.
func FuzzCommand(f *testing.F) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Add(MustEncode(TypeRegisterCluster, now, RegisterCluster{Cluster: fleet.Cluster{Name: "a", Tier: fleet.TierEdge}}))
	f.Add(MustEncode(TypeReportNodes, now, ReportNodes{Cluster: "a", Full: true, Nodes: []fleet.Node{{Name: "n"}}}))
	f.Add(MustEncode(TypeReportStatus, now, ReportStatus{Cluster: "a", Statuses: []fleet.ComponentStatus{{App: "x", Component: "c"}}}))
	f.Add(MustEncode(TypePutApp, now, PutApp{Spec: testApp("x", spec.QoS{}, "c")}))
	f.Add(MustEncode(TypeSetPlacements, now, SetPlacements{App: "x", Generation: 1}))
	f.Add(MustEncode(TypeDeleteApp, now, DeleteApp{Name: "x"}))
	f.Add(MustEncode(TypeSetMember, now, SetMember{Member: Member{ID: "l"}}))
	f.Add(MustEncode(TypeRemoveMember, now, RemoveMember{ID: "l"}))
	f.Add(MustEncode(TypeSetLiveness, now, SetLiveness{Cluster: "a"}))
	f.Add([]byte(`{"type":"PutApp","version":1,"payload":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := Decode(data)
		if err != nil {
			return
		}
		// Start from a populated state so commands meet existing objects.
		st := newState()
		for i, c := range [][]byte{
			MustEncode(TypeRegisterCluster, now, RegisterCluster{Cluster: fleet.Cluster{Name: "a", Tier: fleet.TierEdge}}),
			MustEncode(TypePutApp, now, PutApp{Spec: testApp("x", spec.QoS{}, "c")}),
		} {
			seed, _ := Decode(c)
			if _, err := apply(st, uint64(i+1), seed); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := hashState(st)
		res, err := apply(st, 10, cmd)
		if err != nil {
			return // the FSM would stop here, loudly
		}
		if res.Err != nil {
			if after, _ := hashState(st); after != before {
				t.Fatalf("rejected command %s changed the state: %v", cmd.Type, res.Err)
			}
		}
		if _, err := hashState(st); err != nil {
			t.Fatalf("state no longer encodes after %s: %v", cmd.Type, err)
		}
	})
}
