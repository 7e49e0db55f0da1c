package kb

import (
	"encoding/json"
	"fmt"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

// Type names a command. Types are stored in the Raft log forever: never
// rename one, add a new one instead.
type Type string

// The command types.
const (
	TypeRegisterCluster Type = "RegisterCluster"
	TypeReportNodes     Type = "ReportNodes"
	TypeReportStatus    Type = "ReportStatus"
	TypeSetLiveness     Type = "SetLiveness"
	TypePutApp          Type = "PutApp"
	TypeDeleteApp       Type = "DeleteApp"
	TypeSetPlacements   Type = "SetPlacements"
	TypeSetMember       Type = "SetMember"
	TypeRemoveMember    Type = "RemoveMember"
)

// Version is the envelope version this lead writes and the highest it can
// read. A lead that meets a newer entry stops rather than guess (see Apply).
const Version = 1

// Command is the envelope of every Raft log entry the knowledge base applies.
type Command struct {
	Type    Type `json:"type"`
	Version int  `json:"version"`
	// Time is the proposer's clock when it proposed the command. The FSM
	// uses it as "now" so that every lead computes the same state; it never
	// reads its own clock.
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

// Encode builds the log entry for a command of type t with payload p,
// proposed at now.
func Encode(t Type, now time.Time, p any) ([]byte, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", t, err)
	}
	b, err := json.Marshal(Command{Type: t, Version: Version, Time: now.UTC(), Payload: raw})
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", t, err)
	}
	return b, nil
}

// MustEncode is Encode for payloads that cannot fail to marshal (the
// payload types of this package); it panics otherwise.
func MustEncode(t Type, now time.Time, p any) []byte {
	b, err := Encode(t, now, p)
	if err != nil {
		panic(err)
	}
	return b
}

// Decode reads a log entry's envelope and checks that this lead knows how to
// apply it. The payload is decoded by the applier.
func Decode(data []byte) (*Command, error) {
	var c Command
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode command envelope: %w", err)
	}
	if c.Version < 1 || c.Version > Version {
		return nil, fmt.Errorf("command %q has version %d; this lead reads versions 1..%d", c.Type, c.Version, Version)
	}
	if _, ok := payloadTypes[c.Type]; !ok {
		return nil, fmt.Errorf("unknown command type %q", c.Type)
	}
	if len(c.Payload) == 0 {
		return nil, fmt.Errorf("command %q has no payload", c.Type)
	}
	return &c, nil
}

// payloadTypes lists every known type; Decode rejects the others.
var payloadTypes = map[Type]func() any{
	TypeRegisterCluster: func() any { return new(RegisterCluster) },
	TypeReportNodes:     func() any { return new(ReportNodes) },
	TypeReportStatus:    func() any { return new(ReportStatus) },
	TypeSetLiveness:     func() any { return new(SetLiveness) },
	TypePutApp:          func() any { return new(PutApp) },
	TypeDeleteApp:       func() any { return new(DeleteApp) },
	TypeSetPlacements:   func() any { return new(SetPlacements) },
	TypeSetMember:       func() any { return new(SetMember) },
	TypeRemoveMember:    func() any { return new(RemoveMember) },
}

// RegisterCluster creates a cluster or updates its facts (tier, role,
// endpoint, labels). Idempotent.
type RegisterCluster struct {
	Cluster fleet.Cluster `json:"cluster"`
}

// ReportNodes stores a cluster's nodes. With Full, nodes not listed are
// removed; otherwise Deleted names the ones gone. Idempotent.
type ReportNodes struct {
	Cluster string       `json:"cluster"`
	Nodes   []fleet.Node `json:"nodes"`
	Full    bool         `json:"full"`
	Deleted []string     `json:"deleted,omitempty"`
}

// ReportStatus stores component statuses reported by a cluster's agent. A
// status older (by generation) than the one stored is ignored, so reports
// that arrive out of order never roll a component back.
type ReportStatus struct {
	Cluster  string                  `json:"cluster"`
	Statuses []fleet.ComponentStatus `json:"statuses"`
}

// SetLiveness records the leader's verdict on a cluster: alive, or down
// since the command's time. Only changes of the verdict are replicated,
// never the heartbeats behind it.
type SetLiveness struct {
	Cluster string `json:"cluster"`
	Alive   bool   `json:"alive"`
}

// PutApp creates or updates an application. The generation increases only
// when the spec really changed. With ExpectGeneration, the write happens
// only if the stored generation is that (0: the application must not exist).
type PutApp struct {
	Spec             spec.Application `json:"spec"`
	ExpectGeneration *int64           `json:"expectGeneration,omitempty"`
}

// DeleteApp removes an application, its placements and statuses.
type DeleteApp struct {
	Name             string `json:"name"`
	ExpectGeneration *int64 `json:"expectGeneration,omitempty"`
}

// SetPlacements stores the scheduling loop's decisions for one application.
// It is guarded twice: Generation must still be the application's (the spec
// did not change under the decision) and ExpectRev must be the placement
// revision the loop read (nobody else wrote placements since).
type SetPlacements struct {
	App        string                `json:"app"`
	Generation int64                 `json:"generation"`
	ExpectRev  uint64                `json:"expectRev"`
	Placements []scheduler.Placement `json:"placements"`
	Exclude    []Exclusion           `json:"exclude,omitempty"`
	Events     []apiv1.Event         `json:"events,omitempty"`
	// Explanations are the placements' explanations by component, made
	// with CompressExplanation (the placements then carry none). An
	// explanation is most of a placement's size; compressed, the KB of a
	// large fleet stays small.
	Explanations map[string][]byte `json:"explanations,omitempty"`
}

// Exclusion keeps a component off a cluster until a time (failover back-off).
type Exclusion struct {
	Component string    `json:"component"`
	Cluster   string    `json:"cluster"`
	Until     time.Time `json:"until"`
}

// SetMember records a lead's addresses, so every lead can forward to it and
// agents learn the lead list.
type SetMember struct {
	Member Member `json:"member"`
}

// RemoveMember forgets a lead's addresses.
type RemoveMember struct {
	ID string `json:"id"`
}
